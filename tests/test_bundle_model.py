"""scripts/bundle_model.py: a bundled model never keeps an int8 twin made from other weights."""

from __future__ import annotations

import shutil

from ferkit.models.int8 import int8_path, int8_problem
from script_loader import load_script

bundle_model = load_script("scripts/bundle_model.py")


def test_a_stale_twin_is_removed_when_the_run_has_none(model_file, tmp_path, capsys):
    target = tmp_path / "pretrained" / "default.safetensors"
    target.parent.mkdir()
    shutil.copy(model_file, target)
    int8_path(target).write_bytes(b"an int8 model of the weights bundled before")
    assert int8_problem(model_file) is not None  # the run has no twin of its own
    bundle_model._bundle_twin(model_file, target)
    assert not int8_path(target).exists()
    assert "removed" in capsys.readouterr().out


def test_nothing_is_written_when_neither_has_a_twin(model_file, tmp_path, capsys):
    target = tmp_path / "default.safetensors"
    shutil.copy(model_file, target)
    bundle_model._bundle_twin(model_file, target)
    assert not int8_path(target).exists()
    assert capsys.readouterr().out == ""
