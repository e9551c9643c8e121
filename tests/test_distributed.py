"""Distributed training: two processes (DDP over gloo, on the CPU, started the way torchrun starts them)
train like one process on the same global batch, rank 0 alone writes, and a run is not resumed on
another number of processes.

Equality needs a model without BatchNorm (no SyncBatchNorm on the CPU: each process would normalise with
its own half of the batch) and without dropout (each process draws its own masks); augmentation stays on,
erasing included, since every process draws it for the whole global batch.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from ferkit.augment import AugmentConfig
from ferkit.cli import main
from ferkit.config import TrainConfig
from ferkit.errors import ConfigError
from ferkit.experiment import load_splits, train_run
from ferkit.models.registry import list_models, register_model
from ferkit.train import fit
from ferkit.training.distributed import check_batches

CLASSES = ("angry", "happy", "sad")
SIZE = 16
TRAIN_PER_CLASS = (68, 68, 67)  # 203 images: global batches of 2 × 16 leave 11 for the last step, 6 + 5


def tiny_test_net(num_classes: int = 7, in_size: int = 48, in_channels: int = 1) -> nn.Module:
    """No BatchNorm, no dropout (see the module's description)."""
    return nn.Sequential(nn.Conv2d(in_channels, 8, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, num_classes))


if "tiny_test_net" not in list_models():  # the spawned processes import this module too
    register_model(tiny_test_net)


def _write_faces(root: Path, split: str, counts: tuple[int, ...], rng: np.random.Generator) -> None:
    """Class c: a gradient turned by c × 60° under noise, so the classes can be learnt."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    for c, (name, count) in enumerate(zip(CLASSES, counts, strict=True)):
        folder = root / split / name
        folder.mkdir(parents=True)
        angle = np.deg2rad(60 * c)
        base = 255 * (np.cos(angle) * xx + np.sin(angle) * yy + 1) / 3
        for i in range(count):
            image = np.clip(base + rng.normal(0, 40, base.shape), 0, 255).astype(np.uint8)
            cv2.imwrite(str(folder / f"{i}.png"), image)


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faces")
    rng = np.random.default_rng(0)
    _write_faces(root, "train", TRAIN_PER_CLASS, rng)
    _write_faces(root, "validation", (21, 21, 21), rng)
    _write_faces(root, "test", (10, 10, 10), rng)
    return root


def _config(data: Path, **options) -> TrainConfig:
    return TrainConfig(**{"data": str(data), "model": "tiny_test_net", "image_size": SIZE, "batch_size": 16,
                          "epochs": 2, "scheduler": "none", "lr": 3e-3, "precision": "fp32", "threads": 1,
                          "device": "cpu", "seed": 5, "augment": AugmentConfig(erasing=0.5), **options})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, job: str, cfg: TrainConfig, run_dirs: list[Path],
            out: Path) -> None:
    """One of `world` processes, with the environment torchrun gives it."""
    os.environ.update(WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank),
                      LOCAL_WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    if job == "train":  # the whole run: train, then rank 0 evaluates and reports
        summary = train_run(cfg, run_dirs[rank], progress=False, log=lambda _: None)
    else:  # fit alone, to spare the time of a second report
        summary = fit(cfg, load_splits(cfg), run_dirs[rank], resume=True, progress=False, log=lambda _: None)
    (out / f"{job}-rank{rank}.json").write_text(json.dumps(summary))


def _spawn(job: str, cfg: TrainConfig, run_dirs: list[Path], out: Path) -> list[dict]:
    mp.spawn(_worker, args=(2, _free_port(), job, cfg, run_dirs, out), nprocs=2, join=True)
    return [json.loads((out / f"{job}-rank{rank}.json").read_text()) for rank in range(2)]


@pytest.fixture(scope="module")
def runs(faces, tmp_path_factory) -> dict:
    """One process with batch 32 for 2 epochs; two processes with batch 16 for 1 epoch, resumed to 2."""
    tmp = tmp_path_factory.mktemp("runs")
    one = _config(faces, batch_size=32)
    fit(one, load_splits(one), tmp / "one", progress=False, log=lambda _: None)
    two = _config(faces, epochs=1)
    trained = _spawn("train", two, [tmp / "two", tmp / "rank1"], tmp)  # rank 1 told to write elsewhere
    after_one_epoch = {p.name for p in (tmp / "two").iterdir()}
    resumed = _spawn("resume", replace(two, epochs=2), [tmp / "two", tmp / "two"], tmp)
    return {"dir": tmp, "trained": trained, "resumed": resumed, "after_one_epoch": after_one_epoch}


def _history(run: Path) -> list[dict]:
    return json.loads((run / "history.json").read_text())


def test_two_processes_train_like_one_with_the_same_global_batch(runs):
    one, two = runs["dir"] / "one", runs["dir"] / "two"
    assert [h["epoch"] for h in _history(two)] == [1, 2]
    for a, b in zip(_history(one), _history(two), strict=True):
        for key in ("train_loss", "val_loss"):
            assert b[key] == pytest.approx(a[key], rel=1e-5), (key, a, b)
        for key, n in (("train_acc", sum(TRAIN_PER_CLASS)), ("val_acc", 63)):
            assert abs(b[key] - a[key]) <= 1 / n + 1e-12, (key, a, b)
    assert _history(two)[-1]["train_loss"] < _history(two)[0]["train_loss"]  # it learnt something
    weights = [torch.load(run / "checkpoint.pt", weights_only=True) for run in (one, two)]
    assert weights[1]["world_size"] == 2 and weights[0]["world_size"] == 1
    for name, expected in weights[0]["model"].items():
        torch.testing.assert_close(weights[1]["model"][name], expected, rtol=1e-4, atol=1e-5)
    loss_gap = max(abs(b[k] / a[k] - 1) for a, b in zip(_history(one), _history(two), strict=True)
                   for k in ("train_loss", "val_loss"))
    weight_gap = max((weights[1]["model"][k] - w).abs().max().item() for k, w in weights[0]["model"].items())
    print(f"largest relative loss difference {loss_gap:.1e}, largest weight difference {weight_gap:.1e}")


def test_every_rank_gets_the_same_reduced_numbers(runs):
    for job in ("trained", "resumed"):
        rank0, rank1 = runs[job]
        for key in ("epochs", "best_epoch", "best_val_acc"):
            assert rank0[key] == rank1[key], (job, key)
    assert "test_acc" in runs["trained"][0] and "test_acc" not in runs["trained"][1]  # rank 0 reports


def test_only_rank_0_writes(runs):
    assert not (runs["dir"] / "rank1").exists()
    assert {"config.json", "splits.json", "history.json", "checkpoint.pt", "best.safetensors", "best.json",
            "metrics.json", "report.txt", "plots"} <= runs["after_one_epoch"]


def test_resuming_on_another_number_of_processes_is_refused(runs, capsys):
    run = runs["dir"] / "copy"
    shutil.copytree(runs["dir"] / "two", run)
    assert main(["train", "--resume", str(run), "--epochs", "3", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("ferkit: error: the run was trained on 2 process(es) × --batch-size 16 (a global batch "
                   "of 32) and cannot continue on 1; resume it with torchrun on 2 processes "
                   "(--nnodes × --nproc_per_node = 2)"), err
    assert _history(run) == _history(runs["dir"] / "two")  # nothing trained, nothing written


def test_a_last_step_without_images_for_a_process_is_refused():
    check_batches(203, 16, 2)  # 11 left: 6 + 5
    check_batches(64, 16, 2)
    with pytest.raises(ConfigError, match="leave 1 image"):
        check_batches(33, 16, 2)
    with pytest.raises(ConfigError, match="fewer than the processes"):
        check_batches(2, 16, 3)


@pytest.mark.slow
def test_torchrun_command_line(faces, tmp_path):
    """The command of the README, on two CPU processes."""
    torchrun = Path(sys.executable).with_name("torchrun")
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", str(_free_port()),
                           "-m", "ferkit", "train", "--data", str(faces), "--model", "seed_cnn",
                           "--image-size", str(SIZE), "--epochs", "1", "--batch-size", "16", "--threads", "1",
                           "--no-progress", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "× 2 processes (global batch 32)" in done.stdout
    assert done.stdout.count("epoch   1/1") == 1  # rank 0 alone logs
    assert (out / "metrics.json").is_file()


def test_each_rank_gets_its_rows_of_both_views_of_the_global_batch():
    """--distill-view clean under torchrun: the augmented batch and the teacher's clean view are drawn for
    the whole global batch, so the ranks' rows together are one process's two views."""
    from ferkit.augment import Augmenter
    from ferkit.training.distributed import World, _GlobalBatchAugment

    whole = torch.rand(10, 1, SIZE, SIZE)
    augmenter = Augmenter(AugmentConfig(rotation=10, erasing=0.5, blur=0.5, noise=0.5))
    alone = augmenter.views(whole, torch.Generator().manual_seed(2))
    for rank in range(2):
        share = _GlobalBatchAugment(augmenter, World(rank=rank, local_rank=rank, size=2, local_size=2))
        share.whole = whole
        views = share.views(whole[rank::2], torch.Generator().manual_seed(2))
        for view, reference in zip(views, alone, strict=True):
            assert torch.equal(view, reference[rank::2])
