"""`reuse_freed_memory`: inside it a freed block above glibc's mmap threshold is reused without new page
faults; after it such blocks are mapped afresh again, and nested uses leave the setting on until the last."""

from __future__ import annotations

import resource

import pytest
import torch

from ferkit.training import heap
from ferkit.training.heap import reuse_freed_memory

pytestmark = pytest.mark.skipif(heap._LIBC is None, reason="glibc only")

BLOCK = (40 << 20) // 4  # floats in 40 MiB, above glibc's largest mmap threshold (32 MiB)
PAGES = BLOCK * 4 // resource.getpagesize()


def faults_per_block(blocks: int) -> list[int]:
    """Minor page faults of each 40 MiB block allocated, written and freed."""
    faults = []
    for _ in range(blocks):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        torch.empty(BLOCK).fill_(1.0)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return faults


def test_freed_blocks_are_reused_inside_and_mapped_afresh_after() -> None:
    with reuse_freed_memory():
        inside = faults_per_block(16)
    after = faults_per_block(2)
    # the heap grows for the first few (small allocations between them can take the freed block's start),
    # then blocks reuse its pages; without the setting every block faults all its pages in
    assert sum(f < PAGES / 20 for f in inside) >= 4
    assert min(after) > PAGES / 2


def test_nested_uses_keep_it_until_the_last_one_leaves() -> None:
    with reuse_freed_memory():
        with reuse_freed_memory():
            pass
        assert heap.active()
        inside = faults_per_block(16)
    assert not heap.active()
    assert sum(f < PAGES / 20 for f in inside) >= 4
    assert min(faults_per_block(2)) > PAGES / 2
