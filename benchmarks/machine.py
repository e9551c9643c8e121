"""The CPU a benchmark ran on: its model and the instruction sets that change ferkit's figures.

int8 speed (and, before 7-bit twin weights, int8 labels) depends on VNNI; bf16 training speed on AVX-512
BF16 or AMX. Two "AMD EPYC" machines can differ in both, so every figure names them.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

FEATURES = (("avx512_vnni", "AVX-512 VNNI"), ("avx_vnni", "AVX-VNNI"), ("avx512_bf16", "AVX-512 BF16"),
            ("amx_tile", "AMX"))


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return set(line.split(":", 1)[-1].split())


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def cpu_line() -> str:
    """e.g. "AMD EPYC, 2 cores, AVX2, no VNNI, no AVX-512 BF16"."""
    flags = cpu_flags()
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else platform.machine()
    found = [name for flag, name in FEATURES if flag in flags]
    vnni = [] if any("VNNI" in name for name in found) else ["no VNNI"]
    bf16 = [] if "AVX-512 BF16" in found or "AMX" in found else ["no AVX-512 BF16"]
    return ", ".join([cpu_model(), f"{os.cpu_count()} cores", isa, *found, *vnni, *bf16])


if __name__ == "__main__":
    print(cpu_line())
