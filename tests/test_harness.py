"""xpnet.testing's device selection: XPNET_TEST_DEVICES."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from xpnet import testing
from xpnet.errors import UnknownDeviceError


@pytest.mark.parametrize("value", ["cpu,strcit", "cpu,strict:devcie1", "gpu0", ",", "cpu;strict"])
def test_unknown_names_are_an_error_not_skips(monkeypatch, value):
    monkeypatch.setenv("XPNET_TEST_DEVICES", value)
    with pytest.raises(UnknownDeviceError, match="XPNET_TEST_DEVICES") as info:
        testing.available_devices()
    assert "cpu,strict,strict:device1" in str(info.value)


def test_known_names_select_and_gpu_indices_are_marked(monkeypatch):
    monkeypatch.setenv("XPNET_TEST_DEVICES", " cpu , strict:device2,cuda:1,torch:cuda:1")
    params = testing.device_params()
    assert [p.values[0] for p in params] == ["cpu", "strict:device2", "cuda:1", "torch:cuda:1"]
    assert [any(m.name == "cuda" for m in p.marks) for p in params] == [False, False, True, True]
    assert [d.name for d in testing.available_devices()][:2] == ["cpu", "strict:device2"]


def test_a_typo_stops_pytest_with_the_message(tmp_path):
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["xpnet.testing"]\n')
    (tmp_path / "test_it.py").write_text("def test_it(xp_device):\n    pass\n")
    env = {**os.environ, "XPNET_TEST_DEVICES": "cpu,jaxx", "PYTHONPATH": str(Path(__file__).parents[1])}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert "unknown devices ['jaxx']" in result.stdout + result.stderr


def test_pytest_summary_is_short_by_default():
    """Skip reasons (one per CUDA test on a CPU machine) are asked for with -rs, not always printed."""
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    addopts = config["tool"]["pytest"]["ini_options"].get("addopts", "")
    assert not any(opt.startswith("-r") and ("a" in opt or "s" in opt) for opt in addopts.split()), addopts


def test_a_misspelt_name_in_include_is_an_error_not_left_out():
    with pytest.raises(UnknownDeviceError, match=r"unknown devices \['trorch'\]"):
        testing.available_devices(["cpu", "trorch"])


def test_device_params_of_devices_that_do_not_work_here_are_skipped_with_the_reason(tmp_path):
    if testing.available_devices(["cuda"]):
        pytest.skip("a GPU answers here: nothing to skip")
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["xpnet.testing"]\n')
    (tmp_path / "test_it.py").write_text(
        "import pytest\nfrom xpnet.testing import device_params, check_layer_parity\nimport xpnet\n\n"
        "@pytest.mark.parametrize('device', device_params())\n"
        "def test_it(device):\n"
        "    check_layer_parity(lambda: xpnet.nn.Linear(4, 3), [[1.0] * 4], devices=[device])\n")
    env = {**os.environ, "XPNET_TEST_DEVICES": "cpu,cuda", "PYTHONPATH": str(Path(__file__).parents[1])}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(tmp_path)],
                            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 1 skipped" in result.stdout and "cuda unavailable" in result.stdout
