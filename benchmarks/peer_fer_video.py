"""The `fer` package's side of benchmarks/video_speed.py, run with the peers' python (benchmarks/peers.py).

    benchmarks/.peers/bin/python benchmarks/peer_fer_video.py CLIP OUT_VIDEO

The same job as `ferkit video CLIP --out OUT_VIDEO`: read each frame, `FER().detect_emotions` (fer's
default Haar detector), draw each face's box and top label, encode with cv2.VideoWriter (mp4v). Prints
one JSON line: frames, faces found, start-up seconds (imports + model) and loop seconds.
"""

from __future__ import annotations

import json
import sys
import time

START = time.perf_counter()

import cv2  # noqa: E402
from fer.fer import FER  # noqa: E402  (fer 25 no longer re-exports it from the package)


def draw(frame, faces: list[dict]) -> None:
    for face in faces:
        x, y, w, h = face["box"]
        label = max(face["emotions"], key=face["emotions"].get)
        cv2.rectangle(frame, (x, y), (x + w, y + h), (0, 200, 0), 2)
        cv2.putText(frame, f"{label} {face['emotions'][label]:.0%}", (x, max(12, y - 4)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2, cv2.LINE_AA)


def main(clip: str, out: str) -> None:
    detector = FER()
    capture = cv2.VideoCapture(clip)
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    writer = cv2.VideoWriter(out, cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    loop_start = time.perf_counter()
    frames = faces = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        found = detector.detect_emotions(frame)
        draw(frame, found)
        writer.write(frame)
        frames += 1
        faces += len(found)
    writer.release()
    end = time.perf_counter()
    print(json.dumps({"frames": frames, "faces": faces, "startup_s": loop_start - START,
                      "loop_s": end - loop_start}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
