"""Crash safety of training, with real signals on a real `python -m ferkit.cli train` subprocess.

- SIGKILL right after an epoch line appears (so in the middle of the next epoch: no handler, no
  cleanup runs), then `train --resume RUN`: the run finishes with epochs 1..4 and no gap, and its
  history and weights are *equal* to an uninterrupted run's with the same seed. fp32 on one CPU
  thread is deterministic, and the checkpoint holds every RNG state (torch's and the augmentation
  generator's), the optimiser and the schedule, so equality, not closeness, is asserted.
- SIGINT (Ctrl-C) during training: exit code 130, exactly one stderr line saying how to resume
  (`ferkit train --resume RUN`), and a checkpoint that loads with weights_only=True and resumes to
  the same result.

The uninterrupted reference run starts once per module, in parallel with the first test (two
processes at one thread each).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ferkit.train import BEST, CHECKPOINT

EPOCHS = 4
ARGS = ["--model", "seed_cnn", "--epochs", str(EPOCHS), "--precision", "fp32", "--threads", "1",
        "--no-progress"]
COMPARED = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc")  # everything but timings


def _ferkit(*args) -> list[str]:
    return [sys.executable, "-m", "ferkit.cli", *map(str, args)]


def _default_sigint() -> None:
    # A child started from a shell's background job inherits SIGINT ignored, and Python then installs no
    # KeyboardInterrupt handler: restore the default so the test sees what a user at a terminal sees.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(data: Path, run: Path) -> subprocess.Popen:
    log = open(run.parent / f"{run.name}.log", "w")  # a file, not a pipe: a full pipe would stall the child
    proc = subprocess.Popen(_ferkit("train", "--data", data, "--out", run, *ARGS), stdout=log,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    log.close()
    return proc


def _history(run: Path) -> list[dict]:
    try:
        return json.loads((run / "history.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return []


def _wait_for_first_epoch(proc: subprocess.Popen, run: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not _history(run):
        if proc.poll() is not None:
            pytest.fail(f"training ended before its first epoch: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("no epoch finished in time")
        time.sleep(0.01)


def _resume(run: Path) -> None:
    result = subprocess.run(_ferkit("train", "--resume", run, "--no-progress"), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def _assert_same_run(run: Path, reference: Path) -> None:
    history = _history(run)
    assert [h["epoch"] for h in history] == list(range(1, EPOCHS + 1))
    assert ([{k: h[k] for k in COMPARED} for h in history]
            == [{k: h[k] for k in COMPARED} for h in _history(reference)])
    a = torch.load(run / CHECKPOINT, weights_only=True)
    b = torch.load(reference / CHECKPOINT, weights_only=True)
    assert a["epoch"] == b["epoch"] == EPOCHS and a["best"] == b["best"]
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    best_a, best_b = load_file(str(run / BEST)), load_file(str(reference / BEST))
    assert all(torch.equal(best_a[k], best_b[k]) for k in best_b)
    assert (json.loads((run / "metrics.json").read_text())
            == json.loads((reference / "metrics.json").read_text()))
    assert not [p.name for p in run.iterdir() if p.name.startswith(".")]  # no temporary file left behind


@pytest.fixture(scope="module")
def uninterrupted(fer2013_small, tmp_path_factory):
    """The reference run, started at once; calling the fixture's value waits for it and returns its folder."""
    run = tmp_path_factory.mktemp("uninterrupted") / "run"
    proc = _start(fer2013_small, run)

    def finished() -> Path:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        return run

    yield finished
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(fer2013_small, tmp_path, uninterrupted):
    run = tmp_path / "run"
    proc = _start(fer2013_small, run)
    _wait_for_first_epoch(proc, run)
    proc.kill()  # SIGKILL: the process gets no chance to clean up
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    state = torch.load(run / CHECKPOINT, weights_only=True)  # whole and loadable, whenever it died
    assert 1 <= state["epoch"] < EPOCHS  # it died mid-run
    assert [h["epoch"] for h in state["history"]] == list(range(1, state["epoch"] + 1))

    _resume(run)
    _assert_same_run(run, uninterrupted())


def test_sigint_exits_130_with_one_resume_line_and_a_resumable_checkpoint(fer2013_small, tmp_path,
                                                                         uninterrupted):
    run = tmp_path / "run"
    proc = _start(fer2013_small, run)
    _wait_for_first_epoch(proc, run)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ferkit: error: interrupted"), err
    assert lines[0].endswith(f"Resume with: ferkit train --resume {run}"), err
    state = torch.load(run / CHECKPOINT, weights_only=True)
    assert 1 <= state["epoch"] < EPOCHS and len(state["history"]) == state["epoch"]

    _resume(run)
    _assert_same_run(run, uninterrupted())
