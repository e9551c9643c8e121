"""Copy a finished run's best model into the package as a bundled model, with its measured metrics.

    .venv/bin/python scripts/bundle_model.py RUN [--name default|wild] --command "ferkit train ..."

The JSON sidecar gains the run's test metrics (FER2013 PrivateTest accuracy and per-class recall),
the exact training command and the training time, so the shipped file documents itself. The run's int8
twin (`ferkit export --int8`), when it has one made from these weights, is copied beside it; otherwise
a bundled twin left from older weights is removed, so the package never pairs weights with another's twin.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ferkit.atomic import write_bytes, write_json
from ferkit.models.files import BEST_FILE, BUNDLED_MODELS, load_model, read_info
from ferkit.models.int8 import int8_path, int8_problem

PRETRAINED = Path(__file__).resolve().parents[1] / "src" / "ferkit" / "pretrained"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--name", choices=sorted(BUNDLED_MODELS), default="default",
                        help="which bundled model the run becomes")
    parser.add_argument("--command", default="", help="the ferkit train command that made the run")
    args = parser.parse_args()
    best = args.run / BEST_FILE
    load_model(best)  # refuses anything that does not load cleanly
    info = read_info(best)
    metrics = json.loads((args.run / "metrics.json").read_text())
    history = json.loads((args.run / "history.json").read_text())
    config = json.loads((args.run / "config.json").read_text())
    test = metrics["test"]
    info.metrics = {
        "selected_on": "PublicTest (best validation accuracy)",
        "best_epoch": info.metrics["epoch"],
        "public_test_accuracy": metrics["val"]["accuracy"],
        "private_test_accuracy": test["accuracy"],
        "private_test_images": test["images"],
        "private_test_recall": {c: test["per_class"][c]["recall"] for c in test["class_names"]},
        "calibration": metrics.get("calibration"),
    }
    info.extra = {"trained_on": _trained_on(config), "epochs_run": len(history),
                  "training_seconds": round(sum(h["seconds"] for h in history), 1), "config": config,
                  "command": args.command}
    PRETRAINED.mkdir(parents=True, exist_ok=True)
    target = PRETRAINED / BUNDLED_MODELS[args.name]
    write_bytes(target, best.read_bytes())
    write_json(target.with_suffix(".json"), {"format_version": 1, **info.__dict__})
    _bundle_twin(best, target)
    print(f"bundled {best} as {target} (PrivateTest accuracy {test['accuracy']:.4f})")


def _bundle_twin(best: Path, target: Path) -> None:
    """Copy the run's int8 twin beside the bundled weights, or remove one made from older weights."""
    problem = int8_problem(best)
    if problem is None:
        write_bytes(int8_path(target), int8_path(best).read_bytes())
    elif int8_path(target).exists():
        int8_path(target).unlink()
        print(f"removed {int8_path(target)}, made from the older weights; the run has none: {problem}")


def _trained_on(config: dict) -> str:
    text = "FER2013 Training (28,709 images)"
    if config.get("labels", "dataset") != "dataset":
        text += f", targets: {config['labels']} (weight {config.get('soft_label_weight')})"
    if config.get("init"):
        text += f"; fine-tuned from {config['init']}"
    return text


if __name__ == "__main__":
    main()
