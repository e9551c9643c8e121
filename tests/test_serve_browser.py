"""The web page in a real browser: Debian's headless Chromium, driven by Selenium through Debian's
chromedriver.

The browser comes from Debian's packages (`chromium`, `chromium-driver`): installed here when missing and we
are root; otherwise skipped with the reason, except under CI, where a missing browser fails. Nothing downloads
a browser build of its own (Selenium Manager stays offline: the driver and browser paths are given).
Screenshots go to artifacts/ (or $FERKIT_ARTIFACTS).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.browser

pytest.importorskip("fastapi", reason="ferkit[serve] is not installed")

from ferkit.serve.app import create_app  # noqa: E402
from ferkit.serve.engine import Worker  # noqa: E402
from ferkit.serve.server import background_server  # noqa: E402

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ARTIFACTS = Path(os.environ.get("FERKIT_ARTIFACTS", Path(__file__).resolve().parents[1] / "artifacts"))
CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def _unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"browser tests cannot run in CI: {reason}")
    pytest.skip(reason)


def _install_chromium() -> None:
    """`apt-get install chromium chromium-driver` (Debian's packages) when they are missing and we may."""
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        _unavailable("Debian's chromium and chromium-driver are not installed "
                     "(as root: apt-get install -y chromium chromium-driver)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200)
        if done.returncode != 0:
            _unavailable(f"{' '.join(command)} failed: {done.stderr.strip()[-500:]}")
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        _unavailable("apt-get installed chromium but /usr/bin/chromium or /usr/bin/chromedriver is missing")


@pytest.fixture(scope="module")
def browser_factory(tmp_path_factory):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed (pip install -e '.[dev]')")
    _install_chromium()
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never download a driver or a browser
    drivers = []

    def start(*extra: str):
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        profile = tmp_path_factory.mktemp("chromium-profile")
        for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                    "--window-size=1280,900", f"--user-data-dir={profile}", *extra):
            options.add_argument(arg)
        driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
        driver.set_page_load_timeout(30)
        drivers.append(driver)
        return driver

    yield start
    for driver in drivers:
        driver.quit()


@pytest.fixture(scope="module")
def server(engine):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # uvicorn's websockets import, not ours
        with background_server(create_app(engine)) as server:
            yield server


def wait_for(driver, script: str, timeout: float = 60.0, what: str = "the page"):
    """Poll a JavaScript expression until it is truthy; fail with the page's status line otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(f"return {script};")
        if value:
            return value
        time.sleep(0.2)
    status = driver.execute_script("return document.getElementById('status').textContent;")
    pytest.fail(f"{what}: `{script}` still false after {timeout:g} s; page status: {status!r}")


def screenshot(driver, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    driver.save_screenshot(str(path))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, ARTIFACTS / name)
    return ARTIFACTS / name


def test_page_upload_draws_the_cli_answer(browser_factory, server, engine, photos_dir, tmp_path):
    photo = photos_dir / "angry_man.jpg"
    expected = Worker(engine.config, engine.classifier).recognizer(None, None)(photo).to_dict()["faces"]
    driver = browser_factory()
    driver.get(server.url + "/")
    wait_for(driver, "document.getElementById('status').textContent.startsWith('Ready')", 30, "page load")
    file_input = driver.find_element("id", "file")
    driver.execute_script("arguments[0].style.display = 'block';", file_input)
    file_input.send_keys(str(photo.resolve()))
    wait_for(driver, "window.ferkit.frames >= 1 || window.ferkit.error", what="upload")
    assert driver.execute_script("return window.ferkit.error;") is None
    last = driver.execute_script("return window.ferkit.last;")
    got = [{k: v for k, v in face.items() if k != "top_k"} for face in last["faces"]]
    assert got == expected  # the page shows what `ferkit predict` says
    # what is drawn: the face list with its probability bars, and the box on the overlay canvas
    items = driver.find_elements("css selector", "#faces li.face")
    assert [i.get_attribute("data-label") for i in items] == ["angry"]
    assert items[0].find_element("class name", "face-label").text.startswith("angry 0.")
    assert len(items[0].find_elements("css selector", ".bars li")) == len(CLASSES)
    x1, y1, x2, y2 = (round(v) for v in expected[0]["box"])
    canvas = driver.execute_script(
        "const c = document.getElementById('overlay'), ctx = c.getContext('2d');"
        "const at = (x, y) => Array.from(ctx.getImageData(x, y, 1, 1).data);"
        f"return {{w: c.width, h: c.height, edge: at({x1}, {(y1 + y2) // 2}), "
        f"inside: at({(x1 + x2) // 2}, {(y1 + y2) // 2})}};")
    assert (canvas["w"], canvas["h"]) == (425, 521)
    assert canvas["edge"][3] == 255 and canvas["edge"][0] > 200  # the red (angry) box line
    assert canvas["inside"][3] == 0  # the face itself is left visible
    shot = screenshot(driver, tmp_path, "serve_upload.png")
    assert shot.stat().st_size > 10_000


def make_y4m(photo: Path, path: Path, frames: int = 10, size: tuple[int, int] = (640, 480)) -> Path:
    """A short 4:2:0 y4m video of `photo` letterboxed into `size`, for Chromium's fake camera."""
    import cv2

    width, height = size
    img = Image.open(photo).convert("RGB")
    img.thumbnail(size)
    canvas = Image.new("RGB", size, (40, 40, 40))
    canvas.paste(img, ((width - img.width) // 2, (height - img.height) // 2))
    yuv = cv2.cvtColor(np.asarray(canvas), cv2.COLOR_RGB2YUV_I420).tobytes()
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            f.write(b"FRAME\n" + yuv)
    return path


def test_webcam_live_labels(browser_factory, server, photos_dir, tmp_path):
    video = make_y4m(photos_dir / "angry_man.jpg", tmp_path / "angry_man.y4m")
    driver = browser_factory("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                             f"--use-file-for-fake-video-capture={video}")
    driver.get(server.url + "/")
    wait_for(driver, "document.getElementById('status').textContent.startsWith('Ready')", 30, "page load")
    driver.find_element("id", "webcam").click()
    wait_for(driver, "(window.ferkit.frames >= 4 && window.ferkit.drawnFaces >= 1) || window.ferkit.error",
             what="live frames")
    assert driver.execute_script("return window.ferkit.error;") is None
    assert driver.execute_script("return window.ferkit.running;") is True
    # read in one script: the live loop re-renders the list between two WebDriver calls (stale elements)
    labels = driver.execute_script(
        "return Array.from(document.querySelectorAll('#faces li.face'), li => li.dataset.label);")
    assert labels == ["angry"]
    fps = driver.find_element("id", "fps").text
    assert fps.endswith(" fps") and float(fps.split()[0]) > 0, fps
    last = driver.execute_script("return window.ferkit.last;")
    assert max(last["shape"]) <= 640  # frames are downscaled before they are sent
    screenshot(driver, tmp_path, "serve_webcam.png")
    driver.find_element("id", "stop").click()
    assert driver.execute_script("return window.ferkit.running;") is False
