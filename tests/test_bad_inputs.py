"""Reliability and safety: a catalogue of bad (and merely unusual) inputs, each through the CLI and the API.

Every case builds its input in tmp_path, from the real shared photos and FER2013 images where an
image is needed, and runs `ferkit.cli.main`. Then it checks what a user sees:

- the exit code (2 for a mistake; 0 where the input is fine, or where "no face" is the right answer);
- stderr (captured at the file-descriptor level, so OpenCV's or FFmpeg's own prints would count) holds
  exactly one non-empty line, starting `ferkit: error:`, naming the file (or CSV row) and the problem,
  and never a traceback; a success prints nothing on stderr at all;
- nothing half-written where the output was to go: no temporary `.*` files left by the atomic writes
  and no partial output file;

and, in a second assertion, that the same input through the Python API raises the documented
exception type (DataError, ImageError, VideoError, ModelFileError, OutputError, ConfigError), or works.

Output locations that cannot be written: the tests run as root, which ignores file modes, so a
chmod-ed folder would still be written to. A path *under a regular file* (`--out notes.txt/sub`)
cannot be created by anyone, root included, and fails the same way a read-only folder does
(`mkdir`/`mkstemp` raise OSError), so it stands in for "not writable". /proc would also refuse, but
its errors differ between kernels.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pickle
import shutil
import struct
import sys
import warnings
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from ferkit.atomic import write_bytes, write_json, write_text
from ferkit.cli import build_parser, main
from ferkit.config import TrainConfig
from ferkit.data import load_dataset
from ferkit.data.images import MAX_PIXELS, load_image
from ferkit.errors import (
    ConfigError,
    DataError,
    FerkitError,
    ImageError,
    ModelFileError,
    OutputError,
    VideoError,
)
from ferkit.evaluate import align_labels
from ferkit.experiment import read_config, train_run
from ferkit.models import create_model
from ferkit.models.files import ModelInfo, load_model, save_model
from ferkit.models.onnx import OnnxClassifier
from ferkit.predict import Recognizer
from ferkit.train import CHECKPOINT, load_checkpoint
from ferkit.video import open_video, process_video

GOOD_ROW = " ".join(["7"] * 2304)
CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


@dataclass
class Env:
    """What a case may use: its own tmp folder, monkeypatch, and the real shared inputs."""

    tmp: Path
    monkeypatch: pytest.MonkeyPatch
    photo: Path  # angry_man.jpg: one frontal face
    face48: Path  # one FER2013 48×48 jpg
    fer2013_small: Path
    model: Path  # an untrained seed_cnn model file (structure, not accuracy, matters here)

    @property
    def out(self) -> Path:
        return self.tmp / "out"

    def predict(self, *inputs: Path, out: bool = True) -> list[str]:
        argv = ["predict", *map(str, inputs), "--model", str(self.model), "--backend", "torch",
                "--no-progress"]
        return argv + (["--out", str(self.out), "--csv", str(self.out / "faces.csv")] if out else [])

    def video(self, path: Path) -> list[str]:
        return ["video", str(path), "--csv", str(self.out / "frames.csv"),
                "--plot", str(self.out / "plot.png"),
                "--model", str(self.model), "--backend", "torch", "--no-progress"]

    def train(self, data: Path | str, *extra: str) -> list[str]:
        return ["train", "--data", str(data), "--out", str(self.tmp / "run"), "--epochs", "1",
                "--precision", "fp32", "--no-progress", *extra]

    def recognizer(self) -> Recognizer:
        return Recognizer(model=self.model, backend="torch")

    def copy_model(self, name: str = "model.safetensors") -> Path:
        path = self.tmp / name
        shutil.copy(self.model, path)
        shutil.copy(self.model.with_suffix(".json"), path.with_suffix(".json"))
        return path


@dataclass
class Case:
    argv: list[str]
    words: tuple[str, ...]  # all in the one error line (or, for code 0, in stdout)
    api: Callable[[], Any]  # the same input through the Python API
    error: type[FerkitError] | None  # what `api` raises; None: it works (and `api` asserts the result)
    api_words: tuple[str, ...] | None = None  # in the API's message (default: `words`)
    code: int = 2
    absent: tuple[Path, ...] = ()  # must not exist afterwards: nothing partial
    present: tuple[Path, ...] = ()  # must exist, complete, afterwards
    after: Callable[[], None] | None = None  # further checks once the CLI has run
    extra: dict = field(default_factory=dict)


CASES: list = []


def case(name: str, *marks):
    def register(build: Callable[[Env], Case]) -> Callable[[Env], Case]:
        CASES.append(pytest.param(build, id=name, marks=marks))
        return build
    return register


def _rgb(env: Env) -> np.ndarray:
    return np.asarray(Image.open(env.photo).convert("RGB"))


def _decodes(path: Path) -> None:
    """load_image gives a full-range RGB picture of the photo's size."""
    rgb = load_image(path)
    gray = load_image(path, mode="gray")
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3 and gray.shape == rgb.shape[:2]
    assert int(gray.max()) - int(gray.min()) > 100  # real picture content, not a flat or clipped image


def _png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header claiming width×height RGB pixels, with one tiny IDAT: a decompression bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 4096))
            + chunk(b"IEND", b""))


def _tree(root: Path, image: Path, files: list[str]) -> Path:
    """Copies of `image` at the relative paths; "x/" makes an empty folder."""
    for rel in files:
        target = root / rel
        if rel.endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(image, target)
    return root


class _Tripwire:
    """Unpickling this creates UNPICKLED_MARKER in the working directory: proof that a loader unpickled."""

    def __reduce__(self):
        return (open, ("UNPICKLED_MARKER", "w"))


# ---------------------------------------------------------------- missing paths, files vs folders

@case("missing-image")
def _(env):
    path = env.tmp / "holiday.jpg"
    return Case(env.predict(path), ("holiday.jpg", "no such file"), lambda: load_image(path), ImageError,
                absent=(env.out,))


@case("missing-dataset")
def _(env):
    path = env.tmp / "fer2013"
    return Case(env.train(path), ("fer2013", "no such file or folder"), lambda: load_dataset(path), DataError,
                absent=(env.tmp / "run",))


@case("missing-video")
def _(env):
    path = env.tmp / "clip.mp4"
    return Case(env.video(path), ("clip.mp4", "no such video file"), lambda: open_video(str(path)),
                VideoError, absent=(env.out,))


@case("missing-model")
def _(env):
    path = env.tmp / "gone.safetensors"
    return Case(["predict", str(env.photo), "--model", str(path), "--backend", "torch"],
                ("gone.safetensors", "no such model file"), lambda: load_model(path), ModelFileError)


@case("folder-without-images-as-image")
def _(env):
    folder = env.tmp / "holiday"
    folder.mkdir()
    (folder / "notes.txt").write_text("no pictures here")
    return Case(env.predict(folder), ("holiday", "folder holds no images"), lambda: load_image(folder),
                ImageError, api_words=("holiday", "is a directory"), absent=(env.out,))


@case("folder-as-video")
def _(env):
    folder = env.tmp / "clips.mp4"
    folder.mkdir()
    return Case(env.video(folder), ("clips.mp4", "is a directory"), lambda: open_video(str(folder)),
                VideoError, absent=(env.out,))


@case("folder-as-model")
def _(env):
    folder = env.tmp / "mymodel"
    folder.mkdir()
    return Case(["predict", str(env.photo), "--model", str(folder), "--backend", "torch"],
                ("mymodel", "is a directory"), lambda: load_model(folder), ModelFileError)


@case("file-as-dataset")
def _(env):
    path = env.tmp / "face.jpg"
    shutil.copy(env.face48, path)
    return Case(env.train(path), ("face.jpg", "is a file, not a dataset"), lambda: load_dataset(path),
                DataError, absent=(env.tmp / "run",))


@case("csv-where-folder-format-forced")
def _(env):
    path = env.tmp / "fer2013.csv"
    path.write_text(f"emotion,pixels,Usage\n0,{GOOD_ROW},Training\n")
    return Case(env.train(path, "--format", "folders"), ("fer2013.csv", "reads a folder"),
                lambda: load_dataset(path, format="folders"), DataError, absent=(env.tmp / "run",))


# ---------------------------------------------------------------- images that cannot be decoded

@case("zero-byte-image")
def _(env):
    path = env.tmp / "empty.jpg"
    path.write_bytes(b"")
    return Case(env.predict(path), ("empty.jpg", "empty (0 bytes)"), lambda: load_image(path), ImageError,
                absent=(env.out,))


@case("truncated-jpeg")
def _(env):
    data = env.photo.read_bytes()
    path = env.tmp / "half.jpg"
    path.write_bytes(data[: len(data) // 2])
    return Case(env.predict(path), ("half.jpg", "truncated"), lambda: load_image(path), ImageError,
                absent=(env.out,))


@case("random-bytes-named-jpg")
def _(env):
    path = env.tmp / "noise.jpg"
    path.write_bytes(np.random.default_rng(0).bytes(8192))
    return Case(env.predict(path), ("noise.jpg", "not an image file"), lambda: load_image(path), ImageError,
                absent=(env.out,))


@case("text-named-png")
def _(env):
    path = env.tmp / "readme.png"
    path.write_text("This is a text file with a .png name.\n" * 20)
    return Case(env.predict(path), ("readme.png", "not an image file"), lambda: load_image(path), ImageError,
                absent=(env.out,))


@case("decompression-bomb-100k")
def _(env):
    path = env.tmp / "bomb.png"
    path.write_bytes(_png_claiming(100_000, 100_000))  # 10 gigapixels claimed in a 100-byte file
    return Case(env.predict(path), ("bomb.png", "too large", f"{MAX_PIXELS:,}"), lambda: load_image(path),
                ImageError, absent=(env.out,))


@case("decompression-bomb-just-over-limit")
def _(env):
    path = env.tmp / "big.png"
    path.write_bytes(_png_claiming(11_000, 11_000))  # 121 M pixels: over the limit, under Pillow's hard 2×
    return Case(env.predict(path), ("big.png", "too large"), lambda: load_image(path), ImageError,
                absent=(env.out,))


@case("one-bad-image-among-good")
def _(env):
    bad = env.tmp / "broken.jpg"
    data = env.photo.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    good = env.tmp / "good.jpg"
    shutil.copy(env.photo, good)

    def after():  # the good picture's results are complete; the bad one left nothing
        rows = (env.out / "faces.csv").read_text().splitlines()
        assert len(rows) == 2 and rows[1].startswith(str(good))
        assert sorted(p.name for p in env.out.iterdir()) == ["faces.csv", "good_annotated.jpg"]

    return Case(env.predict(bad, good), ("broken.jpg", "truncated"), lambda: load_image(bad), ImageError,
                present=(env.out / "good_annotated.jpg",), after=after)


# ---------------------------------------------------------------- unusual images that must work

def _works(env: Env, path: Path, words: tuple[str, ...] | None = None) -> Case:
    return Case(env.predict(path), words or (f"{path.name}: face 1",), lambda: _decodes(path), None, code=0,
                present=(env.out / f"{path.stem}_annotated.jpg", env.out / "faces.csv"))


@case("png-16-bit")
def _(env):
    gray = np.asarray(Image.open(env.photo).convert("L"), dtype=np.uint16) * 257
    path = env.tmp / "deep.png"
    Image.fromarray(gray).save(path)
    assert Image.open(path).mode == "I;16"
    return _works(env, path)


@case("jpeg-cmyk")
def _(env):
    path = env.tmp / "print.jpg"
    Image.open(env.photo).convert("CMYK").save(path, quality=95)
    assert Image.open(path).mode == "CMYK"
    return _works(env, path)


@case("png-rgba")
def _(env):
    rgba = np.dstack([_rgb(env), np.full(_rgb(env).shape[:2], 255, np.uint8)])
    rgba[:40, :, 3] = 0  # a transparent band on top
    path = env.tmp / "cutout.png"
    Image.fromarray(rgba, "RGBA").save(path)
    return _works(env, path)


@case("png-palette")
def _(env):
    path = env.tmp / "indexed.png"
    Image.open(env.photo).convert("P", palette=Image.Palette.ADAPTIVE, colors=64).save(path)
    assert Image.open(path).mode == "P"
    return _works(env, path)


@case("png-palette-transparent")
def _(env):
    path = env.tmp / "indexed_alpha.png"
    image = Image.open(env.photo).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    image.save(path, transparency=0)
    assert "transparency" in Image.open(path).info
    return _works(env, path)


@case("image-10000x10000", pytest.mark.slow)
def _(env):
    """100 M pixels (under MAX_PIXELS) works. Measured on 2 cores: about 20-27 s and a peak of 3.8 GB
    (1.2 GB decoding, the rest MTCNN's first pyramid level at 6000×6000), white or photo content."""
    path = env.tmp / "poster.png"
    Image.new("RGB", (10_000, 10_000), "white").save(path)  # compresses to 0.3 MB
    assert path.stat().st_size < 1_000_000

    def api():
        assert load_image(path, mode="gray").shape == (10_000, 10_000)

    return Case(env.predict(path), ("poster.png: no face found",), api, None, code=0,
                present=(env.out / "poster_annotated.jpg", env.out / "faces.csv"))


@case("no-face")
def _(env):
    path = env.tmp / "wall.jpg"
    Image.fromarray(_rgb(env)[:90, :]).resize((425, 300)).save(path)  # hair and wall above the face

    def after():
        assert (env.out / "faces.csv").read_text().count("\n") == 1  # header only: an empty, complete result

    def api():
        assert env.recognizer()(path).faces == []

    return Case(env.predict(path), ("wall.jpg: no face found",), api, None, code=0,
                present=(env.out / "wall_annotated.jpg", env.out / "faces.csv"), after=after)


# ---------------------------------------------------------------- datasets

@case("dataset-no-class-folders")
def _(env):
    root = _tree(env.tmp / "flat", env.face48, ["a.jpg", "b.jpg"])
    return Case(env.train(root), ("flat", "2 images but no class folders"),
                lambda: load_dataset(root, cache=False), DataError, absent=(env.tmp / "run",))


@case("dataset-empty-class-folder")
def _(env):
    root = _tree(env.tmp / "faces", env.face48, ["happy/a.jpg", "sad/"])
    return Case(env.train(root), ("faces/sad", "class folder has no images"),
                lambda: load_dataset(root, cache=False), DataError, absent=(env.tmp / "run",))


@case("dataset-classes-differ-between-splits")
def _(env):
    root = _tree(env.tmp / "faces", env.face48,
                 ["train/happy/a.jpg", "train/sad/b.jpg", "train/angry/c.jpg", "test/happy/d.jpg"])
    return Case(env.train(root), ("faces", "class folders differ between splits", "test lacks angry, sad"),
                lambda: load_dataset(root, cache=False), DataError, absent=(env.tmp / "run",))


@case("dataset-every-image-unreadable")
def _(env):
    root = env.tmp / "faces"
    for rel in ("happy/a.jpg", "sad/b.png"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return Case(env.train(root), ("no readable images", "happy/a.jpg"),
                lambda: load_dataset(root, cache=False), DataError, absent=(env.tmp / "run",))


@case("dataset-decompression-bombs")
def _(env):
    root = env.tmp / "faces"
    for rel in ("happy/a.png", "sad/b.png"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(_png_claiming(100_000, 100_000))
    return Case(env.train(root), ("no readable images", "happy/a.png", "too large"),
                lambda: load_dataset(root, cache=False), DataError, absent=(env.tmp / "run",))


@case("dataset-too-small-to-split")
def _(env):
    root = _tree(env.tmp / "tiny", env.face48, ["happy/a.jpg", "sad/b.jpg"])

    def api():
        train_run(TrainConfig(data=str(root), epochs=1, precision="fp32"), env.tmp / "run2", progress=False,
                  log=lambda _: None)

    return Case(env.train(root), ("tiny", "needs images in both splits", "too small"), api, DataError,
                absent=(env.tmp / "run" / CHECKPOINT, env.tmp / "run2" / CHECKPOINT))


def _csv_case(env: Env, text: str, words: tuple[str, ...], name: str = "fer2013.csv") -> Case:
    path = env.tmp / name
    path.write_text(text)
    return Case(env.train(path), (name, *words), lambda: load_dataset(path, cache=False), DataError,
                absent=(env.tmp / "run",))


@case("csv-missing-column")
def _(env):
    return _csv_case(env, "emotion,Usage\n0,Training\n",
                     ("missing column 'pixels'", "found columns: emotion, Usage"))


@case("csv-row-with-2303-pixels")
def _(env):
    short = " ".join(["7"] * 2303)
    return _csv_case(env, f"emotion,pixels,Usage\n0,{GOOD_ROW},Training\n3,{short},Training\n",
                     ("row 3", "2303 pixels, expected 2304 (48×48)"))


@case("csv-non-numeric-pixels")
def _(env):
    return _csv_case(env, f"emotion,pixels,Usage\n0,{GOOD_ROW},Training\n1,{GOOD_ROW[:-1]}7x,PublicTest\n",
                     ("row 3", "non-numeric pixel value '7x'"))


@case("csv-unknown-label")
def _(env):
    return _csv_case(env, f"emotion,pixels,Usage\n0,{GOOD_ROW},Training\n9,{GOOD_ROW},Training\n",
                     ("row 3", "unknown label 9", "0..6"))


@case("csv-unknown-usage")
def _(env):
    return _csv_case(env, f"emotion,pixels,Usage\n0,{GOOD_ROW},Training\n0,{GOOD_ROW},Validation\n",
                     ("row 3", "Usage 'Validation'", "Training, PublicTest, PrivateTest"))


@case("csv-binary-file")
def _(env):
    path = env.tmp / "fer2013.csv"
    path.write_bytes(b"emotion,pixels,Usage\n\xff\xfe\x00\x81garbage")
    return Case(env.train(path), ("fer2013.csv", "not a text CSV"), lambda: load_dataset(path, cache=False),
                DataError, absent=(env.tmp / "run",))


# ---------------------------------------------------------------- videos

@case("video-cannot-be-opened")
def _(env):
    path = env.tmp / "notes.mp4"
    path.write_text("this is not a video\n" * 50)
    return Case(env.video(path), ("notes.mp4", "cannot open"),
                lambda: process_video(path, env.recognizer(), csv_path=env.out / "frames.csv"), VideoError,
                absent=(env.out,))


@case("video-with-no-frames")
def _(env):
    path = env.tmp / "empty.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 64))
    writer.release()
    return Case(env.video(path), ("empty.avi",),
                lambda: process_video(path, env.recognizer(), csv_path=env.out / "frames.csv"), VideoError,
                absent=(env.out / "frames.csv", env.out / "plot.png"))


# ---------------------------------------------------------------- model files

@case("model-corrupt")
def _(env):
    path = env.copy_model("broken.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return Case(env.predict(env.photo) + ["--model", str(path)], ("broken.safetensors", "corrupt"),
                lambda: load_model(path), ModelFileError, absent=(env.out,))


@case("model-is-a-pickle")
def _(env):
    env.monkeypatch.chdir(env.tmp)
    path = env.tmp / "evil.safetensors"
    path.write_bytes(pickle.dumps(_Tripwire()))
    path.with_suffix(".json").write_text(json.dumps({"model_name": "seed_cnn", "class_names": CLASSES}))

    def after():
        assert not (env.tmp / "UNPICKLED_MARKER").exists()

    def api():
        try:
            load_model(path)
        finally:
            after()

    return Case(env.predict(env.photo) + ["--model", str(path)], ("evil.safetensors", "never unpickles"), api,
                ModelFileError, absent=(env.out,), after=after)


@case("model-is-a-torch-save-zip")
def _(env):
    env.monkeypatch.chdir(env.tmp)
    path = env.tmp / "model.pt"
    torch.save({"weights": torch.zeros(2), "trap": _Tripwire()}, path)
    path.with_suffix(".json").write_text(json.dumps({"model_name": "seed_cnn", "class_names": CLASSES}))

    def after():
        assert not (env.tmp / "UNPICKLED_MARKER").exists()

    return Case(["predict", str(env.photo), "--model", str(path), "--backend", "torch"],
                ("model.pt", "never unpickles"), lambda: load_model(path), ModelFileError, after=after)


@case("model-onnx-corrupt")
def _(env):
    path = env.tmp / "exported.onnx"
    path.write_bytes(env.model.read_bytes()[:5000])  # safetensors bytes under an .onnx name

    return Case(env.predict(env.photo) + ["--model", str(path)], ("exported.onnx", "not an ONNX model"),
                lambda: OnnxClassifier.load(path), ModelFileError, absent=(env.out,))


@case("model-sidecar-missing")
def _(env):
    path = env.copy_model("lonely.safetensors")
    path.with_suffix(".json").unlink()
    return Case(env.predict(env.photo) + ["--model", str(path)], ("lonely.json", "sidecar", "missing"),
                lambda: load_model(path), ModelFileError, absent=(env.out,))


@case("model-sidecar-other-input-size")
def _(env):
    path = env.copy_model()
    meta = path.with_suffix(".json")
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "in_size": 64}))
    return Case(env.predict(env.photo) + ["--model", str(path)], ("model.safetensors", "do not fit", "64px"),
                lambda: load_model(path), ModelFileError, absent=(env.out,))


@case("model-sidecar-other-class-count")
def _(env):
    path = env.copy_model()
    meta = path.with_suffix(".json")
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "class_names": [*CLASSES, "contempt"]}))
    return Case(env.predict(env.photo) + ["--model", str(path)],
                ("model.safetensors", "8 classes", "shape mismatch"), lambda: load_model(path),
                ModelFileError, absent=(env.out,))


@case("model-sidecar-wrong-types")
def _(env):  # used to load, then fail with a TypeError traceback on the first face
    path = env.copy_model()
    meta = path.with_suffix(".json")
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "mean": "0.5"}))
    return Case(env.predict(env.photo) + ["--model", str(path)],
                ("model.json", "mean and std must be numbers"),
                lambda: load_model(path), ModelFileError, absent=(env.out,))


@case("model-classes-differ-from-data")
def _(env):
    run = env.tmp / "run"
    write_json(run / "config.json", asdict(TrainConfig(data=str(env.fer2013_small), model="seed_cnn")))
    torch.manual_seed(0)
    save_model(run / "best.safetensors", create_model("seed_cnn", num_classes=2).eval(),
               ModelInfo("seed_cnn", ["happy", "contempt"]))
    name = env.fer2013_small.name
    return Case(["evaluate", "--run", str(run), "--out", str(env.out)], (name, "model knows", "angry"),
                lambda: align_labels(["happy", "contempt"], load_dataset(env.fer2013_small)), ModelFileError,
                absent=(env.out,))


# ---------------------------------------------------------------- runs and checkpoints

def _run_dir(env: Env, checkpoint: bytes | None = None) -> Path:
    run = env.tmp / "run"
    write_json(run / "config.json",
               asdict(TrainConfig(data=str(env.fer2013_small), epochs=2, precision="fp32")))
    if checkpoint is not None:
        (run / CHECKPOINT).write_bytes(checkpoint)
    return run


def _resume_case(env: Env, run: Path, words: tuple[str, ...], error=ModelFileError) -> Case:
    before = sorted(p.name for p in run.iterdir())

    def after():  # nothing was written into the run
        assert sorted(p.name for p in run.iterdir()) == before

    return Case(["train", "--resume", str(run), "--no-progress"], words, lambda: load_checkpoint(run), error,
                after=after)


@case("resume-not-a-run")
def _(env):
    folder = env.tmp / "photos"
    folder.mkdir()
    return Case(["train", "--resume", str(folder)], ("photos", "not a ferkit run directory"),
                lambda: read_config(folder), ConfigError)


@case("resume-run-without-checkpoint")
def _(env):
    return _resume_case(env, _run_dir(env), ("checkpoint.pt", "no checkpoint to resume from"))


@case("checkpoint-corrupt")
def _(env):
    run = _run_dir(env, np.random.default_rng(1).bytes(3000))
    return _resume_case(env, run, ("checkpoint.pt", "corrupt or not a ferkit checkpoint"))


@case("checkpoint-truncated")
def _(env):
    run = _run_dir(env)
    torch.save({"epoch": 1, "model": create_model("seed_cnn").state_dict()}, run / CHECKPOINT)
    data = (run / CHECKPOINT).read_bytes()
    (run / CHECKPOINT).write_bytes(data[: len(data) // 2])
    return _resume_case(env, run, ("checkpoint.pt", "corrupt"))


@case("checkpoint-foreign-state-dict")
def _(env):
    run = _run_dir(env)
    torch.save(create_model("seed_cnn").state_dict(), run / CHECKPOINT)  # loads safely, but is not ours
    return _resume_case(env, run, ("checkpoint.pt", "not a ferkit checkpoint", "missing epoch"))


@case("checkpoint-with-pickle-tripwire")
def _(env):
    env.monkeypatch.chdir(env.tmp)
    run = _run_dir(env)
    torch.save({"epoch": 1, "trap": _Tripwire()}, run / CHECKPOINT)
    built = _resume_case(env, run, ("checkpoint.pt", "refused", "never unpickles"))
    check_run = built.after

    def after():
        check_run()
        assert not (env.tmp / "UNPICKLED_MARKER").exists()

    built.after = after
    return built


@case("disk-full-during-checkpoint")
def _(env):
    """The second checkpoint write fails with ENOSPC after some bytes: the first stays, whole and loadable."""
    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        if obj["epoch"] == 1:
            return real_save(obj, f, *args, **kwargs)
        f.write(b"PK\x03\x04" + b"\0" * 4096)  # part of the new checkpoint reaches the disk, then it is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    env.monkeypatch.setattr(torch, "save", save)
    runs = env.tmp / "run", env.tmp / "api_run"

    def holds_epoch_one(run: Path) -> None:
        state = torch.load(run / CHECKPOINT, weights_only=True)
        assert state["epoch"] == 1 and [h["epoch"] for h in state["history"]] == [1]
        assert [h["epoch"] for h in json.loads((run / "history.json").read_text())] == [1]
        assert not [p for p in run.iterdir() if p.name.startswith(".")]

    def api():
        cfg = TrainConfig(data=str(env.fer2013_small), epochs=2, precision="fp32", threads=1)
        try:
            train_run(cfg, runs[1], progress=False, log=lambda _: None)
        finally:
            holds_epoch_one(runs[1])

    argv = ["train", "--data", str(env.fer2013_small), "--out", str(runs[0]), "--epochs", "2",
            "--precision", "fp32", "--threads", "1", "--no-progress"]
    return Case(argv, ("checkpoint.pt", "No space left on device"), api, OutputError,
                absent=(runs[0] / "metrics.json",), after=lambda: holds_epoch_one(runs[0]))


# ---------------------------------------------------------------- outputs that cannot be written

@case("output-folder-is-a-file")
def _(env):
    target = env.tmp / "results.txt"
    target.write_text("an existing file\n")
    return Case(["predict", str(env.photo), "--model", str(env.model), "--backend", "torch",
                 "--out", str(target)],
                ("results.txt", "cannot write here", "is a file, not a folder"),
                lambda: write_bytes(target / "a.jpg", b"x"), OutputError,
                after=lambda: target.read_text() == "an existing file\n")


@case("output-not-writable")
def _(env):
    # root ignores chmod: a path under a regular file is unwritable for anyone
    blocker = env.tmp / "notes.txt"
    blocker.write_text("a file, not a folder\n")
    run = blocker / "run"

    def api():
        train_run(TrainConfig(data=str(env.fer2013_small), epochs=1, precision="fp32"), run, progress=False,
                  log=lambda _: None)

    return Case(["train", "--data", str(env.fer2013_small), "--out", str(run), "--epochs", "1",
                 "--no-progress"],
                ("notes.txt/run", "cannot write here", "notes.txt is a file, not a folder"), api, OutputError)


@case("csv-output-is-a-folder")
def _(env):
    folder = env.tmp / "faces.csv"
    folder.mkdir()
    return Case(["predict", str(env.photo), "--model", str(env.model), "--backend", "torch",
                 "--csv", str(folder)],
                ("faces.csv", "write failed"), lambda: write_text(folder, "x"), OutputError,
                after=lambda: not list(folder.iterdir()))


@case("video-output-under-a-file")
def _(env):
    blocker = env.tmp / "notes.txt"
    blocker.write_text("a file\n")
    clip = env.tmp / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (425, 521))
    frame = cv2.cvtColor(_rgb(env), cv2.COLOR_RGB2BGR)
    for _ in range(2):
        writer.write(frame)
    writer.release()
    return Case(["video", str(clip), "--csv", str(blocker / "frames.csv"), "--model", str(env.model),
                 "--backend", "torch", "--no-progress"],
                ("notes.txt/frames.csv", "notes.txt is a file, not a folder"),
                lambda: process_video(clip, env.recognizer(), csv_path=blocker / "frames.csv"), OutputError)


# ---------------------------------------------------------------- options

@case("unknown-dataset-format")
def _(env):
    return Case(env.train(env.fer2013_small, "--format", "imagenet"),
                ("--format", "invalid choice", "imagenet"),
                lambda: load_dataset(env.fer2013_small, format="imagenet"), ConfigError,
                api_words=("imagenet", "fer2013-folders"), absent=(env.tmp / "run",))


@case("negative-epochs")
def _(env):
    return Case(env.train(env.fer2013_small, "--epochs", "-3"), ("epochs -3", "≥ 1"),
                lambda: TrainConfig(epochs=-3), ConfigError, absent=(env.tmp / "run",))


@case("zero-epochs")
def _(env):  # used to be read as "not given" and train the default 30 epochs
    return Case(env.train(env.fer2013_small, "--epochs", "0"), ("epochs 0", "≥ 1"),
                lambda: TrainConfig(epochs=0), ConfigError, absent=(env.tmp / "run",))


@case("negative-threads")
def _(env):
    return Case(env.train(env.fer2013_small, "--threads", "-2"), ("threads", "-2"),
                lambda: TrainConfig(threads=-2), ConfigError, absent=(env.tmp / "run",))


@case("epochs-not-a-number")
def _(env):
    return Case(env.train(env.fer2013_small, "--epochs", "five"), ("--epochs", "invalid int value: 'five'"),
                lambda: build_parser().parse_args(["train", "--epochs", "five"]), ConfigError,
                absent=(env.tmp / "run",))


@case("negative-min-face-size")
def _(env):
    return Case(env.predict(env.photo) + ["--min-face-size", "-5"], ("min_face_size", "-5"),
                lambda: Recognizer(model=env.model, min_face_size=-5, backend="torch"), ConfigError,
                absent=(env.out,))


@case("video-smoothing-out-of-range")
def _(env):
    clip = env.tmp / "clip.avi"  # any file: the options are checked before the video is opened
    clip.write_bytes(b"")
    return Case(env.video(clip) + ["--smooth", "1.5"], ("--smooth", "1.5"),
                lambda: process_video(clip, env.recognizer(), csv_path=env.out / "f.csv", smoothing=1.5),
                ConfigError, api_words=("smoothing", "1.5"), absent=(env.out,))


@case("unknown-detector")
def _(env):
    return Case(env.predict(env.photo) + ["--detector", "yolo"], ("yolo", "mtcnn, haar"),
                lambda: Recognizer(model=env.model, detector="yolo", backend="torch"), ConfigError,
                absent=(env.out,))


# ---------------------------------------------------------------- the test

@contextlib.contextmanager
def _warnings_as_a_user_sees_them():
    """Show warnings on stderr under Python's default filters (pytest would otherwise collect them)."""
    with warnings.catch_warnings():
        warnings.resetwarnings()
        warnings.simplefilter("default")
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.simplefilter("ignore", category)
        warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: (
            sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line)))
        yield


@pytest.fixture
def env(tmp_path, monkeypatch, photos_dir, fer2013_dir, fer2013_small, model_file):
    face48 = next((fer2013_dir / "train" / "happy").iterdir())
    threads = torch.get_num_threads()
    yield Env(tmp_path, monkeypatch, photos_dir / "angry_man.jpg", face48, fer2013_small, model_file)
    torch.set_num_threads(threads)  # `train` sets the process's thread count


@pytest.mark.parametrize("build", CASES)
def test_bad_input(build, env, capfd):
    case = build(env)
    capfd.readouterr()
    with _warnings_as_a_user_sees_them():
        code = main(case.argv)
    out, err = capfd.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert code == case.code, f"exit {code}\n{err}"
    if case.code == 0:
        assert not lines, err
        assert all(w in out for w in case.words), (case.words, out)
    else:
        assert len(lines) == 1 and lines[0].startswith("ferkit: error: "), err
        missing = [w for w in case.words if w not in lines[0]]
        assert not missing, f"{missing} not in {lines[0]!r}"
    leftovers = [p for p in env.tmp.rglob(".*")]  # the atomic writes' temporary files
    leftovers += list(Path(os.environ["FERKIT_CACHE"]).glob(".*"))
    assert not leftovers, leftovers
    for path in case.absent:
        assert not path.exists(), f"{path} was written"
    for path in case.present:
        assert path.is_file() and path.stat().st_size > 0, path
    if case.after is not None:
        assert case.after() is not False

    # The Python API: the same input raises the documented type, or works.
    if case.error is None:
        case.api()
        return
    with pytest.raises(case.error) as info:
        case.api()
    if issubclass(case.error, FerkitError):
        message = str(info.value)
        assert "\n" not in message
        missing = [w for w in (case.api_words or case.words) if w not in message]
        assert not missing, f"{missing} not in {message!r}"
