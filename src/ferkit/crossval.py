"""k-fold cross-validation, subject-independent: each fold's subjects are tested by a model trained on the
other folds' subjects, its epoch chosen on a validation slice of those training subjects (never on the fold).

A cross-validation folder (`--out`) holds:
    fold_01/ … fold_K/   each fold's run as `ferkit train` writes it (config.json, splits.json, history.json,
                         best.safetensors + best.json), metrics.json (val and test) and log.txt; the
                         checkpoint.pt is removed once the fold is scored (a fold is not resumed);
                         with --seeds N, one such run per seed in fold_K/seed_0 … seed_N-1
    summary.json         per-fold accuracy, mean ± std, the pooled confusion matrix and per-class recall
    report.txt           the same as text
    plots/confusion_pooled.png, confusion_pooled_normalised.png
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from . import plots
from .atomic import write_json, write_text
from .config import TrainConfig
from .data.dataset import FaceDataset
from .data.splits import Splits, group_kfold, group_split, stratified_kfold, stratified_split
from .errors import ConfigError, FerkitError
from .evaluate import evaluate
from .experiment import load_data
from .models.classifier import Classifier
from .models.resolver import resolve
from .models.wrappers import Averaged, with_tta
from .train import CHECKPOINT, TrainingInterrupted, fit

SUMMARY = "summary.json"


@dataclass
class FoldResult:
    fold: int  # 1-based
    test_subjects: int
    test_images: int
    val_subjects: int
    val_images: int
    train_images: int
    best_epoch: int
    val_acc: float
    test_acc: float
    confusion: list[list[int]]  # rows: true class, columns: predicted, on the fold's test images
    seconds: float

    def line(self, folds: int) -> str:
        return (f"fold {self.fold}/{folds}: test {self.test_subjects} subjects ({self.test_images} images), "
                f"val {self.val_subjects} subjects ({self.val_images}), train {self.train_images}; "
                f"best epoch {self.best_epoch} (val {self.val_acc:.4f}); test acc {self.test_acc:.4f}; "
                f"{self.seconds:.0f}s")


def fold_indices(data: FaceDataset, folds: int, seed: int,
                 stratified: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train_idx, test_idx) per fold: subject-grouped, or over single images when `stratified`."""
    if stratified:
        return stratified_kfold(data.labels, folds, seed)
    if data.groups is None:
        where = data.meta.get("root") or data.name or "the data"
        raise ConfigError(f"{where}: no subject groups (CK+48 file names S<subject>_…), so a "
                          "subject-independent k-fold cannot be made; pass --stratified for a stratified "
                          "k-fold over images (one person's images may then be on both sides)")
    return group_kfold(data.labels, data.groups, folds, seed)


def fold_splits(data: FaceDataset, train_idx: np.ndarray, test_idx: np.ndarray, val_share: float,
                seed: int, stratified: bool = False) -> Splits:
    """The fold as training splits: test = the fold; val = a slice of the rest (by subject) that picks
    the epoch; train = the rest of the rest."""
    rest = data.subset(train_idx)
    if stratified:
        tr, va = stratified_split(rest.labels, val_share, seed)
        how = "stratified k-fold over images"
    else:
        tr, va = group_split(rest.labels, rest.groups, val_share, seed)
        how = "subject-independent k-fold"
    return Splits(rest.subset(tr), rest.subset(va), data.subset(test_idx),
                  f"{how}: the fold reports, {val_share:.0%} of the other folds' "
                  f"{'images' if stratified else 'subjects'} select, the rest train")


def _subjects(data: FaceDataset) -> int:
    return len(np.unique(data.groups)) if data.groups is not None else 0


def _train_member(cfg: TrainConfig, splits: Splits, member_dir: Path, fold: int,
                  progress: bool | None, log: Callable[[str], None], first: bool) -> tuple[Classifier, dict]:
    """One model of the fold: trained on splits.train, its epoch chosen on splits.val; the best one loaded."""
    lines: list[str] = []
    try:
        summary = fit(cfg, splits, member_dir, progress=progress, log=lines.append)
    except TrainingInterrupted:
        raise TrainingInterrupted(f"cross-validation interrupted in fold {fold}; the folds before it are "
                                  f"in {member_dir.parent}") from None
    write_text(member_dir / "log.txt", "".join(f"{line}\n" for line in lines))
    for line in lines:
        if line.startswith("init ") and first:  # fine-tuning's note, once
            log(line)
    (member_dir / CHECKPOINT).unlink(missing_ok=True)  # 10 folds' optimiser states are not worth keeping
    return Classifier.load(resolve(member_dir).weights(), device=cfg.device, precision="fp32"), summary


def run_fold(cfg: TrainConfig, splits: Splits, fold_dir: Path, fold: int, progress: bool | None,
             log: Callable[[str], None], tta: str = "none", seeds: int = 1) -> FoldResult:
    """Train on splits.train (epoch chosen on splits.val), then score the best epoch on splits.val and
    splits.test, with test-time augmentation `tta` ("none" or "flip") for both. With `seeds` > 1, that many
    models (seeds cfg.seed, cfg.seed + 1, …, each in fold_dir/seed_K) are trained and their probabilities
    averaged."""
    started = time.perf_counter()
    if seeds == 1:
        members = [_train_member(cfg, splits, fold_dir, fold, progress, log, fold == 1)]
    else:
        members = [_train_member(replace(cfg, seed=cfg.seed + k), splits, fold_dir / f"seed_{k}", fold,
                                 progress, log, fold == 1 and k == 0) for k in range(seeds)]
    classifier = with_tta(members[0][0] if seeds == 1 else Averaged([m for m, _ in members]), tta)
    val, test = evaluate(classifier, splits.val, "val"), evaluate(classifier, splits.test, "test")
    write_json(fold_dir / "metrics.json", {"val": val.to_dict(), "test": test.to_dict()})
    return FoldResult(fold, _subjects(splits.test), len(splits.test), _subjects(splits.val), len(splits.val),
                      len(splits.train), members[0][1]["best_epoch"], val.accuracy, test.accuracy,
                      test.confusion.tolist(), round(time.perf_counter() - started, 1))


def summarise(results: list[FoldResult], class_names: list[str]) -> dict:
    """Mean ± std of the folds' test accuracies (std over folds, ddof=1), and the pooled confusion matrix
    with its per-class recall and accuracy (every image is tested exactly once)."""
    accuracies = np.array([r.test_acc for r in results])
    confusion = np.sum([np.array(r.confusion) for r in results], axis=0)
    recall = np.diag(confusion) / np.maximum(confusion.sum(axis=1), 1)
    return {"folds": len(results), "mean_accuracy": float(accuracies.mean()),
            "std_accuracy": float(accuracies.std(ddof=1)) if len(results) > 1 else 0.0,
            "pooled_accuracy": float(np.trace(confusion) / confusion.sum()),
            "per_class_recall": dict(zip(class_names, recall.tolist())),
            "macro_recall": float(recall.mean()), "images": int(confusion.sum()),
            "class_names": class_names, "confusion_matrix": confusion.tolist(),
            "per_fold": [asdict(r) for r in results]}


def report_text(summary: dict) -> str:
    lines = [f"{summary['protocol']}; {summary['folds']} folds, {summary['images']} images",
             *(f"  fold {r['fold']:2d}: test acc {r['test_acc']:.4f} on {r['test_images']} images "
               f"({r['test_subjects']} subjects), best epoch {r['best_epoch']}, val acc {r['val_acc']:.4f}"
               for r in summary["per_fold"]),
             f"mean test accuracy {summary['mean_accuracy']:.2%} ± {summary['std_accuracy']:.2%} (std over "
             f"folds); pooled {summary['pooled_accuracy']:.2%}; macro recall {summary['macro_recall']:.2%}",
             "per-class recall (pooled): " + ", ".join(f"{name} {value:.2%}" for name, value
                                                       in summary["per_class_recall"].items())]
    return "\n".join(lines) + "\n"


def write_summary(out_dir: Path, summary: dict) -> None:
    write_json(out_dir / SUMMARY, summary)
    write_text(out_dir / "report.txt", report_text(summary))
    matrix, names = np.array(summary["confusion_matrix"]), summary["class_names"]
    title = f"Pooled confusion matrix ({summary['folds']} test folds)"
    plots.plot_confusion(matrix, names, out_dir / "plots" / "confusion_pooled.png", title=title)
    plots.plot_confusion(matrix, names, out_dir / "plots" / "confusion_pooled_normalised.png",
                         normalize=True, title=title)


def cross_validate(cfg: TrainConfig, data: FaceDataset, out_dir: str | Path, folds: int = 10,
                   stratified: bool = False, progress: bool | None = None,
                   log: Callable[[str], None] = print, tta: str = "none", seeds: int = 1) -> dict:
    """k-fold cross-validation of `cfg` on `data` into `out_dir`; returns the summary (also summary.json).

    The validation slice is cfg.val_fraction of all the data, taken from each fold's training side. With
    `seeds` > 1 each fold is scored by the average of that many models trained with different seeds.
    """
    if seeds < 1:
        raise ConfigError(f"seeds must be ≥ 1, got {seeds}")
    out_dir = Path(out_dir)
    indices = fold_indices(data, folds, cfg.seed, stratified)
    val_share = min(0.5, cfg.val_fraction * folds / (folds - 1))
    started, results = time.perf_counter(), []
    for fold, (train_idx, test_idx) in enumerate(indices, 1):
        splits = fold_splits(data, train_idx, test_idx, val_share, cfg.seed + 1, stratified)
        results.append(run_fold(cfg, splits, out_dir / f"fold_{fold:02d}", fold, progress, log, tta, seeds))
        log(results[-1].line(folds))
    summary = {"data": cfg.data, "protocol": splits.description, **summarise(results, data.class_names),
               "seconds": round(time.perf_counter() - started, 1), "tta": tta, "seeds": seeds,
               "config": asdict(cfg)}
    write_summary(out_dir, summary)
    log(report_text(summary).rstrip("\n"))
    return summary


def crossval_run(cfg: TrainConfig, out_dir: str | Path, folds: int = 10, stratified: bool = False,
                 progress: bool | None = None, log: Callable[[str], None] = print, tta: str = "none",
                 seeds: int = 1) -> dict:
    """Load cfg.data as training does, refuse a folder that already holds a cross-validation, run it."""
    out_dir = Path(out_dir)
    if (out_dir / SUMMARY).exists() or any(out_dir.glob("fold_*")):
        raise FerkitError(f"{out_dir} already holds a cross-validation; pick another --out")
    data = load_data(cfg)
    log(f"{folds}-fold cross-validation of {cfg.model} on {cfg.data}: {len(data)} images"
        + (f", {_subjects(data)} subjects" if data.groups is not None else "")
        + f"; {cfg.epochs} epoch(s) per fold" + (f", init {cfg.init}" if cfg.init else "")
        + (f", test-time augmentation {tta}" if tta != "none" else "")
        + (f", an ensemble of {seeds} seeds per fold" if seeds > 1 else "") + f"; into {out_dir}")
    return cross_validate(cfg, data, out_dir, folds, stratified, progress, log, tta, seeds)
