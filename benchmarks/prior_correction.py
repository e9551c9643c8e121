"""The bundled models corrected for FER2013's class frequencies: does a label-shift correction help on photos?

    .venv/bin/python benchmarks/prior_correction.py [--quick]

FER2013 Training is a quarter happy and 1.5 % disgust; expw-dev holds about 200 faces of each class. A model
trained on FER2013 carries its training frequencies in its probabilities, so a test set with other
frequencies may be scored better with p(class | face) / prior(class)^tau (tau = 1: the decision that is right
most often when every class is equally likely, Menon et al. 2021's logit adjustment; tau = 0: the model as
shipped). The prior is FER2013 Training's label frequencies; nothing here is fitted. Each bundled model, on
expw-dev (full path and labelled boxes), photos/expw (full path), CK+48 (the six classes the models share),
and FER2013 PublicTest and PrivateTest: accuracy / macro recall. `--quick`: 400 faces from each FER2013
split, expw-dev's boxes and CK+48 only.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from ferkit.data import load_dataset
from ferkit.evaluate_photos import evaluate_boxes, evaluate_crops
from ferkit.models import load_classifier
from ferkit.predict import Recognizer

DATASETS = Path(os.environ.get("FERKIT_DATASETS",
                               Path(__file__).resolve().parents[2] / "shared" / "datasets"))
TAUS = (0.0, 0.5, 1.0)


def training_prior(fer, class_names: list[str]) -> np.ndarray:
    """FER2013 Training's label frequencies, in the model's class order."""
    train = fer.where_usage("Training")
    counts = np.bincount(train.labels, minlength=len(train.class_names)).astype(float)
    return np.array([counts[train.class_names.index(name)] for name in class_names]) / counts.sum()


def scored_sets(classifier, fer, quick: bool) -> dict:
    """{name: (probabilities, labels, found)} of every data set, probabilities as `Recognizer` gives them."""
    recognizer = Recognizer(model=classifier)
    rng = np.random.default_rng(0)
    sets = {}
    for usage in ("PublicTest", "PrivateTest"):
        split = fer.where_usage(usage)
        if quick:  # the folders list faces class by class: draw, do not slice
            split = split.subset(np.sort(rng.choice(len(split), 400, replace=False)))
        sets[usage] = evaluate_crops(classifier, split)
    sets["CK+48"] = evaluate_crops(classifier, load_dataset(DATASETS / "ckplus" / "CK+48"))
    sets["expw-dev boxes"] = evaluate_boxes(recognizer, DATASETS / "expw-dev", match="boxes", progress=False)
    if not quick:
        sets["expw-dev detect"] = evaluate_boxes(recognizer, DATASETS / "expw-dev", progress=False)
        sets["photos/expw detect"] = evaluate_boxes(recognizer, DATASETS / "photos" / "expw", progress=False)
    return {name: (e.probs, e.y_true, e.has_probs()) for name, e in sets.items()}


def accuracy_and_macro_recall(probs: np.ndarray, labels: np.ndarray, found: np.ndarray) -> str:
    """accuracy / macro recall, a face not found counting as wrong."""
    predicted = np.where(found, probs.argmax(1), -1)
    recall = np.mean([(predicted[labels == c] == c).mean() for c in np.unique(labels)])
    return f"{(predicted == labels).mean():.1%} / {recall:.1%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="400 faces per FER2013 split, fewer data sets")
    args = parser.parse_args()
    fer = load_dataset(DATASETS / "fer2013")
    for model in ("default", "wild"):
        classifier = load_classifier(model)
        prior = training_prior(fer, classifier.class_names)
        if model == "default":
            print("FER2013 Training prior: " + ", ".join(f"{name} {p:.1%}"
                                                         for name, p in zip(classifier.class_names, prior)))
        sets = scored_sets(classifier, fer, args.quick)
        print(f"\n`{model}`, accuracy / macro recall\n")
        print("| tau | " + " | ".join(f"{name} ({len(s[1]):,})" for name, s in sets.items()) + " |")
        print("|---|" + "---|" * len(sets))
        for tau in TAUS:
            cells = [accuracy_and_macro_recall(p / prior ** tau, y, found) for p, y, found in sets.values()]
            print(f"| {tau:g} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
