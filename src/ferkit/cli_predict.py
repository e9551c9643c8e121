"""`ferkit predict`, `video` and `webcam`: the expressions of the faces in images, a video or a camera.

Kept out of cli.py like `ferkit evaluate`; cli.py registers them: `add_predict`, `add_video` and
`add_webcam` build the sub-parsers, `run_predict`, `run_video` and `run_webcam` run them. The recognizer
and framing options (`_add_recognizer_options`, `_add_framing_options`, `_add_tta_option`) and what reads
them back (`_recognizer`, `_framing`) are shared with `ferkit crop`, `demo`, `serve` and `evaluate`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import ConfigError, FerkitError
from .faces import DEFAULT_DETECTOR

DETECTOR_HELP = f"face detector: {DEFAULT_DETECTOR} (default, fast), mtcnn or haar"


def _add_recognizer_options(p) -> None:
    p.add_argument("--model", help="'default' (the bundled model, used when omitted), a .safetensors/.onnx "
                   "model file or a run directory")
    p.add_argument("--detector", default=DEFAULT_DETECTOR, help=DETECTOR_HELP)
    p.add_argument("--backend", default="auto", choices=("auto", "torch", "onnx", "int8"),
                   help="inference engine (auto: ONNX Runtime on the CPU, int8 where the model has an int8 "
                   "twin, as the bundled one has; onnx: fp32)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (torch backend)")
    p.add_argument("--min-face-size", type=int, help="smallest face to keep, in pixels")
    _add_framing_options(p)
    _add_tta_option(p)


def _add_tta_option(p) -> None:
    from .models.wrappers import TTA_CHOICES

    p.add_argument("--tta", default="none", choices=TTA_CHOICES, help="test-time augmentation: flip "
                   "averages each face with its mirror image (twice the classifier time; default none)")


def _add_framing_options(p) -> None:
    from .faces.framing import METHODS

    g = p.add_argument_group("face framing (how a face becomes the classifier's crop)")
    g.add_argument("--framing", choices=METHODS, help="landmarks (default): eyes, nose and mouth placed "
                   "where FER2013 has them; box: a square around the detector's box")
    g.add_argument("--margin", type=float, help="border around the box, as a fraction of its side "
                   "(box framing, and faces without landmarks); alone it means --framing box")
    g.add_argument("--align", action="store_true", default=None, help="rotate so the eyes are level")


def _framing(args: argparse.Namespace):
    from .faces.framing import as_framing

    return as_framing(args.framing, args.margin, args.align)


def _recognizer(args: argparse.Namespace):
    from .predict import Recognizer

    return Recognizer(model=args.model, detector=args.detector, device=args.device, backend=args.backend,
                      framing=_framing(args), min_face_size=args.min_face_size, tta=args.tta)


def _expand_inputs(inputs: list[str], recursive: bool) -> list[Path]:
    from .stream import image_files

    return image_files(inputs, recursive)


def add_predict(sub) -> None:
    p = sub.add_parser("predict", help="find every face in images and say its expression",
                       description="Detect faces and classify their expressions. Prints one line per face; "
                       "--out writes annotated images, --csv one row per face, --json machine-readable "
                       "output.")
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER")
    p.add_argument("--out", help="folder for annotated images")
    p.add_argument("--csv", help="write one row per face to this CSV file")
    p.add_argument("--json", action="store_true", help="print JSON instead of text lines")
    p.add_argument("--recursive", action="store_true", help="look into sub-folders too")
    p.add_argument("--no-progress", action="store_true")
    _add_recognizer_options(p)


def run_predict(args: argparse.Namespace) -> int:
    import json

    from tqdm import tqdm

    from .stream import stream_inference

    files = _expand_inputs(args.inputs, args.recursive)
    recognizer = _recognizer(args)
    out_dir = Path(args.out) if args.out else None
    records, rows, failed = [], [], []
    hide_bar = None if len(files) > 1 and not args.no_progress else True  # None: shown on a terminal only

    def report(path: Path, exc: FerkitError) -> None:
        print(f"ferkit: error: {exc}", file=sys.stderr)
        failed.append(path)

    for result in stream_inference(recognizer, tqdm(files, unit="image", disable=hide_bar, leave=False),
                                   on_error=report):
        records.append(result.to_dict())
        rows.extend(result.to_rows())
        if not args.json:
            for line in result.summary_lines():
                tqdm.write(line)
        if out_dir is not None:
            result.save(out_dir / f"{Path(result.source).stem}_annotated.jpg")
    if args.json:
        print(json.dumps(records if len(records) != 1 else records[0], indent=2))
    if args.csv and (records or not failed):  # no CSV when every input failed: nothing half-done to read
        _write_csv(args.csv, recognizer.class_names, rows)
    if out_dir is not None and records and not args.json:
        print(f"annotated images in {out_dir}")
    return 2 if failed else 0


def _write_csv(path: str, class_names: list[str], rows: list[list]) -> None:
    import csv
    import io

    from .atomic import write_text
    from .results import csv_header

    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(csv_header(class_names))
    writer.writerows(rows)
    write_text(path, text.getvalue())


def add_video(sub) -> None:
    p = sub.add_parser("video", help="expressions through a video: annotated video, per-frame CSV, plot")
    p.add_argument("input", metavar="VIDEO")
    p.add_argument("--out", help="annotated video to write (.mp4 or .avi)")
    p.add_argument("--csv", help="one row per face per processed frame")
    p.add_argument("--plot", help="PNG of the expressions over time")
    p.add_argument("--smooth", type=float, default=0.5,
                   help="temporal smoothing of probabilities, 0..1 (0 = off)")
    p.add_argument("--every", type=int, default=1,
                   help="analyse every N-th frame (others reuse the last faces)")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument("--no-progress", action="store_true")
    _add_recognizer_options(p)


def run_video(args: argparse.Namespace) -> int:
    from .video import process_video

    if not (0.0 <= args.smooth < 1.0) or args.every < 1:
        raise ConfigError("--smooth must be in [0, 1) and --every ≥ 1 "
                          f"(got {args.smooth:g} and {args.every})")
    if not (args.out or args.csv or args.plot):
        raise ConfigError("say what to write: --out VIDEO, --csv FILE and/or --plot PNG")
    from .stream import open_video

    open_video(args.input).release()  # a bad video fails before the model is loaded
    result = process_video(args.input, _recognizer(args), args.out, args.csv, args.plot,
                           smoothing=args.smooth, every=args.every, max_frames=args.max_frames,
                           progress=False if args.no_progress else None)
    print(f"{args.input}: {result.frames} frames at {result.fps:.1f} fps, {result.faces} face detections, "
          f"{result.tracks} tracked faces; processed in {result.seconds:.1f} s "
          f"({result.processing_fps:.1f} frames/s)")
    for kind, path in (("video", args.out), ("csv", args.csv), ("plot", args.plot)):
        if path:
            print(f"wrote {kind}: {path}")
    return 0


def add_webcam(sub) -> None:
    p = sub.add_parser("webcam", help="live expressions from a camera in a window (Esc to quit)")
    p.add_argument("--camera", type=int, default=0, help="camera index")
    p.add_argument("--source", help="a video file to use instead of the camera")
    p.add_argument("--max-frames", type=int)
    p.add_argument("--no-window", action="store_true", help="run the loop without a window (prints fps)")
    _add_recognizer_options(p)


def run_webcam(args: argparse.Namespace) -> int:
    from .webcam import run_webcam as camera_loop

    stats = camera_loop(_recognizer(args), camera=args.camera, source=args.source, show=not args.no_window,
                        max_frames=args.max_frames)
    print(f"{stats.frames} frames, {stats.faces} faces, {stats.fps:.1f} fps")
    return 0
