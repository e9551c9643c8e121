"""`reuse_freed_memory`: inside it a freed block above glibc's mmap threshold is reused without new page
faults; after it such blocks are mapped afresh again, and nested uses leave the setting on until the last.
The page faults are counted in a fresh process: glibc's settings are process-wide, and what earlier tests
left them at changes how the heap grows."""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import pytest

from ferkit.training import heap
from ferkit.training.heap import reuse_freed_memory

pytestmark = pytest.mark.skipif(heap._LIBC is None, reason="glibc only")

PAGES = (40 << 20) // resource.getpagesize()  # in a 40 MiB block, above glibc's largest mmap threshold

_FAULTS = """
import json, resource, torch
from ferkit.training.heap import reuse_freed_memory

def faults_per_block(blocks):
    faults = []
    for _ in range(blocks):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        torch.empty((40 << 20) // 4).fill_(1.0)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return faults

with reuse_freed_memory():
    inside = faults_per_block(16)
print(json.dumps({"inside": inside, "after": faults_per_block(2)}))
"""


def test_freed_blocks_are_reused_inside_and_mapped_afresh_after() -> None:
    out = subprocess.run([sys.executable, "-c", _FAULTS], capture_output=True, text=True, check=True).stdout
    faults = json.loads(out.strip().splitlines()[-1])
    # the heap grows for the first few blocks, then they reuse its pages; without the setting every block
    # faults all its pages in, as the blocks after it do
    assert sum(f < PAGES / 20 for f in faults["inside"][4:]) >= 8, faults
    assert min(faults["after"]) > PAGES / 2, faults


def test_nested_uses_keep_it_until_the_last_one_leaves() -> None:
    with reuse_freed_memory():
        with reuse_freed_memory():
            assert heap.active()
        assert heap.active()
    assert not heap.active()
