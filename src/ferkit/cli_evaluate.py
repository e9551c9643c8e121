"""`ferkit evaluate`: score a model on crop datasets, labelled-box CSVs or photo folders.

Kept out of cli.py (which grows by extraction); cli.py registers it: `add_evaluate` builds the
sub-parser, `run_evaluate` runs it.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from .cli_predict import _add_framing_options, _add_tta_option, _framing
from .errors import ConfigError, FerkitError
from .faces import DEFAULT_DETECTOR


def add_evaluate(sub) -> None:
    from .data.ferplus import LABEL_MODES

    p = sub.add_parser("evaluate",
                       help="score a model on datasets of crops or photos, with reports and plots",
                       description="Evaluate a run's best model (--run) or any model file (--model, e.g. the "
                       "bundled one: --model default) on one or more datasets: crop datasets (FER2013, "
                       "CK+48, a folder per class) on a split made exactly as in training; a CSV of labelled "
                       "boxes (file|image,left,top,right,bottom,label, or a folder holding annotations.csv): "
                       "detect, match each labelled box to a detection, classify (--boxes: classify the "
                       "labelled boxes); a folder per class of photos with --detect: the largest face of "
                       "each. Several --data give one table.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="run directory written by `ferkit train`")
    source.add_argument("--model", nargs="+", help="'default' (the bundled model), a .safetensors/.onnx "
                        "model file or a run directory; several models are scored as one ensemble (the mean "
                        "of their calibrated probabilities)")
    p.add_argument("--against", nargs="+", metavar="MODEL",
                   help="a second model (several: an ensemble) scored on the same faces; prints each model's "
                   "accuracy with its 95%% interval, the faces only one gets right and McNemar's exact p")
    p.add_argument("--data", nargs="+", action="extend", metavar="PATH",
                   help="dataset(s); may be repeated (default with --run: the one the run was trained on)")
    p.add_argument("--format", default=None, help="crop dataset layout (default: the run's, or detect)")
    p.add_argument("--split", default="test", choices=("test", "val", "train", "all"),
                   help="which part of a crop dataset (FER2013: test = PrivateTest, val = PublicTest; "
                   "'all' = every image); photo datasets are used whole")
    p.add_argument("--detect", action="store_true", help="folders hold photos: classify the largest face the "
                   "detector finds in each (a photo without a face counts as wrong)")
    p.add_argument("--boxes", action="store_true", help="labelled-box CSVs: classify the labelled boxes "
                   "themselves (cropped as a detection is) instead of detecting and matching")
    p.add_argument("--detector", default=DEFAULT_DETECTOR,
                   help=f"face detector for photos: {DEFAULT_DETECTOR} (default), mtcnn or haar")
    p.add_argument("--min-iou", type=float, default=0.4, help="IoU of a labelled box and a squared "
                   "detection box for them to be one face (default 0.4)")
    p.add_argument("--out", help="folder for metrics, reports and plots (default: the run directory for a "
                   "run on its own data; otherwise no files)")
    p.add_argument("--labels", choices=LABEL_MODES,
                   help="FER2013: score against the FER+ majority (default: the run's labels with its own "
                   "data, else the dataset's)")
    p.add_argument("--ferplus", metavar="DIR", help="folder of fer2013new.csv (default: the data's folder, "
                   "then ferplus/ beside it)")
    p.add_argument("--device", default="auto")
    p.add_argument("--backend", default="torch", choices=("torch", "auto", "onnx", "int8"),
                   help="inference engine: torch (default here: the exact fp32 numbers), or auto / onnx / "
                   "int8 as `ferkit predict` and Recognizer() run them (auto: the int8 twin if there is one)")
    p.add_argument("--no-calibration", action="store_true", help="ignore the model's temperature: the "
                   "network's own probabilities (for NLL and ECE before calibration)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_framing_options(p)
    _add_tta_option(p)


def run_evaluate(args: argparse.Namespace) -> int:
    if args.against and not args.data:
        raise FerkitError("evaluate --against needs --data PATH: the datasets both models are scored on")
    if args.run and not args.data:
        return _evaluate_run(args)
    if not args.data:
        raise FerkitError("evaluate --model needs --data PATH")
    if not 0 < args.min_iou <= 1:
        raise ConfigError(f"--min-iou must be in (0, 1], got {args.min_iou:g}")
    from .evaluate_photos import format_table, write_evaluations

    model = args.run or " + ".join(args.model)
    _warn_unused_photo_flags(args)
    classifier, plans = _plans(args, [Path(args.run)] if args.run else args.model)  # all inputs checked first
    against = _plans(args, args.against) if args.against else None
    if against and list(against[0].class_names) != list(classifier.class_names):
        raise ConfigError(f"--against: its classes {list(against[0].class_names)} are not the model's "
                          f"{list(classifier.class_names)}; compare models with the same classes")
    evaluations = [run() for run in plans]
    for e in evaluations:
        print(e.report_text(max_missed=10))
    print(format_table(evaluations, str(model)), end="")
    baseline = [run() for run in against[1]] if against else []
    comparisons = _compare(evaluations, baseline, str(model), " + ".join(args.against or []))
    if args.out:  # files only once every dataset is done: a mistake in the last one leaves nothing behind
        write_evaluations(args.out, evaluations, str(model))
        if comparisons:
            _write_comparison(args.out, *comparisons)
        print(f"wrote metrics.json, report.txt and plots/ to {args.out}")
    return 0


def _plans(args: argparse.Namespace, models: list) -> tuple:
    """The classifier of `models` (one model, or an ensemble) and one evaluation to run per --data."""
    classifier = _classifier(args, models)
    recognizer = _LazyRecognizer(classifier, args.detector, _framing(args))
    return classifier, [_plan_evaluation(args, path, classifier, recognizer) for path in args.data]


def _compare(evaluations: list, baseline: list, name: str, baseline_name: str):
    """Print and return (markdown, rows, names) for --against; None without it."""
    if not baseline:
        return None
    from .compare import compare, format_comparison

    rows = [compare(a, b) for a, b in zip(evaluations, baseline)]
    table = format_comparison(rows, name, baseline_name)
    print("\npaired, on the same faces (accuracy with its 95 % Wilson interval; McNemar's exact test on the "
          "faces only one model gets right):\n")
    print(table, end="")
    return table, rows, (name, baseline_name)


def _write_comparison(out: str, table: str, rows: list, names: tuple[str, str]) -> None:
    from .atomic import write_json, write_text

    write_text(Path(out) / "comparison.md", table)
    write_json(Path(out) / "comparison.json", {"a": names[0], "b": names[1],
                                               "datasets": [r.to_dict() for r in rows]})


def _classifier(args: argparse.Namespace, models: list):
    """The classifier of `models` (several: their ensemble) on --backend (PyTorch by default), each calibrated
    unless --no-calibration, with --tta."""
    from .models.wrappers import Averaged, with_tta
    from .predict import load_classifier

    members = [load_classifier(model, device=args.device, backend=args.backend,
                               calibrated=not args.no_calibration) for model in models]
    try:
        classifier = members[0] if len(members) == 1 else Averaged(members)
    except ValueError as exc:  # the members' classes differ
        raise ConfigError(f"--model: {exc}") from None
    return with_tta(classifier, args.tta)


def _warn_unused_photo_flags(args: argparse.Namespace) -> None:
    from .evaluate_photos import is_box_csv

    csvs = [p for p in args.data if is_box_csv(p)]
    if args.boxes and not csvs:
        warnings.warn("--boxes applies to CSVs of labelled boxes; none given, so it is ignored", stacklevel=1)
    if args.detect and not [p for p in args.data if Path(p).is_dir() and p not in csvs]:
        warnings.warn("--detect applies to folders of photos; none given, so it is ignored", stacklevel=1)


class _LazyRecognizer:
    """The Recognizer (and its face detector) is made only when a photo dataset needs it."""

    def __init__(self, classifier, detector: str, framing):
        self.classifier, self.detector, self.framing, self._recognizer = classifier, detector, framing, None

    def get(self):
        from .predict import Recognizer

        if self._recognizer is None:
            self._recognizer = Recognizer(model=self.classifier, detector=self.detector, framing=self.framing)
        return self._recognizer


def _plan_evaluation(args: argparse.Namespace, path: str, classifier, recognizer: _LazyRecognizer):
    """Read and check one --data now; return the function that evaluates it (so a bad last dataset fails
    before any work is done)."""
    from .evaluate_photos import (
        box_csv_path,
        dataset_name,
        evaluate_crops,
        evaluate_faces,
        is_box_csv,
        read_box_csv,
        read_photo_folder,
    )

    progress = False if args.no_progress else None
    if is_box_csv(path):
        faces, name = read_box_csv(box_csv_path(path)), dataset_name(box_csv_path(path))
        match = "boxes" if args.boxes else "detect"
        return lambda: evaluate_faces(recognizer.get(), faces, name, match, args.min_iou, progress)
    if args.detect and Path(path).is_dir():
        faces, name = read_photo_folder(path), dataset_name(path)
        return lambda: evaluate_faces(recognizer.get(), faces, name, "detect", progress=progress)
    data, detail, description = _crop_split(args, path, classifier)
    name = Path(path).resolve().name
    return lambda: evaluate_crops(classifier, data, args.split, name, description, detail)


def _crop_split(args: argparse.Namespace, path: str, classifier):
    """The --split of a crop dataset, what it is (e.g. PrivateTest) and how it was made."""
    from dataclasses import replace

    from .config import TrainConfig
    from .experiment import read_config

    cfg = read_config(args.run) if args.run else TrainConfig(image_size=classifier.info.in_size)
    cfg = replace(cfg, data=str(path), data_format=args.format or "auto", labels=args.labels or "dataset",
                  ferplus=args.ferplus or "", add_train=[])  # the data's own split: its extras only train
    data, description = _load_part(cfg, args.split, classifier.info.in_size)
    if args.split == "all":
        return data, _labels_detail(cfg), ""
    usages = set(data.usage.tolist()) if data.usage is not None else set()
    if len(usages) == 1:
        detail = next(iter(usages))
    else:
        detail = "subject-independent" if data.groups is not None else ""
    return data, " ".join(filter(None, (detail, _labels_detail(cfg)))), description


def _load_part(cfg, split: str, image_size: int):
    """(data, "split: how it was made") for `split` of cfg.data made as in training; "all": every image."""
    from .data import load_dataset
    from .experiment import load_splits

    if split == "all":
        return load_dataset(cfg.data, format=cfg.data_format, image_size=image_size, labels=cfg.labels,
                            ferplus=cfg.ferplus), ""
    splits = load_splits(cfg)
    data = {"train": splits.train, "val": splits.val, "test": splits.test}[split]
    if data is None:
        raise FerkitError(f"{cfg.data}: has no {split} split")
    return data, f"split: {splits.description}"


def _labels_detail(cfg) -> str:
    from .data.ferplus import scores_against_majority

    return "FER+ majority" if scores_against_majority(cfg.labels) else ""


def _evaluate_run(args: argparse.Namespace) -> int:
    """A run on the data it was trained on: the split made as in training, its classes exactly the model's."""
    from dataclasses import replace

    from .data.ferplus import scores_against_majority
    from .evaluate import evaluate, write_reports
    from .experiment import read_config

    cfg = read_config(args.run)
    classifier = _classifier(args, [Path(args.run)])
    if args.format:
        cfg = replace(cfg, data_format=args.format)
    if args.labels or args.ferplus:
        cfg = replace(cfg, labels=args.labels or cfg.labels, ferplus=args.ferplus or cfg.ferplus)
    data, description = _load_part(cfg, args.split, classifier.info.in_size)
    if description:
        print(description)
    if scores_against_majority(cfg.labels):
        print(f"labels: FER+ majority ({data.meta['ferplus']['folder']})")
    result = evaluate(classifier, data, args.split)
    print(result.report_text())
    out = args.out or args.run
    write_reports(out, [result], samples=data)
    print(f"wrote metrics.json, report.txt and plots/ to {out}")
    return 0
