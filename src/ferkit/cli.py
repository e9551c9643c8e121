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
from .cli_predict import (
    DETECTOR_HELP,
    _add_framing_options,
    _add_recognizer_options,
    _framing,
    _recognizer,
    run_predict,
    run_video,
    run_webcam,
)
from .cli_predict import add_predict as _add_predict
from .cli_predict import add_video as _add_video
from .cli_predict import add_webcam as _add_webcam
from .cli_serve import add_serve as _add_serve
from .cli_serve import run_serve
from .cli_train import add_train as _add_train
from .cli_train import add_train_options, run_train, train_config  # noqa: F401 (re-exported)
from .errors import ConfigError, FerkitError
from .faces import DEFAULT_DETECTOR

Handler = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, Handler] = {}


def _command(name: str):
    def decorate(handler: Handler) -> Handler:
        _COMMANDS[name] = handler
        return handler
    return decorate


_COMMANDS["train"] = run_train  # the train command lives in cli_train.py
_COMMANDS["evaluate"] = run_evaluate  # evaluate in cli_evaluate.py
_COMMANDS["calibrate"] = run_calibrate  # calibrate in cli_calibrate.py
_COMMANDS["crossval"] = run_crossval  # crossval in cli_crossval.py
_COMMANDS["predict"] = run_predict  # predict, video and webcam in cli_predict.py
_COMMANDS["video"] = run_video
_COMMANDS["webcam"] = run_webcam
_COMMANDS["serve"] = run_serve  # serve in cli_serve.py


# ---------------------------------------------------------------- summary / models / crop

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
    sub.add_parser("models", help="list the bundled models and the registered architectures")


@_command("models")
def _models(args: argparse.Namespace) -> int:
    from .models import list_models
    from .models.files import BUNDLED_ABOUT, BUNDLED_MODELS, bundled_model_path, read_info

    print("bundled models (--model NAME; MODEL_CARD.md):")
    for name in BUNDLED_MODELS:
        info = read_info(bundled_model_path(name))
        private = info.metrics.get("private_test_accuracy", float("nan"))
        print(f"  {name:8} {info.model_name}: {BUNDLED_ABOUT[name]} (FER2013 PrivateTest {private:.1%})")
    print("architectures (ferkit train --model NAME, ferkit summary --model NAME):")
    print("\n".join(f"  {name}" for name in list_models()))
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
