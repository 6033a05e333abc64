"""The README's headline example and examples/train_digits.py, run as a new user would."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import xpnet
from xpnet import functional

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")


def _blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_readme_example_runs_on_a_cpu_only_machine_and_saves_before_plotting(tmp_path, monkeypatch):
    code = _blocks("python")[0]
    assert re.search(r'^xpnet\.use\("auto"\)', code, flags=re.M), "the headline example must run without a GPU"
    assert code.index("xpnet.save(") < code.index(".plot("), "save first: a missing plot extra must not lose the model"
    monkeypatch.chdir(tmp_path)
    with xpnet.using():
        exec(compile(code, "README.md", "exec"), {})
    assert xpnet.load(tmp_path / "digits.npz")[0].in_features == 64


def test_readme_first_command_installs_what_the_example_imports():
    first = _blocks("bash")[0]
    extras = set(re.search(r'pip install -e "\.\[([\w,]+)\]"', first).group(1).split(","))
    assert {"sklearn", "plot"} <= extras  # load_digits needs scikit-learn, history.plot matplotlib


def test_every_backward_the_docs_name_exists():
    text = README + "".join(p.read_text() for p in (ROOT / "docs").glob("*.md"))
    named = set(re.findall(r"\b(\w+_backward)\b", text))
    assert sorted(n for n in named if not hasattr(functional, n)) == []
    row = next(line for line in README.splitlines() if line.startswith("| `xpnet.functional`"))
    if "*_backward" in row:  # "each with its *_backward" promises one for every function listed
        listed = re.findall(r"`(\w+)`", row)[1:]
        assert sorted(n for n in listed if not hasattr(functional, f"{n}_backward")) == []


def test_train_digits_example_leaves_nothing_in_the_working_directory(tmp_path):
    work, tmp = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "train_digits.py"), "--device", "cpu",
                             "--epochs", "2"], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert list(work.iterdir()) == []
    outputs = sorted(p.name for p in (tmp / "xpnet-examples").iterdir())
    assert outputs == ["digits.npz", "digits_curves.png"]
    assert str(tmp / "xpnet-examples" / "digits.npz") in result.stdout
