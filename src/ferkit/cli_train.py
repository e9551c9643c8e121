"""`ferkit train`: train a model on a dataset and write a run directory with its report.

Kept out of cli.py like `ferkit evaluate`; cli.py registers it: `add_train` builds the sub-parser,
`run_train` runs it. `add_train_options` and `train_config` are shared with `ferkit crossval`.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from .errors import FerkitError


def add_train(sub) -> None:
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


def run_train(args: argparse.Namespace) -> int:
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
