"""`ferkit crossval`: subject-independent k-fold cross-validation with every `ferkit train` option.

Kept out of cli.py like `ferkit evaluate`; cli.py registers it: `add_crossval` builds the sub-parser,
`run_crossval` runs it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .cli_predict import _add_tta_option
from .cli_train import add_train_options, train_config
from .errors import FerkitError


def add_crossval(sub) -> None:
    p = sub.add_parser("crossval", help="subject-independent k-fold cross-validation (CK+), with a report",
                       description="Split the subjects into --folds folds; for each fold train on the other "
                       "folds' subjects, choose the epoch on a subject-grouped validation slice of them "
                       "(--val-fraction of all the data) and test on the fold. Reports per-fold accuracy, "
                       "mean ± std, the pooled confusion matrix and per-class recall. Takes every "
                       "`ferkit train` option (--model, --init, --epochs, --config RECIPE, ...); "
                       "--test-fraction is not used.")
    p.add_argument("--folds", type=int, default=10, help="number of folds (default 10)")
    p.add_argument("--stratified", action="store_true", help="a stratified k-fold over images, for data "
                   "without subjects (one person's images may then be on both sides)")
    p.add_argument("--out", help="folder for the folds and the summary (default "
                   "runs/crossval-<model>-<data name>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--seeds", type=int, default=1, help="train this many models per fold (seeds --seed, "
                   "--seed + 1, …) and score the average of their probabilities (default 1)")
    _add_tta_option(p)
    add_train_options(p)


def run_crossval(args: argparse.Namespace) -> int:
    from .crossval import crossval_run
    from .models import create_model

    cfg = train_config(args)
    if not cfg.data:
        raise FerkitError("crossval needs --data PATH (or a --config recipe naming the data)")
    create_model(cfg.model)  # an unknown name fails here, before the data is read
    default_out = Path("runs") / f"crossval-{cfg.model}-{Path(cfg.data).resolve().name}"
    out = Path(args.out) if args.out else default_out
    crossval_run(cfg, out, args.folds, args.stratified, progress=False if args.no_progress else None,
                 tta=args.tta, seeds=args.seeds)
    print(f"wrote summary.json, report.txt, plots/ and fold_*/ to {out}")
    return 0
