"""ferkit against the `fer` package and face-api.js on real photos: the same labelled faces, matched alike.

    .venv/bin/python benchmarks/photo_peers.py            # expw-dev (1,388 faces) and photos/expw (90)
    .venv/bin/python benchmarks/photo_peers.py --quick    # 150 expw-dev faces drawn at random, photos/expw
    .venv/bin/python benchmarks/photo_peers.py --ferkit default   # which bundled models (default,wild)

Two paths per model, as `ferkit evaluate` defines them:
  full path  what a user runs on a photo: the model's own detector (ferkit: `Recognizer()`, YuNet and the
             landmark framing; fer: `FER().detect_emotions`, its Haar cascade; face-api.js:
             `detectAllFaces(...).withFaceExpressions()`, SSD MobileNet v1), each labelled face matched
             one-to-one to a squared detection box at IoU >= 0.4; a face with no match counts as wrong;
  boxes      each model given the labelled box and cropping it its own way (ferkit: the box framing, as
             `ferkit evaluate --boxes`; fer: `face_rectangles`, squared with its 10 px margin;
             face-api.js: `extractFaceTensors` on the box as it is).
The last column scores every row on the same faces: those that every model's detector found (for the
boxes rows too, so that the classifiers meet on the same faces and boxes).
fer runs in the peers' Python environment (benchmarks/peers.py, benchmarks/peer_fer_photos.py), face-api.js
in Node.js with TensorFlow.js on WASM (benchmarks/.peers-node, benchmarks/peer_faceapi_photos.cjs); a peer
whose environment cannot be made is left out, and the output says why.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import (  # noqa: E402
    FER,
    NODE_PACKAGES,
    ferkits_opencv,
    node_peers_or_reason,
    peers_python_or_reason,
)

from ferkit.compare import discordant, mcnemar_exact  # noqa: E402
from ferkit.data.images import load_image  # noqa: E402
from ferkit.evaluate_photos import (  # noqa: E402
    MIN_IOU,
    LabelledFace,
    evaluate_faces,
    faces_by_photo,
    match_squared,
    read_box_csv,
)
from ferkit.models.files import BUNDLED_MODELS  # noqa: E402
from ferkit.predict import Recognizer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("FERKIT_DATASETS", ROOT.parent / "shared" / "datasets"))
SOURCES = {"expw-dev": "expw-dev/annotations.csv", "photos/expw": "photos/expw/annotations.csv"}
QUICK_FACES = 150


def labelled_faces(name: str, quick: bool) -> list[LabelledFace]:
    faces = read_box_csv(DATASETS / SOURCES[name])
    if quick and len(faces) > QUICK_FACES:
        pick = np.sort(np.random.default_rng(0).choice(len(faces), QUICK_FACES, replace=False))
        faces = [faces[i] for i in pick]
    return faces


def ferkit_predictions(faces: list[LabelledFace], name: str, model: str) -> dict[str, list[str]]:
    """ferkit's label per labelled face on each path ('' when the full path found no matching face)."""
    recognizer = Recognizer(model)
    predicted = {}
    for match in ("detect", "boxes"):
        e = evaluate_faces(recognizer, faces, name, match, MIN_IOU, progress=False)
        predicted[match] = [e.class_names[p] if found else "" for p, found in zip(e.y_pred, e.found)]
    return predicted


def ferkit_name(model: str) -> str:
    return "ferkit" if model == "default" else f"ferkit {model}"


def answers_to_labels(faces: list[LabelledFace], photos: dict[Path, list[int]],
                      answers: list[dict]) -> dict[str, list[str]]:
    """A peer's per-photo answers ({"found": [[l, t, r, b, label], ...], "boxes": [label, ...]}) as a label
    per labelled face on each path, the full path's matched as ferkit's are."""
    detect, boxes = [""] * len(faces), [""] * len(faces)
    for index, answer in zip(photos.values(), answers, strict=True):
        found = answer["found"]
        for i, m in zip(index, match_squared([faces[i].box for i in index], [f[:4] for f in found])):
            detect[i] = found[m][4] if m >= 0 else ""
        for i, label in zip(index, answer["boxes"], strict=True):
            boxes[i] = label
    return {"detect": detect, "boxes": boxes}


def run_peer(command: list[str], env: dict[str, str], who: str) -> list[dict]:
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"photo_peers: error: the {who} side failed: {done.stderr.strip()[-600:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def fer_predictions(faces: list[LabelledFace], python: Path) -> dict[str, list[str]]:
    """fer's label per labelled face on each path, from benchmarks/peer_fer_photos.py."""
    photos = faces_by_photo(faces)
    request = [{"path": str(path), "boxes": [list(faces[i].box) for i in index]}
               for path, index in photos.items()]
    with tempfile.TemporaryDirectory() as tmp:
        faces_json = Path(tmp) / "faces.json"
        faces_json.write_text(json.dumps(request))
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="",
                   PYTHONPATH=str(ferkits_opencv(Path(tmp))))
        answers = run_peer([str(python), str(ROOT / "benchmarks" / "peer_fer_photos.py"), str(faces_json)],
                           env, "fer")
    return answers_to_labels(faces, photos, answers)


def faceapi_predictions(faces: list[LabelledFace], node_dir: Path) -> dict[str, list[str]]:
    """face-api.js's label per labelled face on each path."""
    return answers_to_labels(faces, faces_by_photo(faces), faceapi_answers(faces, node_dir))


def faceapi_answers(faces: list[LabelledFace], node_dir: Path) -> list[dict]:
    """face-api.js's answer per photo of `faces` (in `faces_by_photo` order), from
    benchmarks/peer_faceapi_photos.cjs: the photos decoded here, by ferkit's reader, and handed over as raw
    RGB."""
    photos = faces_by_photo(faces)
    with tempfile.TemporaryDirectory() as tmp:
        request = []
        for n, (path, index) in enumerate(photos.items()):
            rgb = load_image(path, mode="rgb")
            raw = Path(tmp) / f"{n}.rgb"
            raw.write_bytes(np.ascontiguousarray(rgb).tobytes())
            request.append({"rgb": str(raw), "height": rgb.shape[0], "width": rgb.shape[1],
                            "boxes": [list(faces[i].box) for i in index]})
        request_json = Path(tmp) / "request.json"
        request_json.write_text(json.dumps(request))
        command = ["node", str(ROOT / "benchmarks" / "peer_faceapi_photos.cjs"),
                   str(node_dir / "node_modules"), str(request_json)]
        return run_peer(command, dict(os.environ), "face-api.js")


def scores(labels: list[str], predicted: list[str], common: np.ndarray) -> dict[str, float]:
    """Accuracy, macro recall, found rate, accuracy on the faces found, and on the `common` faces (those
    every model's detector found, whichever path `predicted` comes from)."""
    truth, guess = np.array(labels), np.array(predicted)
    right, found = truth == guess, guess != ""
    recalls = [right[truth == c].mean() for c in sorted(set(labels))]
    return {"accuracy": right.mean(), "macro": float(np.mean(recalls)), "found": found.mean(),
            "on_found": right[found].mean() if found.any() else 0.0,
            "on_common": right[common].mean() if common.any() else 0.0, "common": int(common.sum())}


def table(rows: list[tuple[str, str, str, dict[str, float], int]]) -> None:
    print("| data | model | path | faces | accuracy | macro recall | found | accuracy on found "
          "| accuracy on the faces every detector found |")
    print("|---|---|---|---|---|---|---|---|---|")
    for data, model, path, s, n in rows:
        print(f"| {data} | {model} | {path} | {n} | {s['accuracy']:.1%} | {s['macro']:.1%} | "
              f"{s['found']:.1%} | {s['on_found']:.1%} | {s['on_common']:.1%} ({s['common']}) |")


def paired(labels: list[str], ours: list[str], theirs: list[str], mask: np.ndarray) -> tuple[int, int, float]:
    """On the faces of `mask`: how many only ferkit gets right, only the peer, and McNemar's exact p."""
    truth = np.array(labels)[mask]
    only_ours, only_theirs = discordant(np.array(ours)[mask] == truth, np.array(theirs)[mask] == truth)
    return only_ours, only_theirs, mcnemar_exact(only_ours, only_theirs)


def paired_table(data: str, labels: list[str], models: dict[str, dict[str, list[str]]],
                 common: np.ndarray) -> None:
    """Each ferkit model against each peer on the same faces: the faces only one of the two gets right,
    and p."""
    print(f"\n{data}: ferkit against each peer, paired on the same faces (McNemar's exact test on the faces "
          "only one of the two gets right; a missed face is wrong)\n")
    print("| ferkit | peer | path | faces | only ferkit right | only the peer right | McNemar p |")
    print("|---|---|---|---|---|---|---|")
    everyone = np.ones(len(labels), dtype=bool)
    ours = [m for m in models if m.startswith("ferkit")]
    for peer in [m for m in models if m not in ours]:
        for path, title in (("detect", "full path"), ("boxes", "labelled boxes")):
            for mask, which in ((everyone, "all"), (common, "every detector found")):
                for model in ours:
                    a, b, p = paired(labels, models[model][path], models[peer][path], mask)
                    faces = f"{int(mask.sum())} ({which})"
                    print(f"| {model} | {peer} | {title} | {faces} | {a} | {b} | {p:.2g} |")


def class_rows(labels: list[str], predicted: list[str]) -> tuple[dict[str, float], dict[str, float]]:
    """Recall per labelled class, and the share of the faces found that the model gives each class."""
    truth, guess = np.array(labels), np.array(predicted)
    classes = sorted(set(labels))
    found = guess[guess != ""]
    recall = {c: float((guess[truth == c] == c).mean()) for c in classes}
    share = {c: float((found == c).mean()) if found.size else 0.0 for c in classes}
    return recall, share


def class_table(data: str, labels: list[str], models: dict[str, dict[str, list[str]]]) -> None:
    """Per-class recall of every model and path (a face not found counts as wrong), and how often each
    model answers each class: where a model's lead or loss comes from, class by class."""
    classes = sorted(set(labels))
    print(f"\n{data}: recall per labelled class, then (after the bar) the share of each answer among the "
          "faces found; the labels' own share in the last row\n")
    print("| model | path | " + " | ".join(classes) + " | answers: " + " | ".join(classes) + " |")
    print("|---|---|" + "---|" * (2 * len(classes)))
    for path, title in (("detect", "full path"), ("boxes", "labelled boxes")):
        for model, predicted in models.items():
            recall, share = class_rows(labels, predicted[path])
            print(f"| {model} | {title} | " + " | ".join(f"{recall[c]:.0%}" for c in classes) + " | "
                  + " | ".join(f"{share[c]:.0%}" for c in classes) + " |")
    truth = np.array(labels)
    print("| labels | | " + " | ".join("" for _ in classes) + " | "
          + " | ".join(f"{(truth == c).mean():.0%}" for c in classes) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_FACES} expw-dev faces, photos/expw")
    parser.add_argument("--ferkit", default=",".join(BUNDLED_MODELS),
                        help="ferkit's bundled models to run, comma-separated (default: all of them)")
    args = parser.parse_args()
    ferkit_models = [m.strip() for m in args.ferkit.split(",") if m.strip()]
    unknown = [m for m in ferkit_models if m not in BUNDLED_MODELS]
    if unknown or not ferkit_models:
        parser.error(f"--ferkit {args.ferkit}: choose from {', '.join(BUNDLED_MODELS)}")
    python, why = peers_python_or_reason()
    node_dir, node_why = node_peers_or_reason()
    rows_named = ", ".join(f"{ferkit_name(m)}: Recognizer(model='{m}')" for m in ferkit_models)
    print(f"ferkit: bundled models, Recognizer() defaults ({rows_named}); fer: {FER}, FER() defaults; "
          f"face-api.js: {NODE_PACKAGES[0]}, SSD MobileNet v1 + expression net, TensorFlow.js WASM")
    for reason in (why, node_why):
        print(f"left out: {reason}" if reason else "", end="\n" if reason else "")
    print()
    rows, per_class = [], []
    for name in SOURCES:
        faces = labelled_faces(name, args.quick)
        labels = [face.label for face in faces]
        models = {ferkit_name(m): ferkit_predictions(faces, name, m) for m in ferkit_models}
        if python:
            models["fer"] = fer_predictions(faces, python)
        if node_dir:
            models["face-api.js"] = faceapi_predictions(faces, node_dir)
        # the faces every model's detector found: the same faces for every row, both paths
        common = np.all([np.array(predicted["detect"]) != "" for predicted in models.values()], axis=0)
        for path, title in (("detect", "full path"), ("boxes", "labelled boxes")):
            for model, predicted in models.items():
                rows.append((name, model, title, scores(labels, predicted[path], common), len(faces)))
        per_class.append((name, labels, models, common))
    table(rows)
    class_table(*per_class[0][:3])  # expw-dev; photos/expw has too few faces per class to read
    paired_table(*per_class[0])


if __name__ == "__main__":
    main()
