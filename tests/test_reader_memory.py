"""The reader keeps an import's memory small: pages of a memory-mapped sidecar that were read
are forgotten again by the process (export_format.forget_pages), and still read correctly."""

from __future__ import annotations

import numpy as np

from nnvis_addon.core.export_format import forget_pages


def resident_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def test_forgotten_pages_leave_the_process_and_read_back(tmp_path):
    path = tmp_path / "sidecar.bin"
    values = np.arange(24 * 1024 * 1024, dtype=np.float32)  # 96 MB
    values.tofile(path)
    mapped = np.memmap(path, dtype=np.uint8, mode="r")
    array = mapped[4096:].view(np.float32)[: values.size - 1024]  # a view, as the reader makes
    before = resident_mb()
    total = float(array.sum(dtype=np.float64))
    touched = resident_mb()
    assert touched - before > 60
    forget_pages(array)
    assert touched - resident_mb() > 60
    assert float(array.sum(dtype=np.float64)) == total  # read again from the file
    forget_pages(np.zeros(3))  # not a mapping: nothing happens
