"""stream() over every kind of source, and stream_inference() giving Results."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
from PIL import Image

from ferkit.errors import ConfigError, DataError, ImageError, VideoError
from ferkit.predict import Recognizer
from ferkit.stream import VideoStream, image_files, stream, stream_inference


@pytest.fixture
def pictures(tmp_path):
    """a.png, b.jpg, sub/c.png (all readable), broken.jpg (truncated) and notes.txt (not an image)."""
    folder = tmp_path / "pics"
    (folder / "sub").mkdir(parents=True)
    for name, size in (("a.png", (40, 30)), ("b.jpg", (50, 20)), ("sub/c.png", (30, 30))):
        Image.new("RGB", size, (200, 100, 50)).save(folder / name)
    (folder / "broken.jpg").write_bytes((folder / "b.jpg").read_bytes()[:100])
    (folder / "notes.txt").write_text("not a picture")
    return folder


@pytest.fixture
def clip(tmp_path):
    """6 frames of 64×48 at 10 fps, frame i filled with gray level 40·i."""
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    for i in range(6):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    return path


def test_one_image_file(pictures):
    (frame,) = stream(pictures / "a.png")
    assert frame.image.shape == (30, 40, 3) and frame.image.dtype == np.uint8
    assert frame.source == str(pictures / "a.png") and frame.index is None and frame.time_s is None


def test_a_list_of_files_reports_the_unreadable_ones(pictures):
    paths = [pictures / "a.png", pictures / "broken.jpg", str(pictures / "b.jpg")]
    bad = []
    frames = list(stream(paths, on_error=lambda path, exc: bad.append((path.name, type(exc)))))
    assert [f.source for f in frames] == [str(pictures / "a.png"), str(pictures / "b.jpg")]
    assert bad == [("broken.jpg", ImageError)]
    with pytest.raises(ImageError, match="broken.jpg"):
        list(stream(paths))


def test_a_folder_recursive_or_not(pictures):
    names = [f.source for f in stream(pictures, on_error=lambda *_: None)]
    assert names == [str(pictures / n) for n in ("a.png", "b.jpg")]  # broken.jpg went to on_error
    deep = [f.source for f in stream(pictures, recursive=True, on_error=lambda *_: None)]
    assert deep == [*names, str(pictures / "sub" / "c.png")]
    listed = image_files([pictures / "sub", pictures / "a.png"])
    assert listed == [pictures / "sub" / "c.png", pictures / "a.png"]
    empty = pictures / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="folder holds no images"):
        list(stream(empty))
    with pytest.raises(ImageError, match="no such file"):
        list(stream(pictures / "missing.png"))


def test_a_video_file(clip):
    frames = list(stream(clip))
    assert [f.index for f in frames] == list(range(6))
    assert [f.time_s for f in frames] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    assert frames[0].source == str(clip) and frames[0].image.shape == (48, 64, 3)
    assert abs(int(frames[3].image.mean()) - 120) < 6  # decoded in order, RGB
    assert [f.index for f in stream(str(clip), max_frames=2)] == [0, 1]
    with VideoStream(clip) as video:
        assert video.fps == pytest.approx(10.0) and video.frame_count == 6 and not video.is_camera
        assert len(list(stream(video, max_frames=4))) == 4
        assert [f.index for f in stream(video)] == [4, 5]  # a stream passed in is the caller's: left open
    with pytest.raises(VideoError, match="no such video"):
        list(stream(clip.with_name("missing.mp4")))


def test_cameras_and_other_sources(clip, tmp_path):
    with pytest.raises(VideoError, match="camera"):
        list(stream(7))
    with pytest.raises(VideoError, match="camera"):
        VideoStream("7")
    with pytest.raises(ConfigError, match="float"):
        list(stream(3.5))
    renamed = tmp_path / "clip.MOV"
    shutil.copy(clip, renamed)
    assert len(list(stream(renamed))) == 6  # a video by its extension, whatever the case


def test_stream_inference_gives_results(model_file, photos_dir, tmp_path, pictures):
    recognizer = Recognizer(model=model_file, backend="torch", detector="haar")
    clip = tmp_path / "faces.avi"
    face = cv2.resize(cv2.imread(str(photos_dir / "angry_man.jpg")), (240, 300))
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (240, 300))
    for _ in range(5):
        writer.write(face)
    writer.release()
    results = list(stream_inference(recognizer, clip, every=2))
    assert [(r.frame_index, r.time_s) for r in results] == [(0, 0.0), (2, 0.4), (4, 0.8)]
    assert all(r.source == str(clip) and r.shape == (300, 240) and len(r.faces) == 1 for r in results)
    assert results[0].to_rows()[0][:3] == [0, 0.0, 1]
    bad = []
    still = list(stream_inference(recognizer, [photos_dir / "angry_man.jpg", pictures / "broken.jpg"],
                                  on_error=lambda path, exc: bad.append(path.name)))
    assert len(still) == 1 and still[0].frame_index is None and len(still[0].faces) == 1
    assert bad == ["broken.jpg"]
    with pytest.raises(ConfigError, match="every"):
        next(stream_inference(recognizer, clip, every=0))
