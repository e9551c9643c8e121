"""`ferkit video` and `ferkit webcam` end to end, against the `fer` package on the same frames, and memory.

    .venv/bin/python benchmarks/video_speed.py [--quick] [--minutes 10] [--detector yunet] [--no-peers]

Builds a 640×480 clip at 30 fps in a temporary folder (never in the repository): 150 frames, five scenes
of one second made of the shared photos letterboxed side by side (1 to 3 faces), each slowly panned so
that no two frames are the same. Then, one after the other in this run:

- `ferkit video CLIP --out OUT.mp4 --csv OUT.csv` as a user runs it (a subprocess): wall time including
  start-up, and the frames/s of its frame loop (decode, detect, classify, draw, encode; printed by ferkit);
- `ferkit webcam --source CLIP --no-window`: the live loop on the same frames, without a window;
- the `fer` package (benchmarks/peer_fer_video.py, in the peers' environment of benchmarks/peers.py, with
  ferkit's OpenCV 4, see `ferkits_opencv`): `FER()` with its default Haar detector, `detect_emotions` per
  frame, boxes and labels drawn, encoded with cv2.VideoWriter; its frames/s and faces found, and ferkit's
  frames/s over fer's;
- memory: the resident set size of `ferkit video` sampled every 0.1 s, on the short clip and on a long one
  (the short clip looped to `--minutes`; `--quick` makes it 20 s), at 10 %, 50 % and 100 % of the run.

The output is Markdown tables, with the CPU model and the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
sys.path.insert(0, str(BENCHMARKS))

from machine import cpu_line  # noqa: E402
from peers import ferkits_opencv, peers_python_or_reason  # noqa: E402

DATASETS = Path(os.environ.get("FERKIT_DATASETS", REPO.parent / "shared" / "datasets"))
SIZE = (640, 480)
FPS = 30.0
SCENE_FRAMES = 30
PAN = 1.1  # each scene is drawn 10 % larger than the frame, and the frame slides across it
# Each scene: the photos (relative to photos/) shown side by side; labelled faces in brackets.
SCENES = [
    ["angry_man.jpg"],                                  # 1
    ["angry_man.jpg", "crying_woman.jpg"],              # 2
    ["expw/angry_couple_330.jpg"],                      # 2
    ["crying_woman.jpg", "expw/fierce_family_612.jpg"],  # 3
    ["angry_man.jpg", "crying_woman.jpg", "angry_man.jpg"],  # 3
]


# ---------------------------------------------------------------- the clip

def letterbox(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """`rgb` scaled to fit width×height, centred on black."""
    scale = min(width / rgb.shape[1], height / rgb.shape[0])
    w, h = max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale))
    out = np.zeros((height, width, 3), np.uint8)
    x, y = (width - w) // 2, (height - h) // 2
    out[y:y + h, x:x + w] = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
    return out


def scene_canvas(photos: list[str], photos_dir: Path) -> np.ndarray:
    """The scene's photos letterboxed side by side on a canvas PAN times the frame size (BGR)."""
    width, height = round(SIZE[0] * PAN), round(SIZE[1] * PAN)
    tile = width // len(photos)
    tiles = [letterbox(np.asarray(Image.open(photos_dir / name).convert("RGB")), tile, height)
             for name in photos]
    canvas = np.zeros((height, width, 3), np.uint8)
    canvas[:, :tile * len(tiles)] = np.concatenate(tiles, axis=1)
    return cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR)


def clip_frames(photos_dir: Path) -> list[np.ndarray]:
    """The 150 BGR frames of the short clip: each scene panned from top-left to bottom-right."""
    frames = []
    for photos in SCENES:
        canvas = scene_canvas(photos, photos_dir)
        spare_x, spare_y = canvas.shape[1] - SIZE[0], canvas.shape[0] - SIZE[1]
        for i in range(SCENE_FRAMES):
            x, y = spare_x * i // (SCENE_FRAMES - 1), spare_y * i // (SCENE_FRAMES - 1)
            frames.append(np.ascontiguousarray(canvas[y:y + SIZE[1], x:x + SIZE[0]]))
    return frames


def write_clip(path: Path, frames: list[np.ndarray], total: int) -> Path:
    """`total` frames (the given ones, looped) as an mp4v video at FPS."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
    for n in range(total):
        writer.write(frames[n % len(frames)])
    writer.release()
    return path


# ---------------------------------------------------------------- running and sampling a command

@dataclass
class Run:
    """A finished subprocess: its output, wall time and resident memory over time (MB, by seconds)."""

    stdout: str
    wall_s: float
    rss: list[tuple[float, float]] = field(default_factory=list)
    peak_mb: float = 0.0

    def rss_at(self, fraction: float) -> float:
        """Resident MB at `fraction` of the run (the nearest sample at or before that time)."""
        moment = fraction * self.wall_s
        before = [mb for t, mb in self.rss if t <= moment] or [self.rss[0][1]]
        return before[-1]


def _status_mb(pid: int, key: str) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_sampled(command: list[str], env: dict[str, str]) -> Run:
    """Run `command`, sampling its RSS (and peak, VmHWM) every 0.1 s; raise if it fails."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    samples: list[tuple[float, float]] = []
    peak = [0.0]

    def sample() -> None:
        while process.poll() is None:
            rss, hwm = _status_mb(process.pid, "VmRSS"), _status_mb(process.pid, "VmHWM")
            if rss is not None:
                samples.append((time.perf_counter() - start, rss))
                peak[0] = max(peak[0], hwm or rss)
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = process.communicate()
    wall = time.perf_counter() - start
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}): {err.strip()[-500:]}")
    return Run(out, wall, samples, peak[0])


def ferkit_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO / "src")}


def ferkit(*args: str) -> list[str]:
    return [sys.executable, "-m", "ferkit", *args]


# ---------------------------------------------------------------- the measurements

def measure_ferkit_video(clip: Path, work: Path, detector: str | None) -> dict:
    extra = ["--detector", detector] if detector else []
    run = run_sampled(ferkit("video", str(clip), "--out", str(work / "ferkit.mp4"), "--csv",
                             str(work / "ferkit.csv"), "--no-progress", *extra), ferkit_env())
    match = re.search(r"(\d+) frames .* (\d+) face detections.* in ([\d.]+) s \(([\d.]+) frames/s\)",
                      run.stdout)
    if match is None:
        raise RuntimeError(f"unexpected output of ferkit video: {run.stdout!r}")
    frames, faces, loop_s, fps = int(match[1]), int(match[2]), float(match[3]), float(match[4])
    return {"run": run, "frames": frames, "faces": faces, "loop_s": loop_s, "fps": fps}


def measure_ferkit_webcam(clip: Path, detector: str | None) -> dict:
    extra = ["--detector", detector] if detector else []
    run = run_sampled(ferkit("webcam", "--source", str(clip), "--no-window", *extra), ferkit_env())
    match = re.search(r"(\d+) frames, (\d+) faces, ([\d.]+) fps", run.stdout)
    if match is None:
        raise RuntimeError(f"unexpected output of ferkit webcam: {run.stdout!r}")
    return {"run": run, "frames": int(match[1]), "faces": int(match[2]), "fps": float(match[3])}


def measure_fer(clip: Path, work: Path, python: Path) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": str(ferkits_opencv(work))}
    run = run_sampled([str(python), str(BENCHMARKS / "peer_fer_video.py"), str(clip), str(work / "fer.mp4")],
                      env)
    result = json.loads(run.stdout.strip().splitlines()[-1])
    return {"run": run, **result, "fps": result["frames"] / result["loop_s"]}


# ---------------------------------------------------------------- the report

def machine_line() -> str:
    return f"CPU: {cpu_line()}; load average {load_average()}"


def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.3g} min"


def load_average() -> str:
    return " / ".join(f"{v:.2f}" for v in os.getloadavg())


def print_speed_table(frames: int, video: dict, webcam: dict, fer: dict | None, why_no_fer: str) -> None:
    print(f"\n### Speed: {frames} frames of {SIZE[0]}×{SIZE[1]} at {FPS:g} fps\n")
    print("| what | frames/s (loop) | wall time incl. start-up | faces found | faces/frame |")
    print("|---|---|---|---|---|")
    print(f"| `ferkit video --out --csv` | **{video['fps']:.1f}** | {video['run'].wall_s:.1f} s | "
          f"{video['faces']} | {video['faces'] / video['frames']:.2f} |")
    print(f"| `ferkit webcam --source --no-window` | {webcam['fps']:.1f} | {webcam['run'].wall_s:.1f} s | "
          f"{webcam['faces']} | {webcam['faces'] / webcam['frames']:.2f} |")
    if fer is None:
        print(f"\n`fer` not measured: {why_no_fer}")
        return
    print(f"| `fer` (FER(), Haar) + draw + cv2.VideoWriter | {fer['fps']:.1f} | {fer['run'].wall_s:.1f} s | "
          f"{fer['faces']} | {fer['faces'] / fer['frames']:.2f} |")
    print(f"\nferkit video / fer: **{video['fps'] / fer['fps']:.2f}×** frames/s "
          f"(target ≥ 1.5×; ≥ 30 frames/s: {'met' if video['fps'] >= 30 else 'MISSED'})")


def print_memory_table(runs: list[tuple[str, Run]]) -> None:
    print("\n### Memory of `ferkit video` (resident set size, MB)\n")
    print("| clip | wall time | at 10 % | at 50 % | at 100 % | peak |")
    print("|---|---|---|---|---|---|")
    for name, run in runs:
        print(f"| {name} | {run.wall_s:.0f} s | {run.rss_at(0.1):.0f} | {run.rss_at(0.5):.0f} | "
              f"{run.rss_at(1.0):.0f} | {run.peak_mb:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 20 s long clip for the memory row (< 2 min)")
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the long clip (default 10)")
    parser.add_argument("--detector", help="ferkit's --detector (default: ferkit's default)")
    parser.add_argument("--no-peers", action="store_true", help="leave out the fer package")
    parser.add_argument("--photos", type=Path, default=DATASETS / "photos")
    args = parser.parse_args()
    print(machine_line())
    frames = clip_frames(args.photos)
    with tempfile.TemporaryDirectory(prefix="ferkit-video-") as tmp:
        work = Path(tmp)
        clip = write_clip(work / "clip.mp4", frames, len(frames))
        video = measure_ferkit_video(clip, work, args.detector)
        webcam = measure_ferkit_webcam(clip, args.detector)
        python, why = (None, "--no-peers") if args.no_peers else peers_python_or_reason()
        fer = measure_fer(clip, work, python) if python else None
        print_speed_table(len(frames), video, webcam, fer, why)
        seconds = 20 if args.quick else 60 * args.minutes
        long_clip = write_clip(work / "long.mp4", frames, round(seconds * FPS))
        long_run = measure_ferkit_video(long_clip, work, args.detector)
        print_memory_table([(f"{len(frames)} frames ({duration(len(frames) / FPS)})", video["run"]),
                            (f"{round(seconds * FPS)} frames ({duration(seconds)})", long_run["run"])])
        print(f"\nlong clip: {long_run['fps']:.1f} frames/s over {long_run['frames']} frames")
    print(f"\nload average at the end: {load_average()}")


if __name__ == "__main__":
    main()
