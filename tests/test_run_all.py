"""benchmarks/run_all.py: every job has its block in BENCHMARKS.md, and a block is replaced in place."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from script_loader import load_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_all():
    return load_script("benchmarks/run_all.py")


def test_every_job_has_a_block_in_benchmarks_md(run_all):
    text = (ROOT / "BENCHMARKS.md").read_text()
    for name in ["machine"] + [job.name for job in run_all.JOBS]:
        assert f"<!-- run_all:{name} -->" in text and f"<!-- /run_all:{name} -->" in text, name


def test_replace_block_keeps_the_text_around_it(run_all):
    text = "before\n<!-- run_all:x -->\nold\n<!-- /run_all:x -->\nafter\n"
    replaced = run_all.replace_block(text, "x", "new\n")
    assert replaced == "before\n<!-- run_all:x -->\nnew\n<!-- /run_all:x -->\nafter\n"
    with pytest.raises(SystemExit, match="no <!-- run_all:y --> block"):
        run_all.replace_block(text, "y", "new\n")


def test_list_names_every_job_and_unknown_jobs_are_one_error_line():
    listed = subprocess.run([sys.executable, "benchmarks/run_all.py", "--list"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    assert "recognizer_speed" in listed and "video_speed.py --minutes 10" in listed
    bad = subprocess.run([sys.executable, "benchmarks/run_all.py", "--only", "nope"], cwd=ROOT,
                         capture_output=True, text=True)
    assert bad.returncode != 0 and bad.stderr.strip().startswith("run_all: error: unknown job(s) nope")
