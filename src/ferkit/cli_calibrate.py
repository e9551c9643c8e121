"""`ferkit calibrate`: fit an existing model's temperature on a validation split and write it into the file.

cli.py registers it: `add_calibrate` builds the sub-parser, `run_calibrate` runs it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .errors import ConfigError


def add_calibrate(sub) -> None:
    p = sub.add_parser("calibrate", help="fit a model's temperature (calibrated confidence) on val data",
                       description="Fit the temperature T that makes the model's probabilities honest "
                       "(softmax(logits / T), minimum NLL) on the validation split of a crop dataset, made "
                       "exactly as in training (FER2013: PublicTest), and write it into the model file; the "
                       "weights stay as they are. Every command that loads the model applies T. Reports NLL "
                       "and ECE before and after. Never fitted on a test split.")
    p.add_argument("--model", required=True, help="a .safetensors model file, a run directory or 'default' "
                   "(the bundled model: needs --out)")
    p.add_argument("--data", required=True, metavar="PATH", help="crop dataset (FER2013, CK+48, a folder per "
                   "class); a run directory's own config says how it was split")
    p.add_argument("--split", default="val", choices=("val", "train", "test", "all"),
                   help="the split to fit on: val (default; FER2013: PublicTest); test and all are refused")
    p.add_argument("--format", default=None, help="crop dataset layout (default: the run's, or detect)")
    p.add_argument("--out", help="model file to write (default: the model file itself, in place)")
    p.add_argument("--device", default="cpu")


def run_calibrate(args: argparse.Namespace) -> int:
    from .calibrate import calibrate_model_file, split_label
    from .models.resolver import resolve

    _check_split(args.split)
    source = resolve(args.model)
    weights = source.weights()
    if source.kind == "bundled" and not args.out:
        raise ConfigError("the bundled model is part of ferkit's installation; write the calibrated copy "
                          "elsewhere with --out FILE.safetensors")
    out = Path(args.out) if args.out else weights
    if out.suffix != ".safetensors":
        raise ConfigError(f"--out {out}: a model file must end in .safetensors")
    data = _validation_data(args, source, weights)
    calibration = calibrate_model_file(weights, data, split_label(data, args.split), out, device=args.device)
    print(calibration.summary())
    print(f"wrote {out}")
    return 0


def _check_split(split: str) -> None:
    if split in ("test", "all"):
        raise ConfigError(f"--split {split}: a temperature fitted on test data would make its NLL and ECE "
                          "meaningless; fit on --split val")


def _validation_data(args: argparse.Namespace, source, weights: Path):
    """The --split of --data made as in training (a run's own config, else the defaults)."""
    from dataclasses import replace

    from .cli_evaluate import _load_part
    from .config import TrainConfig
    from .evaluate_photos import is_box_csv
    from .experiment import read_config
    from .models.files import read_info

    if is_box_csv(args.data):
        raise ConfigError(f"{args.data}: labelled photos are for measuring; calibrate on the validation "
                          "split of a crop dataset (e.g. FER2013)")
    info = read_info(weights)
    cfg = read_config(weights.parent) if source.kind == "run" else TrainConfig(image_size=info.in_size)
    cfg = replace(cfg, data=str(args.data), data_format=args.format or cfg.data_format)
    data, _ = _load_part(cfg, args.split, info.in_size)
    return data
