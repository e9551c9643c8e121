"""`ferkit` command line: a thin layer over the Python API. `ferkit SUBCOMMAND --help` for each."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from .cli_calibrate import add_calibrate as _add_calibrate
from .cli_calibrate import run_calibrate
from .cli_crossval import add_crossval as _add_crossval
from .cli_crossval import run_crossval
from .cli_evaluate import add_evaluate as _add_evaluate
from .cli_evaluate import run_evaluate
from .errors import ConfigError, FerkitError
from .faces import DEFAULT_DETECTOR

DETECTOR_HELP = f"face detector: {DEFAULT_DETECTOR} (default, fast), mtcnn or haar"

Handler = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, Handler] = {}


def _command(name: str):
    def decorate(handler: Handler) -> Handler:
        _COMMANDS[name] = handler
        return handler
    return decorate


_COMMANDS["evaluate"] = run_evaluate  # the evaluate command lives in cli_evaluate.py
_COMMANDS["calibrate"] = run_calibrate  # calibrate in cli_calibrate.py
_COMMANDS["crossval"] = run_crossval  # crossval in cli_crossval.py


# ---------------------------------------------------------------- train / summary

def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a CNN on a dataset and write a run directory with its report",
                       description="Train a model. With FER2013 it trains on Training, selects the best "
                       "epoch on PublicTest and reports PrivateTest; CK+ gets a subject-independent split. "
                       "Options come from the defaults, then --config, then the flags given.")
    p.add_argument("--print-config", action="store_true", help="print the resulting recipe as YAML and exit")
    p.add_argument("--out", help="run directory (default runs/<model>-<data name>)")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue an interrupted run, or extend it with --epochs/--lr")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_train_options(p)


def add_train_options(p: argparse.ArgumentParser) -> None:
    """--config, one flag per TrainConfig option, --shift and --no-augment (read back by `train_config`)."""
    from .config import TrainConfig
    from .options import add_arguments

    p.add_argument("--config", metavar="RECIPE", help="a YAML or JSON recipe of options (e.g. "
                   "configs/default.yaml or a run's config.json); flags override it")
    add_arguments(p, TrainConfig)
    g = next(group for group in p._action_groups if group.title == "augmentation")
    g.add_argument("--shift", type=float, default=argparse.SUPPRESS,
                   help="max width and height shift (fraction): sets both --width-shift and --height-shift")
    g.add_argument("--no-augment", action="store_true", help="turn every augmentation off")


def train_config(args: argparse.Namespace):
    """The TrainConfig of a `ferkit train` command line: defaults < --config file < flags."""
    from .augment import everything_off
    from .config import TrainConfig, load_recipe
    from .options import build, given, merge

    flags = given(args, TrainConfig)
    if getattr(args, "shift", None) is not None:
        flags = merge({"augment": {"width_shift": args.shift, "height_shift": args.shift}}, flags)
    if args.no_augment:
        flags["augment"] = everything_off()
    return load_recipe(args.config, flags) if args.config else build(TrainConfig, flags, where="ferkit train")


@_command("train")
def _train(args: argparse.Namespace) -> int:
    from .experiment import resume_run, train_run
    from .models import create_model

    progress = False if args.no_progress else None
    if args.resume:
        _warn_ignored_on_resume(args)
        try:
            resume_run(args.resume, epochs=getattr(args, "epochs", None), lr=getattr(args, "lr", None),
                       progress=progress)
        except KeyboardInterrupt:
            raise _interrupted(Path(args.resume)) from None
        return 0
    cfg = train_config(args)
    if args.print_config:
        from .options import recipe_text

        print(recipe_text(cfg), end="")
        return 0
    if not cfg.data:
        raise FerkitError("train needs --data PATH (or --resume RUN_DIR, or a --config recipe "
                          "naming the data)")
    create_model(cfg.model)  # an unknown name fails here, before the data is read
    out = Path(args.out) if args.out else Path("runs") / f"{cfg.model}-{Path(cfg.data).resolve().name}"
    if (out / "checkpoint.pt").exists():
        raise FerkitError(f"{out} already holds a run; use --resume {out} to continue it "
                          "or pick another --out")
    try:
        train_run(cfg, out, progress=progress)
    except KeyboardInterrupt:  # outside the batch loop (validation, checkpoint, report): the same advice
        raise _interrupted(out) from None
    return 0


def _warn_ignored_on_resume(args: argparse.Namespace) -> None:
    from dataclasses import fields

    from .config import TrainConfig
    from .options import flag_of, given

    flags = {f.name: flag_of(f) for f in fields(TrainConfig)} | {"augment": "the augmentation options"}
    ignored = [flags[name] for name in given(args, TrainConfig) if name not in ("epochs", "lr")]
    if args.config:
        ignored.append("--config")
    if args.no_augment or getattr(args, "shift", None) is not None:
        ignored.append("the augmentation options")
    if ignored:
        warnings.warn(f"--resume keeps the run's own config.json; only --epochs and --lr change it "
                      f"(ignored: {', '.join(dict.fromkeys(ignored))})", stacklevel=1)


def _interrupted(run_dir: Path) -> FerkitError:
    from .train import CHECKPOINT, TrainingInterrupted

    if (run_dir / CHECKPOINT).is_file():
        return TrainingInterrupted(f"interrupted; {run_dir / CHECKPOINT} holds the last finished epoch. "
                                   f"Resume with: ferkit train --resume {run_dir}")
    return TrainingInterrupted(f"interrupted before the first epoch finished; nothing to resume in {run_dir}")


def _add_summary(sub) -> None:
    p = sub.add_parser("summary", help="layer-by-layer table of a model: output shapes and parameters")
    p.add_argument("--model", required=True, help="a registered architecture (see `ferkit models`), "
                   "'default' (the bundled model), a .safetensors model file or a run directory")
    p.add_argument("--image-size", type=int, default=48)
    p.add_argument("--classes", type=int, default=7)


@_command("summary")
def _summary(args: argparse.Namespace) -> int:
    from .models import create_model, resolve
    from .models.files import load_model
    from .summary import format_summary, model_summary

    source = resolve(args.model)
    if source.kind == "architecture":
        name, size = source.name, args.image_size
        model = create_model(name, args.classes, size)
    else:
        model, info = load_model(source.weights())
        name, size = info.model_name, info.in_size
    print(format_summary(model_summary(model, in_size=size), name))
    return 0


def _add_models(sub) -> None:
    sub.add_parser("models", help="list the registered architectures")


@_command("models")
def _models(args: argparse.Namespace) -> int:
    from .models import list_models

    print("\n".join(list_models()))
    return 0


def _add_crop(sub) -> None:
    p = sub.add_parser("crop", help="make a dataset of face crops from a dataset of full photos",
                       description="Detect the largest face in every image under SOURCE and write it as a "
                       "gray SIZE×SIZE PNG under TARGET with the same folders, ready for `ferkit train`.")
    p.add_argument("source")
    p.add_argument("target")
    p.add_argument("--detector", default=DEFAULT_DETECTOR, help=DETECTOR_HELP)
    p.add_argument("--size", type=int, default=48)
    _add_framing_options(p)
    p.add_argument("--skip-no-face", action="store_true", help="leave out images where no face is found")
    p.add_argument("--no-progress", action="store_true")


@_command("crop")
def _crop(args: argparse.Namespace) -> int:
    from .faces.crop_dataset import crop_dataset

    stats = crop_dataset(args.source, args.target, args.detector, args.size, _framing(args),
                         args.skip_no_face, progress=False if args.no_progress else None)
    print(f"wrote {stats.images} crops to {args.target}: {stats.faces} with a face, "
          f"{len(stats.no_face)} without"
          + (" (skipped)" if args.skip_no_face else " (centre crop)")
          + (f", {len(stats.unreadable)} unreadable skipped (first: {stats.unreadable[0]})"
             if stats.unreadable else ""))
    return 0


# ---------------------------------------------------------------- inference

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


def _add_predict(sub) -> None:
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


@_command("predict")
def _predict(args: argparse.Namespace) -> int:
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


def _add_video(sub) -> None:
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


@_command("video")
def _video(args: argparse.Namespace) -> int:
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


def _add_webcam(sub) -> None:
    p = sub.add_parser("webcam", help="live expressions from a camera in a window (Esc to quit)")
    p.add_argument("--camera", type=int, default=0, help="camera index")
    p.add_argument("--source", help="a video file to use instead of the camera")
    p.add_argument("--max-frames", type=int)
    p.add_argument("--no-window", action="store_true", help="run the loop without a window (prints fps)")
    _add_recognizer_options(p)


@_command("webcam")
def _webcam(args: argparse.Namespace) -> int:
    from .webcam import run_webcam

    stats = run_webcam(_recognizer(args), camera=args.camera, source=args.source, show=not args.no_window,
                       max_frames=args.max_frames)
    print(f"{stats.frames} frames, {stats.faces} faces, {stats.fps:.1f} fps")
    return 0


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="export a model to ONNX")
    p.add_argument("--model", help="'default' (the bundled model, used when omitted), a .safetensors model "
                   "file or a run directory")
    p.add_argument("--format", default="onnx", choices=("onnx",))
    p.add_argument("--out", help="output file (default: <model name>.onnx: default.onnx, <file stem>.onnx "
                   "or <run directory name>.onnx; with --int8 the int8 twin beside the model's weights)")
    p.add_argument("--int8", action="store_true", help="static int8 quantisation, calibrated on "
                   "--calibration; beside the weights as <stem>.int8.onnx, `--backend auto` runs it "
                   "(re-checking near-ties in fp32)")
    p.add_argument("--calibration", help="with --int8: a dataset with a training split (FER2013) whose "
                   "training faces calibrate the int8 ranges")


@_command("export")
def _export(args: argparse.Namespace) -> int:
    from .models import resolve
    from .models.onnx import export_onnx

    if args.calibration and not args.int8:
        raise ConfigError("--calibration is for --int8 (an fp32 export needs no calibration)")
    source = resolve(args.model)
    weights = source.weights()
    if args.int8:
        return _export_int8(weights, args)
    out = Path(args.out) if args.out else Path(source.name + ".onnx")
    export_onnx(weights, out)
    print(f"wrote {out}")
    return 0


def _export_int8(weights: Path, args: argparse.Namespace) -> int:
    from .models.int8 import export_int8, int8_path

    if not args.calibration:
        raise ConfigError("--int8 needs --calibration DATASET: a dataset with a training split (FER2013)")
    out = export_int8(weights, Path(args.out) if args.out else int8_path(weights), args.calibration)
    print(f"wrote {out}")
    return 0


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="run the bundled model on a built-in photo (no dataset, no download)")
    p.add_argument("--out", default="demo_out", help="folder for the annotated picture (default demo_out)")
    _add_recognizer_options(p)


@_command("demo")
def _demo(args: argparse.Namespace) -> int:
    from skimage import data as skdata

    from .results import format_top_k

    image = skdata.astronaut()
    result = _recognizer(args)(image, source="astronaut")
    print(f"astronaut photo (scikit-image, public domain), {image.shape[1]}x{image.shape[0]}: "
          f"{len(result.faces)} face(s)")
    for i, face in enumerate(result.faces, 1):
        print(f"face {i}: box ({', '.join(f'{v:.0f}' for v in face.box)})  {face.label}   "
              f"[{format_top_k(face.probs)}]")
    out = result.save(Path(args.out) / "astronaut_annotated.jpg")
    print(f"wrote {out}")
    return 0


# ---------------------------------------------------------------- service

def _add_serve(sub) -> None:
    p = sub.add_parser("serve", help="REST API and web page (live webcam) for expression recognition",
                       description="Serve the REST API (POST /v1/detect, /v1/classify; GET /v1/models, "
                       "/healthz; docs at /docs) and the web page at /. Binds 127.0.0.1 unless told "
                       "otherwise; another address needs --api-key (or --allow-anyone). "
                       "Needs `pip install 'ferkit[serve]'`.")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", default=None, metavar="KEY",
                   help="require the header X-API-Key: KEY on /v1/* "
                   "(default: $FERKIT_API_KEY; none on loopback)")
    p.add_argument("--allow-anyone", action="store_true", help="listen beyond loopback without an API key")
    p.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                   help="let pages from ORIGIN (e.g. https://app.example) call the API; "
                   "repeatable (default: none)")
    p.add_argument("--workers", type=int, default=2, help="inference workers (default 2)")
    p.add_argument("--pool", default="thread", choices=("thread", "process"),
                   help="workers as threads sharing one model (default) or processes with one model each")
    p.add_argument("--threads", type=int, default=1, help="PyTorch threads per worker (default 1)")
    p.add_argument("--max-upload-mb", type=float, default=10.0, help="largest request body (default 10 MB)")
    p.add_argument("--max-pixels", type=int, default=40_000_000,
                   help="largest image (default 40 million pixels)")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="seconds to receive an upload, and to answer it")
    _add_recognizer_options(p)


@_command("serve")
def _serve(args: argparse.Namespace) -> int:
    import importlib.util
    import os

    missing = [m for m in ("fastapi", "uvicorn", "python_multipart") if importlib.util.find_spec(m) is None]
    if missing:
        raise FerkitError(f"ferkit serve needs {', '.join(missing)}: pip install 'ferkit[serve]'")
    from .serve import EngineConfig, check_exposure, run_server
    from .serve.app import ServeSettings

    api_key = args.api_key or os.environ.get("FERKIT_API_KEY") or None
    warning = check_exposure(args.host, api_key, args.allow_anyone)
    if not (0 < args.max_upload_mb and 0 < args.timeout and 0 < args.max_pixels and 0 <= args.port < 65536):
        raise ConfigError("--max-upload-mb, --timeout and --max-pixels must be positive, --port in 0..65535")
    config = EngineConfig(model=args.model, detector=args.detector, backend=args.backend, device=args.device,
                          min_face_size=args.min_face_size, tta=args.tta, workers=args.workers,
                          pool=args.pool, threads_per_worker=args.threads, max_pixels=args.max_pixels)
    settings = ServeSettings(max_upload_bytes=int(args.max_upload_mb * 1_000_000), timeout=args.timeout,
                             api_key=api_key, cors_origins=tuple(args.cors_origin))
    if warning:
        warnings.warn(warning, stacklevel=1)
    print(f"ferkit serve: loading the model, then http://{args.host}:{args.port}/ (page), /docs (API); "
          "Ctrl-C stops", file=sys.stderr)
    run_server(config, settings, args.host, args.port)
    return 0


# ---------------------------------------------------------------- entry point

class _Parser(argparse.ArgumentParser):
    """Usage mistakes end like every other mistake: one `ferkit: error:` line and exit code 2."""

    def error(self, message: str):
        raise ConfigError(f"{message} (see `{self.prog} --help`)")


def _one_line(exc: BaseException) -> str:
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ferkit", description="Facial expression recognition: train, evaluate, "
                                     "detect faces and predict expressions, offline.")
    from . import __version__
    parser.add_argument("--version", action="version", version=f"ferkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_train, _add_crossval, _add_evaluate, _add_calibrate, _add_summary, _add_models,
                _add_predict, _add_video, _add_webcam, _add_export, _add_demo, _add_crop, _add_serve):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    warnings.formatwarning = lambda message, category, *rest: f"ferkit: warning: {message}\n"
    try:
        args = build_parser().parse_args(argv)
        return _COMMANDS[args.command](args)
    except FerkitError as exc:
        print(f"ferkit: error: {_one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("ferkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
