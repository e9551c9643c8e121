"""The peers' environments: TensorFlow/Keras and the `fer` package; face-api.js in Node.js. Benchmarks only.

    .venv/bin/python benchmarks/peers.py            # create it (once) and print its python

TensorFlow is never a ferkit dependency. The benchmarks that compare with Keras or `fer` make this
separate virtual environment themselves (`benchmarks/.peers/`, ignored by git) and run the peer's side
in a subprocess with its python. `fer` is installed without its dependency on facenet-pytorch (it is
only imported for `FER(mtcnn=True)` and would pull in a second, CUDA build of PyTorch); `fer` is used
with its default Haar cascade detector, as its README shows. face-api.js and TensorFlow.js go into
`benchmarks/.peers-node/` (also ignored by git) with npm, when node and npm are on the PATH.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

import cv2

PEERS_DIR = Path(__file__).resolve().parent / ".peers"
PEERS_PYTHON = PEERS_DIR / "bin" / "python"
STAMP = PEERS_DIR / ".installed"

PACKAGES = [
    "tensorflow-cpu==2.21.0",
    "scipy",                      # Keras' ImageDataGenerator needs it for affine transforms
    "opencv-python-headless<5",   # fer's default detector, cv2.CascadeClassifier, left OpenCV 5 for contrib
    "pandas", "requests", "matplotlib", "tqdm", "Pillow", "moviepy<2.0", "ffmpeg-python",
    "setuptools<81",              # fer imports pkg_resources
]
FER = "fer==25.10.3"


# face-api.js's expression model (benchmarks/peer_faceapi_photos.cjs): Node.js with TensorFlow.js on its WASM
# backend, whose binaries come inside the npm package (tfjs-node would download libtensorflow at install).
NODE_DIR = Path(__file__).resolve().parent / ".peers-node"
NODE_PACKAGES = ["@vladmandic/face-api@1.7.15", "@tensorflow/tfjs@4.22.0",
                 "@tensorflow/tfjs-backend-wasm@4.22.0"]


class PeersUnavailable(RuntimeError):
    """The peers' environment could not be made (no registry, no wheel for this Python, ...)."""


def _pip(*args: str) -> None:
    result = subprocess.run([str(PEERS_PYTHON), "-m", "pip", "install", "--quiet", *args],
                            capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        raise PeersUnavailable(lines[-1] if lines else "pip failed")


def ensure_peers() -> Path:
    """Create the environment the first time; return its python. Raises PeersUnavailable."""
    if STAMP.exists():
        return PEERS_PYTHON
    print(f"making the peers' environment in {PEERS_DIR} (TensorFlow, fer; a few minutes, once)",
          file=sys.stderr)
    venv.create(PEERS_DIR, with_pip=True, clear=True)
    _pip(*PACKAGES)
    _pip("--no-deps", FER)
    STAMP.write_text(" ".join(PACKAGES + [FER]) + "\n")
    return PEERS_PYTHON


def ensure_node_peers() -> Path:
    """Install face-api.js and TensorFlow.js (WASM) into NODE_DIR the first time; return the folder."""
    stamp = NODE_DIR / ".installed"
    if stamp.exists():
        return NODE_DIR
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise PeersUnavailable("no node and npm on the PATH")
    print(f"installing face-api.js into {NODE_DIR} (once)", file=sys.stderr)
    NODE_DIR.mkdir(exist_ok=True)
    result = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(NODE_DIR),
                             *NODE_PACKAGES], capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        raise PeersUnavailable(lines[-1] if lines else "npm install failed")
    stamp.write_text(" ".join(NODE_PACKAGES) + "\n")
    return NODE_DIR


def node_peers_or_reason() -> tuple[Path | None, str]:
    """(NODE_DIR, "") when face-api.js is installed or could be, else (None, why not)."""
    try:
        return ensure_node_peers(), ""
    except (PeersUnavailable, OSError) as error:
        return None, f"face-api.js could not be installed: {error}"


def peers_python_or_reason() -> tuple[Path | None, str]:
    """(python, "") when the environment is usable, else (None, why not)."""
    try:
        return ensure_peers(), ""
    except (PeersUnavailable, OSError) as error:
        return None, f"the peers' environment could not be made: {error}"


def ferkits_opencv(work: Path) -> Path:
    """A folder that makes the peers' python import this python's OpenCV (ferkit's, 4.x).

    fer's default detector is OpenCV's Haar cascade, which OpenCV 5 moved to opencv-contrib, and the
    peers' environment may hold OpenCV 5. Same Python and NumPy on both sides; decoding and encoding then
    run the same OpenCV build for ferkit and fer.
    """
    package = Path(cv2.__file__).parent
    overlay = work / "opencv4"
    overlay.mkdir(exist_ok=True)
    for item in (package, package.parent / "opencv_python_headless.libs"):
        if item.exists() and not (overlay / item.name).exists():
            (overlay / item.name).symlink_to(item)
    return overlay


if __name__ == "__main__":
    python, reason = peers_python_or_reason()
    if python is None:
        sys.exit(reason)
    print(python)
