"""ferkit evaluate --against: two models on the same faces, Wilson intervals and McNemar's exact test."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ferkit.cli import main
from ferkit.compare import compare, format_comparison, mcnemar_exact, wilson_interval
from ferkit.errors import ConfigError
from ferkit.evaluate_photos import PhotoEvaluation

NAMES = ["angry", "happy"]


def evaluation(y_true, y_pred, dataset="d") -> PhotoEvaluation:
    y_true, y_pred = np.array(y_true), np.array(y_pred)
    probs = np.eye(2, dtype=np.float32)[np.maximum(y_pred, 0)]
    return PhotoEvaluation("all", NAMES, y_true, y_pred, probs, dataset=dataset, mode="detect",
                           found=y_pred >= 0, sources=[str(i) for i in range(len(y_true))])


def test_wilson_interval_matches_the_textbook_values():
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_mcnemar_exact_is_a_two_sided_binomial_test_on_the_discordant_faces():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(10, 0) == pytest.approx(2 * 0.5 ** 10)
    assert mcnemar_exact(5, 5) == pytest.approx(1.0)
    assert mcnemar_exact(3, 9) == pytest.approx(mcnemar_exact(9, 3))


def test_compare_counts_the_faces_only_one_model_gets_right_and_a_miss_is_wrong():
    truth = [0, 0, 1, 1, 0, 1]
    a = evaluation(truth, [0, 0, 1, -1, 1, 1])  # right on 0, 1, 2, 5; missed face 3
    b = evaluation(truth, [0, 1, 1, 1, 1, 0])  # right on 0, 2, 3
    r = compare(a, b)
    assert (r.only_a, r.only_b, r.faces) == (2, 1, 6)
    assert r.difference == pytest.approx(4 / 6 - 3 / 6) and r.p_value == pytest.approx(1.0)
    row = format_comparison([r], "mine", "default").splitlines()[2]
    assert row.startswith("| d | all | detect | 6 | 66.7 % (") and row.endswith("| +16.7 | 2 | 1 | 1 |")


def test_compare_refuses_evaluations_of_different_faces():
    with pytest.raises(ConfigError, match="same faces"):
        compare(evaluation([0, 1], [0, 1]), evaluation([0, 1, 1], [0, 1, 1]))


def test_cli_against_prints_and_writes_the_paired_table(fer2013_small, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["evaluate", "--model", "default", "--against", "default", "--data", str(fer2013_small),
            "--no-progress", "--out", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "McNemar" in text and "| +0.0 | 0 | 0 | 1 |" in text  # a model against itself
    saved = json.loads((out / "comparison.json").read_text())
    assert saved["a"] == saved["b"] == "default" and saved["datasets"][0]["faces"] == 7 * 30
    assert (out / "comparison.md").read_text().count("\n") == 3


def test_cli_against_without_data_is_one_error_line(capsys):
    assert main(["evaluate", "--model", "default", "--against", "default"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ferkit: error:") and "--against" in err[0]


def test_cli_against_a_model_with_other_classes_fails_before_any_work(fer2013_small, tmp_path, capsys):
    from ferkit.models import create_model
    from ferkit.models.files import ModelInfo, save_model

    five = save_model(tmp_path / "five.safetensors", create_model("fast_fer", num_classes=5).eval(),
                      ModelInfo("fast_fer", ["angry", "disgust", "fear", "happy", "sad"]))
    out = tmp_path / "out"
    argv = ["evaluate", "--model", "default", "--against", str(five), "--data", str(fer2013_small),
            "--no-progress", "--out", str(out)]
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ferkit: error: --against: its classes")
    assert "accuracy" not in captured.out and not out.exists()


def test_discordant_counts_each_side():
    from ferkit.compare import discordant

    assert discordant([True, True, False, False], [True, False, True, True]) == (1, 2)
