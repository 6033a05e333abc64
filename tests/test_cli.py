"""The command line: `python -m xpnet info` and `python -m xpnet train digits`."""

import subprocess
import sys
import warnings

import pytest

import xpnet
from xpnet import cli
from xpnet.cli import info_rows, main
from xpnet.errors import NoGPUError

pytest.importorskip("sklearn")


def test_info_table_reports_a_real_smoke_test(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "default device" in out
    numpy_row = next(line for line in out.splitlines() if line.startswith("numpy"))
    assert "ok: forward/backward ran; compiled step: numpy" in numpy_row
    rows = {row[2]: row for row in info_rows()}
    assert rows["cpu"][4].startswith("ok")
    if not xpnet.gpu_available():
        assert not rows["cuda"][4].startswith("ok")


def test_info_says_when_the_cuda_graph_capture_fell_back_to_eager(monkeypatch):
    """The CUDA-graph step falls back to eager when a capture fails; `info` is where a
    user (or a GPU test session) reads that. A capture that raises stands in for the
    GPU: the NumPy device is given the cuda_graph strategy."""

    class FailingCapture:
        def __init__(self, step, xb, yb):
            raise NotImplementedError("calling cuBLAS API during stream capture is currently unsupported")

    monkeypatch.setitem(xpnet.backend._COMPILE_STRATEGIES, "numpy", "cuda_graph")
    monkeypatch.setitem(xpnet._compile._PLANS, "cuda_graph", FailingCapture)
    result = cli._smoke(xpnet.backend.resolve_device("cpu"))
    assert result == ("eager (CUDA graph capture failed (NotImplementedError: calling cuBLAS API during stream "
                      "capture is currently unsupported))")


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


def test_help_is_plain_text_with_every_default(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    top = capsys.readouterr().out
    assert "``" not in top and ":mod:" not in top
    assert "python -m xpnet info" in top and "python -m xpnet train digits" in top
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag, default in [("--epochs", "20"), ("--lr", "0.003"), ("--batch-size", "32"),
                          ("--optimizer", "adam"), ("--seed", "0"), ("--device", "auto")]:
        section = text.split(f"{flag} ", 2)[-1]  # the option's own help, after the usage line
        assert f"(default: {default})" in section.split(" --")[0], flag


@pytest.mark.parametrize(
    "args, message",
    [
        (["--epochs", "0"], "argument --epochs: expected a whole number >= 1, got 0"),
        (["--epochs", "-3"], "argument --epochs: expected a whole number >= 1, got -3"),
        (["--batch-size", "0"], "argument --batch-size: expected a whole number >= 1, got 0"),
        (["--lr", "0"], "argument --lr: expected a finite number > 0, got 0"),
        (["--lr", "nan"], "argument --lr: expected a finite number > 0, got nan"),
        (["--hidden", "32", "0"], "argument --hidden: expected a whole number >= 1, got 0"),
        (["--seed", "-1"], "argument --seed: expected a whole number >= 0, got -1"),
        (["--seed", "1.5"], "argument --seed: expected a whole number >= 0, got '1.5'"),
        (["--save", "no-such-folder/model.npz"], "argument --save: cannot save to 'no-such-folder/model.npz': "
                                                 "folder 'no-such-folder' does not exist"),
        (["--save", "."], "argument --save: cannot save to '.': it names a folder; give a file name such as "
                          "'./model.npz'"),
    ],
)
def test_training_arguments_are_checked_before_training(capsys, args, message):
    with pytest.raises(SystemExit) as info:
        main(["train", "digits", "--device", "cpu", *args])
    assert info.value.code == 2
    out, err = capsys.readouterr()
    assert message in err and "Traceback" not in err and "training on" not in out


def test_offline_dataset_is_one_clean_message(tmp_path, monkeypatch, capsys):
    from xpnet import data

    monkeypatch.setattr(data, "_MNIST_URLS", ((tmp_path / "no-mirror").as_uri() + "/",))
    code = main(["train", "mnist", "--device", "cpu", "--data-dir", str(tmp_path / "data")])
    captured = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in captured.err
    assert captured.err.startswith("error: could not download mnist")
    assert captured.err.count("sha256 ") == 4
    assert "--data-dir" in captured.err and "XPNET_DATA_DIR" in captured.err


def test_info_keeps_backend_warnings_out_of_its_table(monkeypatch, capsys):
    from xpnet import backend

    banner = "\n".join(["", "-" * 80, "", "  CuPy may not function correctly because multiple CuPy packages are installed",
                        *[f"  line {i} of the banner" for i in range(20)], "-" * 80])  # as CuPy's own

    def noisy_version(self):
        warnings.warn(banner, UserWarning, stacklevel=1)
        return "13.6.0"

    monkeypatch.setattr(backend._CupyBackend, "version", noisy_version)
    monkeypatch.setattr(backend._CupyBackend, "installed", lambda self: True)
    # the row must read "unavailable" on a GPU machine too, where the real probe succeeds
    monkeypatch.setattr(backend._CupyBackend, "_probed", {})
    monkeypatch.setattr(backend._CupyBackend, "_probe", lambda self, index: NoGPUError("no GPU found (stand-in)"))
    monkeypatch.setattr(cli, "_INFO_DEVICES", (("cupy", "cuda"), ("numpy", "cpu")))  # the table's last row: numpy
    assert main(["info"]) == 0
    captured = capsys.readouterr()
    assert "banner" not in captured.err
    lines = captured.out.splitlines()
    table_end = next(i for i, line in enumerate(lines) if line.startswith("numpy "))
    assert not any("CuPy" in line for line in lines[: table_end + 1] if not line.startswith("cupy"))
    after = lines[table_end + 1 :]
    assert any("multiple CuPy packages are installed" in line for line in after)
    assert not any("line 3 of the banner" in line for line in lines)
    cupy_row = next(line for line in lines if line.startswith("cupy "))
    assert "unavailable: " in cupy_row and "Or run on the CPU" not in cupy_row  # the table is the alternative


def test_train_takes_its_default_device_from_xpnet_device(monkeypatch, capsys):
    """`python -m xpnet info` reports XPNET_DEVICE as the default device; train used
    "auto" whatever it said."""
    monkeypatch.setenv("XPNET_DEVICE", "strict")
    try:
        assert main(["train", "digits", "--epochs", "1", "--quiet"]) == 0
    finally:
        xpnet.use("cpu")
    assert "training on strict" in capsys.readouterr().out
