"""Average the weights of several models (fine-tunes of one starting point) into one model file.

    .venv/bin/python scripts/average_models.py runs/default-fast_fer-kd runs/wild-b --weights 0.5 0.5 \\
        --out runs/soup

Writes OUT/best.safetensors (+ best.json), which `ferkit evaluate --model OUT`, `ferkit calibrate` and
`scripts/bundle_model.py` take like a training run's folder. See `ferkit.models.soup`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ferkit.errors import FerkitError
from ferkit.models.files import BEST_FILE, save_model
from ferkit.models.soup import average_models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="model files or run folders (at least two)")
    parser.add_argument("--weights", type=float, nargs="+",
                        help="one per model, summing to 1 (default: equal)")
    parser.add_argument("--out", type=Path, required=True, help="folder for best.safetensors")
    args = parser.parse_args()
    try:
        model, info = average_models(args.models, args.weights)
    except FerkitError as exc:
        sys.exit(f"average_models: error: {exc}")
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"wrote {save_model(args.out / BEST_FILE, model, info)}: {info.extra}")


if __name__ == "__main__":
    main()
