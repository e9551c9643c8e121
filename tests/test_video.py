"""Video and webcam loops on a video made from the shared photos."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest
from PIL import Image

from ferkit.cli import main
from ferkit.errors import FerkitError, OutputError, VideoError
from ferkit.predict import Recognizer
from ferkit.results import csv_header
from ferkit.video import process_video
from ferkit.webcam import run_webcam

SIZE = (480, 400)  # width, height


@pytest.fixture(scope="module")
def photo_video(photos_dir, tmp_path_factory):
    """12 frames of angry_man.jpg drifting right on the left, then 8 of crying_woman.jpg on the right,
    at 10 fps."""
    path = tmp_path_factory.mktemp("video") / "photos.mp4"
    man = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
    man[50:350, :240] = np.asarray(Image.open(photos_dir / "angry_man.jpg").convert("RGB").resize((240, 300)))
    woman = np.zeros_like(man)
    woman[150:366, 260:460] = np.asarray(Image.open(photos_dir / "crying_woman.jpg").convert("RGB")
                                         .resize((200, 216)))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, SIZE)
    for i in range(12):
        writer.write(cv2.cvtColor(np.roll(man, 2 * i, axis=1), cv2.COLOR_RGB2BGR))
    for _ in range(8):
        writer.write(cv2.cvtColor(woman, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.fixture(scope="module")
def recognizer(model_file):
    return Recognizer(model=model_file, backend="torch")


def test_video_outputs(recognizer, photo_video, tmp_path):
    out, table, plot = tmp_path / "out.mp4", tmp_path / "frames.csv", tmp_path / "plot.png"
    result = process_video(photo_video, recognizer, out, table, plot, smoothing=0.5, progress=False)
    assert result.frames == 20
    capture = cv2.VideoCapture(str(out))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 20
    ok, frame = capture.read()
    assert ok and frame.shape[:2] == (SIZE[1], SIZE[0])
    rows = list(csv.DictReader(table.open()))
    assert list(rows[0]) == csv_header(recognizer.class_names, video=True)
    assert {int(r["frame"]) for r in rows} == set(range(20))
    man_ids = {r["face_id"] for r in rows if int(r["frame"]) < 12}
    woman_ids = {r["face_id"] for r in rows if int(r["frame"]) >= 12}
    assert len(man_ids) == 1 and len(woman_ids) == 1 and man_ids != woman_ids  # one id per face, kept
    probs = np.array([[float(r[f"p_{c}"]) for c in recognizer.class_names] for r in rows])
    assert np.allclose(probs.sum(1), 1, atol=1e-3)
    assert plot.read_bytes().startswith(b"\x89PNG")
    assert not list(tmp_path.glob(".*"))  # no temporary files left
    assert result.seconds > 0 and result.processing_fps == pytest.approx(20 / result.seconds)


def test_video_every_nth_frame_and_limit(recognizer, photo_video, tmp_path):
    result = process_video(photo_video, recognizer, csv_path=tmp_path / "f.csv", every=5, max_frames=10,
                           progress=False)
    assert result.frames == 10
    assert {int(r["frame"]) for r in csv.DictReader((tmp_path / "f.csv").open())} == {0, 5}


def test_video_writer_error_is_raised_and_leaves_nothing(recognizer, photo_video, tmp_path):
    """The video is encoded in a background thread: its error still reaches the caller, and no file stays."""
    with pytest.raises(OutputError, match="cannot write a video here"):
        process_video(photo_video, recognizer, tmp_path / "out.notavideo", tmp_path / "f.csv", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_video_bad_inputs(recognizer, tmp_path):
    with pytest.raises(VideoError, match="no such video"):
        process_video(tmp_path / "missing.mp4", recognizer, csv_path=tmp_path / "x.csv")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video")
    with pytest.raises(VideoError, match="cannot open"):
        process_video(text, recognizer, csv_path=tmp_path / "x.csv")
    empty = tmp_path / "empty.avi"
    writer = cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 64))
    writer.release()
    with pytest.raises(VideoError):
        process_video(empty, recognizer, csv_path=tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()  # nothing half-written


def test_cli_video(model_file, photo_video, tmp_path, capsys):
    out = tmp_path / "a.mp4"
    assert main(["video", str(photo_video), "--out", str(out), "--csv", str(tmp_path / "a.csv"),
                 "--model", str(model_file), "--no-progress", "--backend", "torch"]) == 0
    printed = capsys.readouterr().out
    assert "20 frames" in printed and "frames/s)" in printed and out.stat().st_size > 0
    assert main(["video", str(tmp_path / "nope.mp4"), "--csv", str(tmp_path / "b.csv")]) == 2
    assert "nope.mp4" in capsys.readouterr().err


def test_webcam_loop_on_a_video_file(recognizer, photo_video):
    stats = run_webcam(recognizer, source=str(photo_video), show=False)
    assert stats.frames == 20 and stats.faces >= 18 and stats.fps > 0


def test_webcam_without_display_or_camera(recognizer, photo_video, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(FerkitError, match="no display"):
        run_webcam(recognizer, source=str(photo_video), show=True)
    with pytest.raises(VideoError, match="camera"):
        run_webcam(recognizer, camera=7, show=False)
