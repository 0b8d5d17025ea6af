#!/usr/bin/env python3
"""Export benchmark on VGG16 (224x224x3, random weights, one random sample). Prints figures only.

1. plain ``model.predict`` of the sample (one warm-up call, then the median of --repeat calls),
   and plain ``model.predict_on_batch`` (what the exporter calls for up to batch-size samples);
2. exporting every layer's activations for the sample: the exporter's one multi-output activation
   model's predict + writing each layer's array through ExportWriter (float16 by default) until
   the sidecar file is closed (same warm-up and median); the ratio to (1), goal <= 2x;
3. a full ``export_model`` (activations + all 138M weights as float32 + structure document +
   read-back validation), once;
4. ``read_export`` of that export (structure + memory-mapped arrays; goal < 2 s), with and
   without the NaN/Inf scan over every array.
5. PyTorch: the ResNet-18-shaped module of tests/torch_models.py (224x224x3, random weights,
   one random sample): one plain forward pass (eval, no gradients) against the exporter's
   activation pass over the traced graph (every layer's output copied channels-last in the
   activation dtype) + writing each array through ExportWriter; medians and CPU times,
   interleaved, the ratio (goal <= 2x).

    .venv/bin/python scripts/bench_export.py [--repeat 7] [--dtype float16] [--keep DIR]
                                             [--only keras|torch]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def timed(function, repeat: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--dtype", choices=("float16", "float32"), default="float16")
    parser.add_argument("--keep", type=Path, help="write the exports here and keep them")
    parser.add_argument("--only", choices=("keras", "torch"), help="run one framework's part")
    args = parser.parse_args(argv)
    if args.only != "keras":
        bench_torch(args)
    if args.only == "torch":
        return 0

    import keras
    import numpy as np
    import tensorflow as tf

    from nnvis_addon.core.export_format import ExportWriter, read_export
    from nnvis_export import export_model
    from nnvis_export.activations import ActivationProbe
    from nnvis_export.graph import model_graph

    work = args.keep or Path(tempfile.mkdtemp(prefix="nnvis-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"TensorFlow {tf.__version__}, Keras {keras.__version__}, "
          f"GPUs: {len(tf.config.list_physical_devices('GPU'))}")

    keras.utils.set_random_seed(0)
    start = time.perf_counter()
    model = keras.applications.VGG16(weights=None, input_shape=(224, 224, 3))
    print(f"VGG16: {len(model.layers)} layers, {model.count_params():,} parameters "
          f"(built in {time.perf_counter() - start:.1f} s)")
    sample = np.random.default_rng(0).random((1, 224, 224, 3), dtype=np.float32) * 255.0

    def plain():
        model.predict(sample, verbose=0)

    def plain_on_batch():
        model.predict_on_batch(sample)

    start = time.perf_counter()
    graph = model_graph(model)
    probe = ActivationProbe(model, graph, args.dtype)
    t_setup = time.perf_counter() - start
    folder = work / "activations_only"
    sizes = []

    def activations():
        outputs, _scores = probe.run(sample, batch_size=1)
        writer = ExportWriter(folder, "vgg16_activations")
        total = 0
        for array in outputs.values():
            writer.add_array(array, dtype=args.dtype)
            total += array.size
        writer.abort()  # closes the sidecar (everything flushed), then removes it
        sizes.append(total)

    # One warm-up each (traces the predict functions), then the three interleaved, so that load
    # from other processes shifts all of them alike.
    runs = {"predict": plain, "predict_on_batch": plain_on_batch, "activations": activations}
    times: dict[str, list[float]] = {key: [] for key in runs}
    for function in runs.values():
        function()
    for _ in range(args.repeat):
        for key, function in runs.items():
            times[key].append(timed(function, 1)[0])
    t_plain, t_batch, t_act = (statistics.median(times[k]) for k in runs)

    def listed(key):
        return ", ".join(f"{t * 1e3:.0f}" for t in times[key])

    itemsize = np.dtype(args.dtype).itemsize
    print(f"plain model.predict, 1 sample:           median {t_plain * 1e3:7.1f} ms  "
          f"({listed('predict')})")
    print(f"plain model.predict_on_batch, 1 sample:  median {t_batch * 1e3:7.1f} ms  "
          f"({listed('predict_on_batch')})")
    print(f"activation export, {len(probe.computed)} layers, 1 sample: median {t_act * 1e3:7.1f} ms  "
          f"({listed('activations')}); {sizes[-1]:,} values, "
          f"{sizes[-1] * itemsize / 1e6:.1f} MB {args.dtype}; activation model built in "
          f"{t_setup * 1e3:.0f} ms")
    print(f"ratio activation export / plain predict: {t_act / t_plain:.2f}x  (goal <= 2x); "
          f"/ plain predict_on_batch: {t_act / t_batch:.2f}x")

    start = time.perf_counter()
    path = export_model(model, sample, work / "full", name="vgg16", activation_dtype=args.dtype,
                        verbose=False)
    t_full = time.perf_counter() - start
    size = sum(p.stat().st_size for p in path.parent.iterdir())
    print(f"full export_model (weights + activations + validation): {t_full:.2f} s, "
          f"{size / 1e6:.0f} MB on disk")

    start = time.perf_counter()
    export = read_export(path)
    t_read = time.perf_counter() - start
    start = time.perf_counter()
    read_export(path, check_finite=False)
    t_read_nocheck = time.perf_counter() - start
    print(f"read_export (structure + mapped arrays, NaN/Inf scan of all {size / 1e6:.0f} MB): "
          f"{t_read:.2f} s  (goal < 2 s); without the scan: {t_read_nocheck:.3f} s; "
          f"{len(export.layers)} layers, {len(export.epochs)} epoch")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def bench_torch(args) -> None:
    """The PyTorch row: plain forward vs the exporter's activation pass + writing."""
    import numpy as np
    import torch

    sys.path.insert(0, str(ROOT / "tests"))
    import torch_models

    from nnvis_addon.core.export_format import ExportWriter
    from nnvis_export.torch_graph import TorchGraph

    module = torch_models.ResNet18(width=64, classes=1000)
    sample = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
    start = time.perf_counter()
    graph = TorchGraph(module, torch.from_numpy(np.repeat(sample, 2, axis=0)))
    t_trace = time.perf_counter() - start
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads; ResNet-18-shaped module: "
          f"{len(graph.layers)} layers, {sum(p.numel() for p in module.parameters()):,} "
          f"parameters (traced and analysed in {t_trace * 1e3:.0f} ms, {graph.traced_by})")
    work = Path(tempfile.mkdtemp(prefix="nnvis-bench-torch-"))
    sizes = []

    def plain():
        with torch.no_grad():
            module(torch.from_numpy(sample))

    def activations():
        outputs, _ = graph.run(sample, 1, args.dtype)
        writer = ExportWriter(work, "resnet18_activations")
        for array in outputs.values():
            writer.add_array(array, dtype=args.dtype)
        writer.abort()
        sizes.append(sum(a.size for a in outputs.values()))

    runs = {"forward": plain, "activations": activations}
    wall: dict[str, list[float]] = {key: [] for key in runs}
    cpu: dict[str, list[float]] = {key: [] for key in runs}
    for function in runs.values():
        function()
    for _ in range(args.repeat):
        for key, function in runs.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            function()
            wall[key].append(time.perf_counter() - start)
            cpu[key].append(time.process_time() - start_cpu)
    t_plain, t_act = (statistics.median(wall[k]) for k in runs)
    c_plain, c_act = (statistics.median(cpu[k]) for k in runs)
    print(f"plain forward, 1 sample:                 median {t_plain * 1e3:7.1f} ms, CPU "
          f"{c_plain * 1e3:.0f} ms  ({', '.join(f'{t * 1e3:.0f}' for t in wall['forward'])})")
    print(f"activation export, {len(graph.layers) - 1} layers, 1 sample: median {t_act * 1e3:7.1f} ms, "
          f"CPU {c_act * 1e3:.0f} ms  ({', '.join(f'{t * 1e3:.0f}' for t in wall['activations'])}); "
          f"{sizes[-1]:,} values, {sizes[-1] * np.dtype(args.dtype).itemsize / 1e6:.1f} MB "
          f"{args.dtype}")
    print(f"ratio activation export / plain forward: {t_act / t_plain:.2f}x  (goal <= 2x); "
          f"CPU time {c_act / c_plain:.2f}x")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
