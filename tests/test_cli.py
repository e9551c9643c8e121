"""The command line: help, the train → evaluate path, and one-line errors for user mistakes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ferkit.cli import build_parser, main

SUBCOMMANDS = ["train", "crossval", "evaluate", "summary", "models", "predict", "video", "webcam", "export",
               "demo", "crop"]


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: ferkit" in capsys.readouterr().out


def test_every_subcommand_is_registered():
    parser = build_parser()
    choices = next(a for a in parser._actions if a.dest == "command").choices
    assert set(SUBCOMMANDS) <= set(choices)


def test_train_then_evaluate(fer2013_small, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(fer2013_small), "--model", "seed_cnn", "--epochs", "1",
                 "--out", str(run), "--precision", "fp32", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "test: accuracy" in out and "PrivateTest" in out
    assert main(["evaluate", "--run", str(run), "--split", "val", "--out", str(tmp_path / "eval")]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["val"]["images"] == 7 * 30
    capsys.readouterr()
    assert main(["evaluate", "--run", str(run), "--split", "val", "--backend", "onnx", "--no-progress"]) == 0
    onnx_row = capsys.readouterr().out  # ONNX Runtime fp32: the same accuracy as PyTorch fp32
    assert f"val: accuracy {metrics['val']['accuracy']:.4f}" in onnx_row
    assert main(["train", "--data", str(fer2013_small), "--out", str(run)]) == 2  # refuses to overwrite a run
    assert "--resume" in capsys.readouterr().err


def test_models_lists_bundled_models_and_architectures(capsys):
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("bundled models")
    assert lines[1].split()[:2] == ["default", "fast_fer:"]
    assert lines[2].split()[:2] == ["wild", "resnet_fer:"]
    assert "  seed_cnn" in lines and "  fast_fer" in lines


def test_summary_prints_layers(capsys):
    assert main(["summary", "--model", "seed_cnn"]) == 0
    out = capsys.readouterr().out
    assert "Conv2d" in out and "Linear" in out


@pytest.mark.parametrize("argv, words", [
    (["train", "--data", "/no/such/dataset", "--epochs", "1"], "/no/such/dataset"),
    (["train", "--data", ".", "--model", "no_such_net"], "no_such_net"),
    (["train", "--epochs", "1"], "--data"),
    (["train", "--resume", "/no/such/run"], "/no/such/run"),
    (["evaluate", "--run", "/no/such/run"], "/no/such/run"),
    (["summary", "--model", "no_such_net"], "no_such_net"),
    (["webcam", "--camera", "7", "--no-window"], "7: cannot open this camera"),  # OpenCV's warning kept quiet
])
def test_user_mistakes_give_one_line_and_exit_2(argv, words):
    result = subprocess.run([sys.executable, "-m", "ferkit.cli", *argv], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ferkit: error:") and words in lines[0], result.stderr
    assert "Traceback" not in result.stderr
