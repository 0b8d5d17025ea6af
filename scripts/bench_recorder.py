#!/usr/bin/env python3
"""Recording while training with ``TorchEpochRecorder``: the cost of a ``record`` as the
recording grows. Prints figures only (not a test).

A ResNet-18-shaped module (tests/torch_models.py, random weights, 2 samples of 32x32x3; about
47 MB an epoch, mostly float32 weights) is recorded ``--records`` times, a small change to its
weights between records; CPU and wall seconds of each ``record``, medians of the first and the
last three, and the export's size. The baseline of the same run: ``export_torch`` of the same
module (one epoch, one session: tracing, one pass, writing, reading back).

    .venv/bin/python scripts/bench_recorder.py [--records 12]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def timed(action) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return time.perf_counter() - wall, time.process_time() - cpu


def folder_mb(folder: str) -> float:
    return sum(entry.stat().st_size for entry in os.scandir(folder)) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=12)
    args = parser.parse_args()
    import torch
    import torch_models

    from nnvis_export import TorchEpochRecorder, export_torch

    module = torch_models.ResNet18()
    samples = torch_models.images(2, (3, 32, 32))
    print("machine: {} CPUs; load average {:.1f} {:.1f} {:.1f}".format(os.cpu_count(),
                                                                      *os.getloadavg()))
    with tempfile.TemporaryDirectory() as folder:
        wall, cpu = timed(lambda: export_torch(module, samples, folder, verbose=False))
        print(f"baseline, export_torch (one epoch): {wall:.2f} s wall, {cpu:.2f} s CPU; "
              f"{folder_mb(folder):.0f} MB")
    with tempfile.TemporaryDirectory() as folder:
        recorder = TorchEpochRecorder(module, samples, folder, verbose=False)
        times = []
        for epoch in range(args.records):
            with torch.no_grad():
                module.fc.bias += 0.1
            times.append(timed(lambda epoch=epoch: recorder.record(epoch)))
        size = folder_mb(folder)
    first, last = times[:3], times[-3:]
    print(f"TorchEpochRecorder, {args.records} records: first 3 median "
          f"{statistics.median(t[0] for t in first):.2f} s wall / "
          f"{statistics.median(t[1] for t in first):.2f} s CPU, last 3 median "
          f"{statistics.median(t[0] for t in last):.2f} s wall / "
          f"{statistics.median(t[1] for t in last):.2f} s CPU; all records "
          f"{sum(t[0] for t in times):.1f} s wall / {sum(t[1] for t in times):.1f} s CPU; "
          f"export {size:.0f} MB ({size / args.records:.1f} MB an epoch)")


if __name__ == "__main__":
    main()
