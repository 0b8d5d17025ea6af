"""The built extension on every supported Blender line: 4.2 LTS, 4.5 LTS and 5.0.

Each Blender is a bpy wheel in its own venv (bpy 5.0.1 is the suite's own ``.venv``; the older
ones come from scripts/env_matrix.sh, which this test runs to create them when missing, so
``bash scripts/test.sh`` works from a clean clone). In each, tests/smoke_blender.py installs the
zip, fails every export of the hostile corpus cleanly, imports the bundled example (one object
per layer, every cell evaluated and showing its recorded activation), renders a tiny Cycles
frame, re-bundles, animates epochs, removes the network, shows the class evidence maps, the
answer and an operation close-up of the example with maps added (Grad-CAM, saliency), checks
the labels' pixel sizes in the startup scene and cycles disable/enable.
The three Blenders run at once, each in its own process.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from blender_utils import ROOT, build_zip
from hostile_corpus import build_corpus, outcome

pytestmark = pytest.mark.slow

SMOKE = ROOT / "tests" / "smoke_blender.py"
EXAMPLE = ROOT / "examples" / "digits" / "digits_cnn.nnvis.json"
# matrix entry -> the Blender version it must report
MATRIX = {"bpy50": "5.0", "bpy45": "4.5", "bpy42": "4.2"}
TIMEOUT = 600


def matrix_pythons() -> dict[str, str]:
    """Python of each matrix venv, creating the missing ones (idempotent, stamp-checked)."""
    result = subprocess.run(["bash", str(ROOT / "scripts" / "env_matrix.sh")],
                            capture_output=True, text=True, timeout=3600)
    assert result.returncode == 0, f"scripts/env_matrix.sh failed:\n{result.stderr[-4000:]}"
    pythons = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    pythons["bpy50"] = sys.executable  # the suite's own .venv (bpy 5.0.1)
    return pythons


def explained_example(folder) -> str:
    """The bundled example with class evidence maps (format 1.1) in a second sidecar: Grad-CAM
    of conv2 and input saliency, for the predicted class and the true label, per epoch."""
    shutil.copytree(EXAMPLE.parent, folder, dirs_exist_ok=True)
    path = folder / EXAMPLE.name
    document = json.loads(path.read_text(encoding="utf-8"))
    rng = np.random.default_rng(7)
    samples = len(document["samples"])
    maps = bytearray()
    for epoch in document["epochs"]:
        epoch["explanations"] = {}
        for kind, shape in (("gradcam_predicted", (8, 8)), ("gradcam_label", (8, 8)),
                            ("saliency_predicted", (16, 16)), ("saliency_label", (16, 16))):
            values = rng.random((samples, *shape)).astype("<f4")
            document["arrays"].append({"dtype": "float32", "shape": [samples, *shape],
                                       "buffer": 1, "byte_offset": len(maps)})
            epoch["explanations"][kind] = len(document["arrays"]) - 1
            maps += values.tobytes()
    (folder / "maps.bin").write_bytes(bytes(maps))
    document["buffers"].append({"uri": "maps.bin", "byte_length": len(maps)})
    document["version"] = "1.1"
    document["explain"] = {"gradcam_layer": "conv2", "score": "logit"}
    path.write_text(json.dumps(document), encoding="utf-8")
    return str(path)


def clean_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
           and not key.startswith("BLENDER_USER_")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    """Start the smoke script in every Blender at once; each test waits for its own."""
    zip_path = build_zip(tmp_path_factory.mktemp("dist"))
    # The hostile corpus, with what the reader says about each broken export.
    cases = [{"name": case.name, "path": str(case.path), "message": outcome(case)[1]}
             for case in build_corpus(tmp_path_factory.mktemp("hostile")) if case.kind == "error"]
    hostile = tmp_path_factory.mktemp("hostile-list") / "cases.json"
    hostile.write_text(json.dumps(cases))
    explained = explained_example(tmp_path_factory.mktemp("explained"))
    setup_started = time.perf_counter()
    pythons = matrix_pythons()
    setup_seconds = time.perf_counter() - setup_started
    runs = {}
    for name in MATRIX:
        out = tmp_path_factory.mktemp(f"smoke-{name}")
        log = open(out / "log.txt", "w")
        process = subprocess.Popen(
            [pythons[name], str(SMOKE), "--zip", str(zip_path), "--export", str(EXAMPLE),
             "--out", str(out), "--hostile", str(hostile), "--explained", explained],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=clean_env())
        runs[name] = {"process": process, "out": out, "log": log, "started": time.perf_counter(),
                      "setup_seconds": setup_seconds}
    yield runs
    for run in runs.values():
        if run["process"].poll() is None:
            run["process"].kill()
        run["log"].close()


def finish(run) -> tuple[int, str, float]:
    try:
        code = run["process"].wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        run["process"].kill()
        code = None
    run["log"].flush()
    log = (run["out"] / "log.txt").read_text(errors="replace")
    return code, log, time.perf_counter() - run["started"]


@pytest.mark.parametrize("name", list(MATRIX))
def test_extension_works_in_blender(smoke_runs, name):
    run = smoke_runs[name]
    code, log, seconds = finish(run)
    lines = [line for line in log.splitlines() if line.startswith("NNVIS-SMOKE ")]
    assert lines, (f"{name}: no summary (exit code {code}, {seconds:.0f} s); "
                   f"log tail:\n{log[-4000:]}")
    summary = json.loads(lines[-1][len("NNVIS-SMOKE "):])
    failed = {check: result.get("error", "") + "\n" + result.get("traceback", "")
              for check, result in summary["checks"].items() if not result["ok"]}
    assert not failed, f"Blender {summary['blender']}: " + "\n\n".join(
        f"[{check}] {message}" for check, message in failed.items())
    assert summary["ok"] and code == 0, (code, summary)
    assert summary["blender"].startswith(MATRIX[name]), summary["blender"]
    expected = {"install", "broken_import", "hostile", "import", "activations", "render",
                "render_preset", "features", "remove_network", "explain", "ownership", "labels",
                "reregister"}
    assert set(summary["checks"]) == expected
    assert summary["checks"]["labels"]["min_cap_px"] >= 12.0
    layers = json.loads(EXAMPLE.read_text(encoding="utf-8"))["layers"]
    assert summary["checks"]["import"]["layers"] == len(layers)
    assert summary["checks"]["import"]["cells"] == sum(math.prod(layer["output_shape"])
                                                       for layer in layers)
    print(f"Blender {summary['blender']}: smoke {summary['seconds']:.1f} s in-process, "
          f"{seconds:.1f} s wall (matrix venv check {run['setup_seconds']:.1f} s)")
