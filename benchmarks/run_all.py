"""Regenerate the measured tables of BENCHMARKS.md: every benchmark and evaluation, one after another.

    .venv/bin/python benchmarks/run_all.py              # full runs; rewrites BENCHMARKS.md's tables
    .venv/bin/python benchmarks/run_all.py --quick      # small subsets, a few minutes, into
                                                        # artifacts/BENCHMARKS.quick.md
    .venv/bin/python benchmarks/run_all.py --only video_speed,recognizer_speed
    .venv/bin/python benchmarks/run_all.py --list

Each job's output replaces the text between `<!-- run_all:NAME -->` and `<!-- /run_all:NAME -->` in
BENCHMARKS.md, under the command that produced it; the prose around the markers is left alone. The
`machine` block names the CPU, the library versions and the load average before the first job. Jobs run
one at a time, because two processes sharing the 2 cores make every timing lie. A job that fails keeps
its old text, is reported at the end, and makes the exit status 1.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_line  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
QUICK_MD = ROOT / "artifacts" / "BENCHMARKS.quick.md"
DATASETS = os.path.relpath(os.environ.get("FERKIT_DATASETS", ROOT.parent / "shared" / "datasets"), ROOT)
PY = ".venv/bin/python"
FERKIT = ".venv/bin/ferkit"


@dataclass
class Job:
    """One block of BENCHMARKS.md: `command` (words; PY/FERKIT/DATASETS are filled in) and its quick form.

    `keep="tables"` keeps only the Markdown table lines of the output (for `ferkit evaluate`, whose
    per-dataset reports come first); `keep="text"` shows the output as it is, in a text block.
    `{tmp}` in a command is a fresh temporary folder, removed after the job.
    """

    name: str
    command: str
    quick: str = ""
    keep: str = "all"
    minutes: float = 1.0  # rough full-run time on the development box, for --list
    env: dict[str, str] = field(default_factory=dict)

    def words(self, quick: bool, tmp: str = "TMP") -> list[str]:
        text = self.quick if quick and self.quick else self.command
        return shlex.split(text.format(py=PY, ferkit=FERKIT, data=DATASETS, tmp=tmp))


def _evaluate(data: str, extra: str = "", model: str = "default") -> str:
    return f"{{ferkit}} evaluate --model {model} --no-progress --data {data} {extra}".strip()


def _crossval(model: str, init: str, quick: bool) -> str:
    """CK+48 subject-independent cross-validation of `model` fine-tuned from `init` (the block's recipe)."""
    start, end = "{ferkit} crossval --data {data}/ckplus/CK+48", "--no-progress --out {tmp}/crossval"
    if quick:
        return f"{start} --folds 2 --model {model} --epochs 1 --init {init} {end}"
    return (f"{start} --folds 10 --model {model} --epochs 30 --optimizer adamw --weight-decay 0.05 "
            f"--label-smoothing 0.1 --warmup-epochs 2 --init {init} --lr 1e-3 {end}")


JOBS = [
    Job("accuracy", _evaluate("{data}/fer2013", "--split test"), keep="tables", minutes=0.5),
    Job("accuracy_ferplus", _evaluate("{data}/fer2013", "--labels ferplus-majority --split test"),
        keep="tables", minutes=0.5),
    Job("cross_dataset",
        _evaluate("{data}/ckplus/CK+48 {data}/expw-dev {data}/photos/expw", "--split all"),
        _evaluate("{data}/ckplus/CK+48 {data}/photos/expw", "--split all"), keep="tables", minutes=0.5),
    Job("cross_dataset_boxes", _evaluate("{data}/expw-dev", "--boxes --split all"), keep="tables",
        minutes=0.3),
    Job("wild_vs_default",
        _evaluate("{data}/fer2013 {data}/expw-dev", "--split val --against default", "wild"),
        _evaluate("{data}/photos/expw", "--split all --against default", "wild"), keep="tables", minutes=2),
    Job("wild_vs_default_ferplus",
        _evaluate("{data}/fer2013", "--split val --labels ferplus-majority --against default", "wild"),
        keep="tables", minutes=0.7),
    Job("wild_accuracy", _evaluate("{data}/fer2013", "--split test", "wild"), keep="tables", minutes=0.5),
    Job("wild_accuracy_ferplus",
        _evaluate("{data}/fer2013", "--labels ferplus-majority --split test", "wild"), keep="tables",
        minutes=0.5),
    Job("wild_cross_dataset",
        _evaluate("{data}/ckplus/CK+48 {data}/expw-dev {data}/photos/expw", "--split all", "wild"),
        _evaluate("{data}/ckplus/CK+48 {data}/photos/expw", "--split all", "wild"), keep="tables", minutes=1),
    Job("wild_cross_dataset_boxes", _evaluate("{data}/expw-dev", "--boxes --split all", "wild"),
        keep="tables", minutes=0.5),
    Job("wild_tta", _evaluate("{data}/fer2013 {data}/expw-dev", "--split val --tta flip", "wild"),
        _evaluate("{data}/photos/expw", "--split all --tta flip", "wild"), keep="tables", minutes=2),
    Job("uncalibrated", _evaluate("{data}/fer2013", "--split test --no-calibration"), keep="tables",
        minutes=0.5),
    Job("uncalibrated_expw", _evaluate("{data}/expw-dev", "--split all --no-calibration"),
        _evaluate("{data}/photos/expw", "--split all --no-calibration"), keep="tables", minutes=0.3),
    Job("tta", _evaluate("{data}/fer2013", "--split test --tta flip"), keep="tables", minutes=0.5),
    Job("tta_expw", _evaluate("{data}/expw-dev", "--split all --tta flip"),
        _evaluate("{data}/photos/expw", "--split all --tta flip"), keep="tables", minutes=0.3),
    Job("photo_peers", "{py} benchmarks/photo_peers.py", "{py} benchmarks/photo_peers.py --quick",
        minutes=13),
    Job("detector_framing", "{py} benchmarks/detector_framing.py",
        "{py} benchmarks/detector_framing.py --quick", minutes=7.5),
    Job("failure_modes", "{py} benchmarks/failure_modes.py", "{py} benchmarks/failure_modes.py --quick",
        minutes=1.5),
    Job("wild_failure_modes", "{py} benchmarks/failure_modes.py --model wild",
        "{py} benchmarks/failure_modes.py --model wild --quick", minutes=1.5),
    Job("label_agreement", "{py} benchmarks/label_agreement.py", minutes=0.2),
    Job("calibration_variants", "{py} benchmarks/calibration_variants.py",
        "{py} benchmarks/calibration_variants.py --quick", minutes=1),
    Job("prior_correction", "{py} benchmarks/prior_correction.py",
        "{py} benchmarks/prior_correction.py --quick", minutes=2),
    Job("ckplus_crossval", _crossval("fast_fer", "default", False), _crossval("fast_fer", "default", True),
        keep="text", minutes=10),
    Job("ckplus_crossval_wild", _crossval("resnet_fer", "wild", False), _crossval("resnet_fer", "wild", True),
        keep="text", minutes=9),
    Job("default_engine_photos",
        _evaluate("{data}/expw-dev {data}/photos/expw", "--split all --backend auto"),
        _evaluate("{data}/photos/expw", "--split all --backend auto"), keep="tables", minutes=0.5),
    Job("recognizer_speed", "{py} benchmarks/recognizer_speed.py",
        "{py} benchmarks/recognizer_speed.py --quick", minutes=7),
    Job("int8_one_face", "{py} benchmarks/int8_one_face.py", "{py} benchmarks/int8_one_face.py --seconds 0.5",
        minutes=0.7),
    Job("int8_calibration", "{py} benchmarks/int8_calibration.py",
        "{py} benchmarks/int8_calibration.py --quick", minutes=2),
    Job("wild_int8_calibration", "{py} benchmarks/int8_calibration.py --model wild",
        "{py} benchmarks/int8_calibration.py --model wild --quick", minutes=3),
    Job("wild_speed", "{py} benchmarks/recognizer_speed.py --model wild",
        "{py} benchmarks/recognizer_speed.py --quick --model wild", minutes=7),
    Job("int8_threads", "{py} benchmarks/int8_threads.py", "{py} benchmarks/int8_threads.py --seconds 0.2",
        keep="text", minutes=0.5),
    Job("openvino_engine", "{py} benchmarks/openvino_engine.py", "{py} benchmarks/openvino_engine.py --quick",
        minutes=1.5),
    Job("classifier_throughput", "{py} benchmarks/classifier_throughput.py",
        "{py} benchmarks/classifier_throughput.py --models fast_fer --seconds 1", keep="text", minutes=3),
    Job("train_vs_keras", "{py} benchmarks/train_vs_keras.py", "{py} benchmarks/train_vs_keras.py --quick",
        minutes=5),
    Job("freed_memory", "{py} benchmarks/freed_memory.py",
        "{py} benchmarks/freed_memory.py --models seed_cnn --rounds 1 --images 640", minutes=3),
    Job("train_speed", "{py} benchmarks/train_speed.py --models fast_fer,seed_cnn",
        "{py} benchmarks/train_speed.py --models fast_fer --steps 10", keep="text", minutes=1),
    Job("epoch_cost", "{py} benchmarks/epoch_cost.py --models fast_fer,seed_cnn",
        "{py} benchmarks/epoch_cost.py --max-per-class 100", minutes=3),
    Job("ddp_speed", "{py} benchmarks/ddp_speed.py", "{py} benchmarks/ddp_speed.py --quick", minutes=4),
    Job("detection", "{py} benchmarks/detection_recall.py", "{py} benchmarks/detection_recall.py --quick",
        minutes=4),
    Job("video", "{py} benchmarks/video_speed.py --minutes 10", "{py} benchmarks/video_speed.py --quick",
        minutes=13),
    Job("data_load", "{py} benchmarks/data_load.py", keep="text", minutes=0.5),
    Job("serve_load", "{py} benchmarks/serve_load.py --clients 16 --seconds 60",
        "{py} benchmarks/serve_load.py --clients 4 --seconds 10", keep="text", minutes=1.5),
]


def machine_block(quick: bool) -> str:
    cpu = cpu_line()
    versions = []
    for module in ("torch", "onnxruntime", "cv2"):
        try:
            versions.append(f"{module} {__import__(module).__version__}")
        except ImportError:
            versions.append(f"{module} missing")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    mode = "--quick: small subsets, not comparable with the full tables" if quick else "full runs"
    return (f"Measured {datetime.date.today().isoformat()} by `benchmarks/run_all.py` ({mode}) on {cpu}, "
            f"Python {platform.python_version()}, {', '.join(versions)}; "
            f"load average before the first job: {load}.\n")


def run_job(job: Job, quick: bool) -> tuple[str | None, str]:
    """(the block's new text, or None on failure; a status line)."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ferkit-run_all-") as tmp:
        words = job.words(quick, tmp)
        result = subprocess.run(words, cwd=ROOT, capture_output=True, text=True,
                                env={**os.environ, **job.env})
    took = time.perf_counter() - start
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        return None, f"{job.name}: FAILED (exit {result.returncode}) after {took:.0f} s: {tail[0]}"
    output = result.stdout
    if job.keep == "tables":
        output = "\n".join(line for line in output.splitlines() if line.startswith("|")) + "\n"
    elif job.keep == "text":
        output = f"```text\n{output.strip()}\n```\n"
    shown = shlex.join(job.words(quick)).replace("TMP/", "OUT/")
    block = f"```sh\n{shown}\n```\n\n{output.strip()}\n"
    return block, f"{job.name}: {took:.0f} s"


def replace_block(text: str, name: str, block: str) -> str:
    pattern = re.compile(rf"(<!-- run_all:{re.escape(name)} -->\n).*?(<!-- /run_all:{re.escape(name)} -->)",
                         re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"run_all: error: BENCHMARKS.md has no <!-- run_all:{name} --> block")
    return pattern.sub(lambda m: m.group(1) + block + m.group(2), text, count=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="small subsets; write artifacts/BENCHMARKS.quick.md")
    parser.add_argument("--only", help="comma-separated job names (default: all); the machine line "
                        "of the last full run stays")
    parser.add_argument("--list", action="store_true", help="list the jobs and their commands, run nothing")
    args = parser.parse_args()
    jobs = _selected(args.only)
    if args.list:
        for job in jobs:
            print(f"{job.name:24} ~{job.minutes:g} min  {shlex.join(job.words(args.quick))}")
        return 0
    sys.path.insert(0, str(ROOT / "src"))
    from ferkit.atomic import write_text

    text = BENCHMARKS_MD.read_text()
    if not args.only:  # the machine line names the full run; a partial rerun's blocks name their own CPU
        text = replace_block(text, "machine", machine_block(args.quick))
    failures = []
    for job in jobs:
        replace_block(text, job.name, "")  # fail before running anything long if a marker is missing
    for job in jobs:
        print(f"running {job.name} …", flush=True)
        block, status = run_job(job, args.quick)
        print(status, flush=True)
        if block is None:
            failures.append(status)
            continue
        text = replace_block(text, job.name, block)
        write_text(QUICK_MD if args.quick else BENCHMARKS_MD, text)
    print(f"wrote {QUICK_MD if args.quick else BENCHMARKS_MD}")
    for failure in failures:
        print(failure, file=sys.stderr)
    return 1 if failures else 0


def _selected(only: str | None) -> list[Job]:
    if not only:
        return JOBS
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in {j.name for j in JOBS}]
    if unknown:
        raise SystemExit(f"run_all: error: unknown job(s) {', '.join(unknown)}; "
                         f"choose from: {', '.join(j.name for j in JOBS)}")
    return [j for j in JOBS if j.name in names]


if __name__ == "__main__":
    sys.exit(main())
