"""`ferkit serve`: the REST API on the shared photos, every kind of bad upload, the limits and access
rules."""

from __future__ import annotations

import io
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="ferkit[serve] is not installed")
pytest.importorskip("httpx", reason="the test client needs httpx (ferkit[dev])")

with warnings.catch_warnings():  # Starlette's notice that a later test client will use httpx2
    warnings.filterwarnings("ignore", message=".*httpx2")
    from fastapi.testclient import TestClient  # noqa: E402

from ferkit.cli import main  # noqa: E402
from ferkit.errors import ConfigError  # noqa: E402
from ferkit.faces import DEFAULT_DETECTOR  # noqa: E402
from ferkit.serve import Engine, EngineConfig, check_exposure  # noqa: E402
from ferkit.serve.app import ServeSettings, create_app  # noqa: E402
from ferkit.serve.engine import Worker  # noqa: E402

CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


@pytest.fixture(scope="module")
def client(engine):
    with TestClient(create_app(engine, ServeSettings(max_upload_bytes=2_000_000))) as client:
        yield client


@pytest.fixture(scope="module")
def angry(photos_dir) -> bytes:
    return (photos_dir / "angry_man.jpg").read_bytes()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header says width×height: a decompression bomb as far as any decoder can tell."""
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def assert_error(response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    message = response.json()["error"]
    assert message and all(w in message for w in words), message


# ---------------------------------------------------------------- answers

def test_detect_angry_man_multipart_and_raw_agree(client, angry):
    r = client.post("/v1/detect", files={"image": ("angry_man.jpg", angry, "image/jpeg")})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["model"] == "default" and out["file"] == "angry_man.jpg"
    assert out["detector"] == DEFAULT_DETECTOR
    assert out["class_names"] == CLASSES and out["shape"] == [521, 425]
    [face] = out["faces"]
    assert face["label"] == "angry" and len(face["box"]) == 4 and len(face["landmarks"]) == 5
    assert abs(sum(face["probs"].values()) - 1) < 1e-3
    assert [t["label"] for t in face["top_k"]][0] == "angry" and len(face["top_k"]) == 3
    assert {"decode", "detect", "classify", "total"} <= set(out["timing_ms"])
    raw = client.post("/v1/detect", content=angry, headers={"Content-Type": "image/jpeg"}).json()
    assert raw["faces"] == out["faces"]


def test_api_gives_the_cli_answer(client, photos_dir, capsys):
    """Same detector, crop framing and model as `ferkit predict`: the same faces, boxes and probabilities."""
    paths = [photos_dir / "angry_man.jpg", photos_dir / "crying_woman.jpg"]
    assert main(["predict", *map(str, paths), "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    for path, expected in zip(paths, cli):
        api = client.post("/v1/detect", files={"image": (path.name, path.read_bytes())}).json()
        for face in api["faces"]:
            face.pop("top_k")
        assert api["faces"] == expected["faces"]


def test_detect_many_faces_and_options(client, photos_dir):
    photo = sorted((photos_dir / "expw").glob("*.jpg"))[0].read_bytes()
    faces = client.post("/v1/detect", content=photo).json()["faces"]
    assert len(faces) >= 2
    haar = client.post("/v1/detect?detector=haar&top_k=1", content=photo).json()
    assert haar["detector"] == "haar" and all(len(f["top_k"]) == 1 for f in haar["faces"])
    big_only = client.post("/v1/detect?min_face_size=4000", content=photo).json()
    assert big_only["faces"] == []


def test_classify_batch_matches_recognizer(client, engine, photos_dir):
    crops = [np.asarray(Image.open(p).convert("L").resize((60, 60)))
             for p in (photos_dir / "angry_man.jpg", photos_dir / "crying_woman.jpg")]
    files = []
    for i, crop in enumerate(crops):
        buf = io.BytesIO()
        Image.fromarray(crop).save(buf, format="PNG")
        files.append(("images", (f"crop{i}.png", buf.getvalue(), "image/png")))
    r = client.post("/v1/classify?top_k=2", files=files)
    assert r.status_code == 200, r.text
    out = r.json()
    assert [p["file"] for p in out["predictions"]] == ["crop0.png", "crop1.png"]
    expected = Worker(engine.config, engine.classifier).recognizer(None, None).classify(crops)
    for got, want in zip(out["predictions"], expected):
        assert got["label"] == want.label and len(got["top_k"]) == 2
        assert all(abs(got["probs"][k] - v) < 1e-3 for k, v in want.probs.items())


def test_models_health_docs(client):
    models = client.get("/v1/models").json()
    assert models["models"][0]["class_names"] == CLASSES and models["detectors"] == ["mtcnn", "haar", "yunet"]
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/detect", "/v1/classify", "/v1/models", "/healthz"} <= set(paths)
    page = client.get("/")
    assert page.status_code == 200 and "ferkit" in page.text
    assert client.get("/static/app.js").status_code == 200


# ---------------------------------------------------------------- bad requests: 4xx JSON, never a 500

def _multipart(body: bytes, boundary: str = "b0undary") -> dict:
    return {"content": body, "headers": {"Content-Type": f"multipart/form-data; boundary={boundary}"}}


@pytest.mark.parametrize("name, request_kwargs, status, words", [
    ("empty raw body", {"content": b""}, 400, ["empty upload"]),
    ("empty file part", {"files": {"image": ("a.jpg", b"", "image/jpeg")}}, 400, ["'a.jpg'", "empty"]),
    ("form without a file", _multipart(b'--b0undary\r\nContent-Disposition: form-data; name="note"\r\n\r\n'
                                       b"\r\n--b0undary--\r\n"), 400, ["no file"]),
    ("text, not an image", {"content": b"hello world", "headers": {"Content-Type": "image/jpeg"}}, 400,
     ["not an image"]),
    ("json body", {"json": {"image": "x"}}, 400, ["not an image"]),
    ("malformed multipart", _multipart(b"--b0undary\r\nContent-Disposition: form-data; name=\"image\""), 400,
     ["malformed multipart"]),
    ("multipart without boundary", {"content": b"x", "headers": {"Content-Type": "multipart/form-data"}}, 400,
     ["boundary"]),
    ("decompression bomb", {"content": png_claiming(100_000, 100_000)}, 413, ["too large", "pixels"]),
    ("over the server's pixels", {"content": png_claiming(10_000, 5_000)}, 413, ["10000×5000", "40,000,000"]),
    ("too large body", {"content": b"\xff" * 2_000_001}, 413, ["too large", "2 MB"]),
    ("bad top_k", {"params": {"top_k": "zero"}, "content": b"x"}, 422, ["top_k"]),
    ("unknown detector", {"params": {"detector": "yolo"}, "content": b"x"}, 422, ["detector"]),
    ("tiny min_face_size", {"params": {"min_face_size": 1}, "content": b"x"}, 422, ["min_face_size"]),
])
def test_bad_uploads_get_a_clear_4xx(client, name, request_kwargs, status, words):
    assert_error(client.post("/v1/detect", **request_kwargs), status, *words)


def test_truncated_and_corrupt_images(client, angry):
    assert_error(client.post("/v1/detect", content=angry[: len(angry) // 2]), 400, "truncated")
    corrupt = angry[:600] + bytes(range(256)) * 8 + angry[2648:]
    r = client.post("/v1/detect", content=corrupt)
    assert r.status_code in (200, 400), r.text  # libjpeg may decode damaged data; it must never be a 500
    assert_error(client.post("/v1/classify",
                             files=[("images", ("ok.jpg", angry)), ("images", ("bad.jpg", b"GIF8"))]),
                 400, "upload 2 of 2 'bad.jpg'")


def test_other_errors_are_json(client):
    assert_error(client.get("/nope"), 404, "Not Found")
    assert_error(client.get("/v1/detect"), 405, "Method Not Allowed")
    files = [("images", (f"{i}.png", b"x")) for i in range(65)]
    assert_error(client.post("/v1/classify", files=files), 400, "too many")


def test_chunked_upload_over_the_limit(client):
    def chunks():
        for _ in range(30):
            yield b"\0" * 100_000
    assert_error(client.post("/v1/detect", content=chunks()), 413, "too large")


def test_timeout_and_busy(engine, angry, monkeypatch):
    with TestClient(create_app(engine, ServeSettings(timeout=0.2))) as client:
        monkeypatch.setattr(Worker, "detect", lambda self, *args: time.sleep(0.6) or {})
        assert_error(client.post("/v1/detect", content=angry), 504, "no answer within 0.2 s")
        monkeypatch.setattr(engine, "_pending", 10_000)
        r = client.post("/v1/detect", content=angry)
        assert_error(r, 503, "busy")
        assert r.headers["retry-after"] == "1"
    time.sleep(0.6)  # the slow worker finishes before the next test


def test_uploads_never_touch_disk(client, monkeypatch):
    """A 1.5 MB upload (Starlette's own form parsing would spool it to a temporary file) stays in memory."""
    def refuse(*args, **kwargs):
        raise AssertionError("an upload was about to be written to disk")
    for name in ("SpooledTemporaryFile", "NamedTemporaryFile", "TemporaryFile", "mkstemp"):
        monkeypatch.setattr(tempfile, name, refuse)
    noise = np.random.default_rng(0).integers(0, 256, (700, 700), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, format="PNG")
    assert len(buf.getvalue()) > 400_000
    r = client.post("/v1/classify", files={"images": ("noise.png", buf.getvalue(), "image/png")})
    assert r.status_code == 200, r.text


# ---------------------------------------------------------------- access

def test_api_key(engine, angry):
    with TestClient(create_app(engine, ServeSettings(api_key="s3cret"))) as client:
        assert_error(client.get("/v1/models"), 401, "API key")
        assert_error(client.get("/v1/models", headers={"X-API-Key": "wrong"}), 401, "API key")
        assert client.get("/v1/models", headers={"X-API-Key": "s3cret"}).status_code == 200
        assert client.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert client.get("/healthz").json()["api_key_required"] is True
        assert client.get("/").status_code == 200


def test_cors_only_when_asked(engine, client):
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in client.get("/v1/models", headers=preflight).headers
    with TestClient(create_app(engine, ServeSettings(cors_origins=("https://app.example",)))) as cors:
        r = cors.options("/v1/detect", headers=preflight)
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        other = cors.get("/v1/models", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_serve_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(flag in out for flag in ("--host", "--port", "--api-key", "--cors-origin", "--max-upload-mb"))


def test_exposure_rules(capsys):
    assert check_exposure("127.0.0.1", None) is None and check_exposure("localhost", None) is None
    assert check_exposure("::1", None) is None and check_exposure("0.0.0.0", "key") is None
    with pytest.raises(ConfigError, match="--api-key"):
        check_exposure("0.0.0.0", None)
    assert "anyone who can reach" in check_exposure("192.168.1.5", None, allow_anyone=True)
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    assert "--api-key" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ferkit_serve_command(photos_dir, tmp_path):
    """`ferkit serve` as documented: listens on loopback, answers, and stops on a signal."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "ferkit", "serve", "--port", str(port), "--workers", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    import httpx

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "ferkit serve did not start"
            time.sleep(0.3)
        r = httpx.post(f"http://127.0.0.1:{port}/v1/detect", timeout=30,
                       files={"image": ("angry_man.jpg", (photos_dir / "angry_man.jpg").read_bytes())})
        assert r.status_code == 200 and r.json()["faces"][0]["label"] == "angry"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert "http://127.0.0.1:" in out


def test_process_pool_gives_the_same_answer(engine, angry):
    """--pool process: one Recognizer per process; the answer and the error messages are the thread pool's."""
    import asyncio

    processes = Engine(EngineConfig(workers=1, pool="process"))
    try:
        got = asyncio.run(processes.run("detect", angry, "a.jpg", None, None, timeout=60))
        want = asyncio.run(engine.run("detect", angry, "a.jpg", None, None, timeout=60))
        assert got["faces"] == want["faces"]
        from ferkit.errors import ImageError

        with pytest.raises(ImageError, match="upload 'b.jpg': not an image"):
            asyncio.run(processes.run("detect", b"GIF", "b.jpg", None, None, timeout=60))
    finally:
        processes.close()
