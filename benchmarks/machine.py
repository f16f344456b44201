"""One line that says what machine a benchmark ran on, for its results file.

Figures depend on the CPU as well as on the number of cores: 8-bit inference, for one, is
several times faster where the CPU has VNNI instructions (docs/builtin-model.md).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path


def describe() -> str:
    """E.g. 'x86_64, AMD EPYC, 2 cores, AVX2, no VNNI'."""
    parts = [platform.machine()]
    flags: set[str] = set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and len(parts) == 1:
                parts.append(value.strip())
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    elif platform.processor():
        parts.append(platform.processor())
    parts.append(f"{os.cpu_count()} cores")
    if flags:
        simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
        vnni = "VNNI" if {"avx512_vnni", "avx_vnni"} & flags else "no VNNI"
        parts += [simd, vnni]
    return ", ".join(parts)


if __name__ == "__main__":
    print(describe())
