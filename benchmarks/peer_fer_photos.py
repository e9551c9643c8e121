"""The `fer` package's side of benchmarks/photo_peers.py, run with the peers' python (benchmarks/peers.py).

    benchmarks/.peers/bin/python benchmarks/peer_fer_photos.py FACES_JSON

FACES_JSON: a list of {"path": image file, "boxes": [[left, top, right, bottom], ...]} (the labelled faces
of each photo). For each photo, `FER().detect_emotions` twice: on the photo as a user calls it (fer's
default Haar detector finds the faces), and with the labelled boxes given as `face_rectangles` (fer then
crops them its own way: squared, 10 px of margin, 64×64 gray). Prints one JSON line per photo:
{"found": [[left, top, right, bottom, label], ...], "boxes": [label per labelled box]}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
from fer.fer import FER  # fer 25 no longer re-exports it from the package


def top_label(emotions: dict[str, float]) -> str:
    return max(emotions, key=emotions.get)


def main(faces_json: str) -> None:
    detector = FER()
    for photo in json.loads(Path(faces_json).read_text()):
        image = cv2.imread(photo["path"])  # BGR, as fer expects
        found = [[x, y, x + w, y + h, top_label(face["emotions"])]
                 for face in detector.detect_emotions(image) for x, y, w, h in [face["box"]]]
        rectangles = [(round(x1), round(y1), round(x2 - x1), round(y2 - y1))
                      for x1, y1, x2, y2 in photo["boxes"]]
        given = detector.detect_emotions(image, face_rectangles=rectangles)
        if len(given) != len(rectangles):
            raise SystemExit(f"peer_fer_photos: fer dropped a labelled box of {photo['path']}")
        print(json.dumps({"found": [[float(v) for v in f[:4]] + [f[4]] for f in found],
                          "boxes": [top_label(face["emotions"]) for face in given]}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
