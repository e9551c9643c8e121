"""ferkit's classifier on face-api.js's detector boxes: where face-api.js's lead on frontal faces comes from.

    .venv/bin/python benchmarks/detector_framing.py [--quick] [--model default]

On the expw-dev faces that face-api.js finds, face-api.js is right more often through its own path than
ferkit's, though given the same labelled boxes the two classifiers are level (BENCHMARKS.md, *Against the
`fer` package and face-api.js*). This gives ferkit's classifier the crops that face-api.js's detector would
give it, on the faces both detectors find (each labelled face matched to a squared detection at IoU >= 0.4,
as `ferkit evaluate` matches):
- ferkit as shipped: YuNet's five landmarks placed on FER2013's template (`Recognizer()`);
- YuNet's box, squared with the box framing at FER2013's margin (-0.07): the same detector without landmarks;
- face-api.js's SSD MobileNet v1 box, squared, at margins -0.07, 0 and 0.2;
- the labelled box (as `ferkit evaluate --boxes`);
- face-api.js's own label through its path, for reference.
Each row: accuracy on those faces, and paired against ferkit as shipped (faces only the row gets right /
only ferkit as shipped, McNemar's exact p). `--quick`: 150 expw-dev faces drawn at random.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import NODE_PACKAGES, node_peers_or_reason  # noqa: E402
from photo_peers import answers_to_labels, faceapi_answers, labelled_faces  # noqa: E402

from ferkit.compare import discordant, mcnemar_exact  # noqa: E402
from ferkit.evaluate_photos import faces_by_photo, match_squared  # noqa: E402
from ferkit.faces import Detection, Framing, crop_faces  # noqa: E402
from ferkit.predict import Recognizer  # noqa: E402

SSD_MARGINS = (-0.07, 0.0, 0.2)
BOX_MARGIN = -0.07  # FER2013_BOX_MARGIN, the box framing's default


def matched(labelled: list, found: list) -> list[int]:
    """For each labelled face of one photo, the index of the detection box matched to it (as evaluate
    matches), or -1."""
    return list(match_squared([face.box for face in labelled], [box[:4] for box in found]))


def crops_by_framing(recognizer: Recognizer, faces: list, answers: list[dict]) -> tuple[dict, np.ndarray]:
    """{row name: N×S×S crops} (zeros where that row's detector missed the face) and the faces both
    detectors found."""
    size = recognizer.input_size
    names = ["ferkit as shipped (YuNet landmarks)", f"YuNet box, margin {BOX_MARGIN:g}",
             *(f"face-api.js's box, margin {m:g}" for m in SSD_MARGINS), "labelled box"]
    rows = {name: np.zeros((len(faces), size, size), np.uint8) for name in names}
    both = np.zeros(len(faces), bool)
    for (path, index), answer in zip(faces_by_photo(faces).items(), answers, strict=True):
        labelled = [faces[i] for i in index]
        result = recognizer(path)
        image = result.image
        for i, face, y, s in zip(index, labelled, matched(labelled, [f.box for f in result.faces]),
                                 matched(labelled, answer["found"])):
            both[i] = y >= 0 and s >= 0
            if y >= 0:
                shipped = result.faces[y]
                detection = Detection(shipped.box, shipped.score, shipped.landmarks)
                rows[names[0]][i] = recognizer.crops(image, [detection])[0]
                rows[names[1]][i] = crop_faces(image, [shipped.box], size, Framing("box", BOX_MARGIN))[0]
            if s >= 0:
                for m in SSD_MARGINS:
                    rows[f"face-api.js's box, margin {m:g}"][i] = crop_faces(
                        image, [tuple(answer["found"][s][:4])], size, Framing("box", m))[0]
            rows["labelled box"][i] = crop_faces(image, [face.box], size, Framing("box", BOX_MARGIN))[0]
    return rows, both


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="150 expw-dev faces drawn at random")
    parser.add_argument("--model", default="default", help="the classifier (default: the bundled default)")
    args = parser.parse_args()
    node_dir, why = node_peers_or_reason()
    if node_dir is None:
        raise SystemExit(f"detector_framing: face-api.js is needed: {why}")
    faces = labelled_faces("expw-dev", args.quick)
    answers = faceapi_answers(faces, node_dir)
    recognizer = Recognizer(args.model)
    crops, both = crops_by_framing(recognizer, faces, answers)
    labels = np.array([recognizer.class_names.index(face.label) for face in faces])
    right = {name: recognizer.classifier.predict_proba(c).argmax(1) == labels for name, c in crops.items()}
    faceapi = answers_to_labels(faces, faces_by_photo(faces), answers)["detect"]
    right["face-api.js through its own path"] = np.array([p == f.label for p, f in zip(faceapi, faces)])
    print(f"classifier: {args.model} (Recognizer's engine); face-api.js: {NODE_PACKAGES[0]}, "
          f"SSD MobileNet v1; expw-dev faces found by both detectors: {both.sum():,} of {len(faces):,}\n")
    print("| crop | accuracy | only it right | only ferkit as shipped right | McNemar p |")
    print("|---|---|---|---|---|")
    shipped = right["ferkit as shipped (YuNet landmarks)"][both]
    for name, hits in right.items():
        only_it, only_shipped = discordant(hits[both], shipped)
        print(f"| {name} | {hits[both].mean():.1%} | {only_it} | {only_shipped} | "
              f"{mcnemar_exact(only_it, only_shipped):.2g} |")


if __name__ == "__main__":
    main()
