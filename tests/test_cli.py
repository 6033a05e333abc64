"""The command line: `python -m xpnet info` and `python -m xpnet train digits`."""

import subprocess
import sys

import pytest

import xpnet
from xpnet.cli import info_rows, main

pytest.importorskip("sklearn")


def test_info_table_reports_a_real_smoke_test(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "default device" in out
    numpy_row = next(line for line in out.splitlines() if line.startswith("numpy"))
    assert "ok: forward/backward ran" in numpy_row
    rows = {row[2]: row for row in info_rows()}
    assert rows["cpu"][4].startswith("ok")
    if not xpnet.gpu_available():
        assert not rows["cuda"][4].startswith("ok")


def test_train_digits_prints_accuracy_and_saves(tmp_path, capsys):
    path = tmp_path / "digits.npz"
    assert main(["train", "digits", "--device", "cpu", "--epochs", "15", "--quiet", "--save", str(path)]) == 0
    out = capsys.readouterr().out
    accuracy = float(out.split("test accuracy:")[1].split()[0])
    assert accuracy >= 0.95
    model = xpnet.load(path)
    assert model[0].in_features == 64 and model[-1].out_features == 10


def test_unknown_device_is_a_clear_error(capsys):
    assert main(["train", "digits", "--device", "tpu", "--epochs", "1"]) == 2
    assert "unknown device 'tpu'" in capsys.readouterr().err


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "xpnet", "info"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "array-api-strict" in result.stdout
