"""Measuring helpers the benchmark scripts share (one copy: they used to carry their own)."""

from __future__ import annotations

import os
from pathlib import Path


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux /proc): robust to other load on the machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile q (0-100) of the values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]
