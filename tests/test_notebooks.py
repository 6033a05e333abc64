"""The example notebooks: each .ipynb matches its jupytext .py, and each opens as the docs promise.

Executing them is CI's job (``python .ci/notebooks.py``, about a minute); these checks are instant.
"""

import importlib.util
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "examples").glob("0*.ipynb"))


def _runner():
    spec = importlib.util.spec_from_file_location("ci_notebooks", ROOT / ".ci" / "notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_five_notebooks_each_with_a_script():
    assert len(NOTEBOOKS) == 5
    assert all(nb.with_suffix(".py").is_file() for nb in NOTEBOOKS)


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_and_script_in_sync(ipynb):
    assert _runner().out_of_sync(ipynb) is None


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_opens_with_install_then_auto_device(ipynb):
    code = [cell.source for cell in jupytext.read(ipynb).cells if cell.cell_type == "code"]
    install, setup = code[0], code[1]
    assert 'find_spec("xpnet") is None' in install and "pip" in install  # installs only when missing
    assert "cupy" not in install.lower()  # Colab's CuPy stays as it is
    assert 'xpnet.use("auto")' in setup and "print(" in setup
    assert jupytext.read(ipynb).metadata["kernelspec"]["name"] == "python3"


def test_sync_check_notices_an_edited_script(tmp_path):
    source = NOTEBOOKS[0]
    (tmp_path / source.name).write_bytes(source.read_bytes())
    script = source.with_suffix(".py").read_text().replace("# %%\n", "# %%\nprint('edited')\n", 1)
    (tmp_path / source.with_suffix(".py").name).write_text(script)
    assert "differ" in _runner().out_of_sync(tmp_path / source.name)


def test_figure_without_image_is_a_problem():
    nbformat = pytest.importorskip("nbformat")
    cell = nbformat.v4.new_code_cell("fig")
    cell.outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": "<Figure size 640x480 with 1 Axes>"},
                                           execution_count=1)]
    found, images = _runner().problems(nbformat.v4.new_notebook(cells=[cell]))
    assert images == 0 and "cell 1: a figure produced no image" in found[0]
