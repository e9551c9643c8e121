"""One training run end to end: load data → split → fit → evaluate the best model → reports and plots."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from .calibrate import Calibration, calibrate, split_label
from .config import TrainConfig
from .data import FaceDataset, load_dataset
from .data.splits import Splits, cap_per_class, make_splits, with_extra_training
from .errors import ConfigError
from .evaluate import Evaluation, evaluate, write_reports
from .models.classifier import Classifier, FaceClassifier
from .models.files import write_temperature
from .models.resolver import resolve
from .models.wrappers import TemperatureScaled
from .train import fit
from .training.distributed import is_main_process


def load_data(cfg: TrainConfig) -> FaceDataset:
    """cfg.data read as training reads it (format, image size, labels, per-class cap)."""
    if not cfg.data:
        raise ConfigError("no dataset given (--data PATH)")
    data = load_dataset(cfg.data, format=cfg.data_format, image_size=cfg.image_size, labels=cfg.labels,
                        ferplus=cfg.ferplus)
    return cap_per_class(data, cfg.max_per_class, cfg.seed)


def load_splits(cfg: TrainConfig) -> Splits:
    """cfg.data's honest split, with the training splits of cfg.add_train added to its training data."""
    splits = make_splits(load_data(cfg), cfg.val_fraction, cfg.test_fraction, cfg.seed)
    for path in cfg.add_train:
        extra = load_dataset(path, image_size=cfg.image_size)
        splits = with_extra_training(splits, extra, cfg.val_fraction, cfg.test_fraction, cfg.seed,
                                     cfg.max_per_class)
    return splits


def read_config(run_dir: str | Path) -> TrainConfig:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise ConfigError(f"{run_dir}: not a ferkit run directory (no config.json)")
    try:
        return TrainConfig.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{path}: unreadable run configuration ({exc})") from exc


def calibrate_run(run_dir: Path, splits: Splits, log: Callable[[str], None] = print,
                  device: str = "auto") -> tuple[FaceClassifier, Calibration]:
    """Fit the best model's temperature on the validation split, store it in its file; the scaled model."""
    weights = resolve(run_dir).weights()
    network = Classifier.load(weights, device=device, precision="fp32")
    calibration = calibrate(network, splits.val, split_label(splits.val, "val"))
    write_temperature(weights, calibration.temperature)
    log(calibration.summary())
    return TemperatureScaled(network, calibration.temperature), calibration


def report_run(run_dir: str | Path, splits: Splits, log: Callable[[str], None] = print,
               device: str = "auto") -> dict:
    """Calibrate the run's best model, evaluate it on validation and test splits and write metrics, report
    and plots."""
    run_dir = Path(run_dir)
    classifier, calibration = calibrate_run(run_dir, splits, log, device)
    evaluations: list[Evaluation] = [evaluate(classifier, splits.val, "val")]
    if splits.test is not None and len(splits.test):
        evaluations.append(evaluate(classifier, splits.test, "test"))
    history_path = run_dir / "history.json"
    history = json.loads(history_path.read_text()) if history_path.is_file() else None
    counts = {"train": splits.train.class_counts(), "val": splits.val.class_counts()}
    if splits.test is not None:
        counts["test"] = splits.test.class_counts()
    metrics = write_reports(run_dir, evaluations, history, counts,
                            samples=splits.test if splits.test is not None else splits.val,
                            extra={"calibration": calibration.to_dict()})
    log(evaluations[-1].report_text())
    return metrics


def train_run(cfg: TrainConfig, run_dir: str | Path, progress: bool | None = None,
              log: Callable[[str], None] = print, *, _resume: bool = False,
              _extend_lr: float | None = None) -> dict:
    """Train into `run_dir`, then evaluate the best model and write the report. Returns the summary."""
    run_dir = Path(run_dir)
    splits = load_splits(cfg)
    summary = fit(cfg, splits, run_dir, resume=_resume, extend_lr=_extend_lr, progress=progress, log=log)
    if not is_main_process():  # rank 0 of a torchrun run reports
        return summary
    metrics = report_run(run_dir, splits, log=log, device=cfg.device)
    summary["val_acc"] = metrics["val"]["accuracy"]
    if "test" in metrics:
        summary["test_acc"] = metrics["test"]["accuracy"]
    summary["split"] = splits.description
    summary["temperature"] = metrics["calibration"]["temperature"]
    log(f"best epoch {summary['best_epoch']} (val acc {summary['best_val_acc']:.4f})"
        + (f"; test acc {summary['test_acc']:.4f}" if "test_acc" in summary else "")
        + f"; {summary['seconds_all_epochs']:.1f}s of training; run in {run_dir}")
    return summary


def resume_run(run_dir: str | Path, epochs: int | None = None, lr: float | None = None,
               progress: bool | None = None, log: Callable[[str], None] = print) -> dict:
    """Continue an interrupted run, or extend a finished one to `epochs` (new schedule phase at `lr`)."""
    cfg = read_config(run_dir)
    if lr is not None and not lr > 0:
        raise ConfigError(f"--lr must be > 0, got {lr:g}")
    if epochs is not None:
        if epochs < cfg.epochs:
            raise ConfigError(f"--epochs {epochs} is less than the run's {cfg.epochs}; "
                              "a run can only be extended")
        cfg = replace(cfg, epochs=epochs)
    return train_run(cfg, run_dir, progress=progress, log=log, _resume=True, _extend_lr=lr)
