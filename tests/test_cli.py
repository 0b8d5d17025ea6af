"""The command-line tools without TensorFlow: nnvis-export's checks of its arguments and files,
metrics logs, help texts of every script, and the demo's progress line.

The exporter's behaviour with real models (TensorFlow) is tested in tests/test_exporter.py.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import demo
import numpy as np
import pytest
import render_video
from console_progress import ConsoleProgress

from nnvis_export import ExportError, read_metrics_log
from nnvis_export.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]

# Each case runs nnvis-export's main() in one fresh interpreter, which then reports the exit
# status, the last line on stderr, and whether TensorFlow or Keras got imported.
_RUN_CASES = textwrap.dedent("""
    import contextlib, io, json, sys
    from nnvis_export.cli import main

    results = []
    for argv in json.loads(sys.argv[1]):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exit:
                code = exit.code
        lines = err.getvalue().strip().splitlines()
        results.append({"code": code, "error": lines[-1] if lines else "",
                        "imported": sorted({"tensorflow", "keras"} & set(sys.modules))})
    print(json.dumps(results))
""")


def _run_in_fresh_interpreter(cases: list[list[str]]) -> list[dict]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", _RUN_CASES, json.dumps(cases)], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_argument_and_file_errors_come_before_tensorflow(tmp_path):
    """Item 11: every wrong argument or file is refused before TensorFlow is imported."""
    model = tmp_path / "model.keras"
    model.write_bytes(b"")  # never loaded: every case fails on something checked earlier
    samples = tmp_path / "samples.npy"
    np.save(samples, np.zeros((2, 4, 4, 1), np.float32))
    pickled = tmp_path / "objects.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "notes.txt").write_text("not a model")
    empty = tmp_path / "empty"
    empty.mkdir()
    log = tmp_path / "log.csv"
    log.write_text("loss,accuracy\n0.5,0.9\n")
    out_file = tmp_path / "out.txt"
    out_file.write_text("")
    good = [str(model), "--samples", str(samples), "--out", str(tmp_path / "out")]
    cases = {
        "model does not exist": ([str(tmp_path / "missing.keras")] + good[1:],
                                 "does not exist"),
        "not a model file": ([str(tmp_path / "notes.txt")] + good[1:], "expected a .keras"),
        "samples do not exist": (good[:2] + [str(tmp_path / "nope.npy")] + good[3:],
                                 "do not exist"),
        "pickled samples": (good[:2] + [str(pickled)] + good[3:], "pickled"),
        "labels do not exist": (good + ["--labels", str(tmp_path / "labels.npy")],
                                "do not exist"),
        "bad indices": (good + ["--indices", "1,x"], "--indices must be"),
        "no checkpoint folder": (good + ["--checkpoints", str(tmp_path / "nope")],
                                 "not a folder"),
        "no checkpoints": (good + ["--checkpoints", str(empty)], "no checkpoints"),
        "log without epochs": (good + ["--metrics", str(log)], "no 'epoch' column"),
        "rescale for an array": (good + ["--rescale", "1/255"], "--rescale scales image"),
        "out is a file": (good[:-1] + [str(out_file)], "is a file"),
        "epoch with checkpoints": (good + ["--checkpoints", str(empty), "--epoch", "3"],
                                   "--epoch numbers a single-model export"),
        "zero rescale": (good + ["--rescale", "0"], "must be a positive number"),
        "bad fraction": (good + ["--rescale", "1/x"], "a fraction such as 1/255"),
        "zero batch size": (good + ["--batch-size", "0"], "must be at least 1"),
        "negative epoch": (good + ["--epoch", "-1"], "must be at least 0"),
    }
    results = _run_in_fresh_interpreter([argv for argv, _ in cases.values()])
    for (case, (_, expected)), result in zip(cases.items(), results):
        assert result["code"] == 2, case
        assert result["error"].startswith("nnvis-export: error:"), (case, result["error"])
        assert expected in result["error"], (case, result["error"])
        assert result["imported"] == [], case


def test_every_option_has_a_help_text():
    """Item 12: nnvis-export, demo.sh (demo.py) and render_video.py explain every option."""
    for parser in (build_parser(), demo.build_parser(), render_video.build_parser()):
        options = [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]
        assert options
        for action in options:
            name = action.option_strings[0] if action.option_strings else action.dest
            assert action.help and action.help != argparse.SUPPRESS, f"{parser.prog} {name}"
            assert name in parser.format_help()


def test_demo_help_runs_without_blender():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py"), "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--layout" in result.stdout and "Cycles samples per pixel" in result.stdout


# -- metrics logs ----------------------------------------------------------------------------


def test_csv_logger_file(tmp_path):
    """A CSVLogger file, resumed with append=True (its header and epoch 1 repeated)."""
    log = tmp_path / "training.log"
    rows = [("epoch", "accuracy", "loss", "lr_schedule"),
            (0, 0.5, 1.25, "[0.1]"), (1, 0.75, float("nan"), "[0.1]"),
            ("epoch", "accuracy", "loss", "lr_schedule"),
            (1, 0.8, 0.5, "[0.1]"), (2, 0.875, 0.25, "[0.1]")]
    log.write_text("\n".join(",".join(f'"{v}"' if str(v).startswith("[") else str(v)
                                      for v in row) for row in rows) + "\n")
    metrics = read_metrics_log(log)
    # log epoch e is the network after e + 1 epochs; the later row of a repeated epoch wins
    assert sorted(metrics) == [1, 2, 3]
    assert metrics[1] == {"accuracy": 0.5, "loss": 1.25}
    assert metrics[2] == {"accuracy": 0.8, "loss": 0.5}
    assert metrics[3] == {"accuracy": 0.875, "loss": 0.25}


def test_csv_logger_nan_is_no_value(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("epoch,loss\n0,nan\n1,inf\n")
    assert read_metrics_log(log) == {1: {"loss": None}, 2: {"loss": None}}


def test_history_json(tmp_path):
    history = {"loss": [1.5, float("nan")], "accuracy": [0.25, 0.5]}
    plain = tmp_path / "history.json"
    plain.write_text(json.dumps(history))  # json.dumps writes NaN as the literal NaN
    assert read_metrics_log(plain) == {1: {"loss": 1.5, "accuracy": 0.25},
                                       2: {"loss": None, "accuracy": 0.5}}
    resumed = tmp_path / "resumed.json"
    resumed.write_text(json.dumps({"epoch": [4, 5], **history}))
    assert sorted(read_metrics_log(resumed)) == [5, 6]


@pytest.mark.parametrize("name, text, message", [
    ("log.csv", "loss\n0.5\n", "no 'epoch' column"),
    ("log.csv", "epoch,loss\n0.5,1\n", "epoch '0.5' is not a whole number"),
    ("log.csv", "epoch,loss\n0,1,2\n", "line 2 has 3 values for 2 columns"),
    ("log.csv", "epoch,loss\n", "has no epochs"),
    ("h.json", "[1, 2]", "expected a JSON object of lists"),
    ("h.json", '{"loss": [1, 2], "accuracy": [1]}', "different lengths"),
    ("h.json", '{"loss": [1', "is not valid JSON"),
])
def test_bad_metrics_logs(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ExportError, match=message) as error:
        read_metrics_log(path)
    assert name in str(error.value)


# -- the demo's progress line ----------------------------------------------------------------


class _Console(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


class _Clock:
    def __init__(self, step: float):
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def _import_like_updates() -> list[tuple[float, str]]:
    """What scene.import_network reports: a few stages, each with many repeated updates."""
    updates = [(0.0, "reading export")]
    for stage, (start, end) in enumerate([(0.1, 0.5), (0.5, 0.9)]):
        updates += [(start + (end - start) * i / 20, f"bundling link {stage}") for i in range(20)]
    return updates + [(1.0, "done")]


def test_progress_on_a_terminal_is_one_updating_line():
    console = _Console(tty=True)
    progress = ConsoleProgress(console, clock=_Clock(0.01))
    for fraction, message in _import_like_updates():
        progress(fraction, message)
    progress.close()
    text = console.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")
    drawn = text[:-1].split("\r")[1:]
    assert drawn[-1].rstrip() == "100% done"
    assert len(drawn) < len(_import_like_updates())  # throttled
    # a shorter line blanks out the longer one before it
    assert all(len(line) >= len(before.rstrip()) for before, line in zip(drawn, drawn[1:]))


def test_progress_in_a_log_is_a_few_distinct_lines():
    updates = _import_like_updates()
    fast = _Console(tty=False)
    progress = ConsoleProgress(fast, clock=_Clock(0.01))  # the whole import in 0.4 s
    for fraction, message in updates:
        progress(fraction, message)
    assert fast.getvalue().splitlines() == ["  0% reading export", "100% done"]

    slow = _Console(tty=False)
    progress = ConsoleProgress(slow, clock=_Clock(0.5), log_interval_s=1.0)
    for fraction, message in updates:
        progress(fraction, message)
    lines = slow.getvalue().splitlines()
    assert len(lines) == len(set(lines)) and "\r" not in slow.getvalue()
    assert lines[0] == "  0% reading export" and lines[-1] == "100% done"
    assert len(updates) // 3 < len(lines) < len(updates)  # about one line a second
