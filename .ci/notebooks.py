"""Execute the example notebooks the way a user would, offline, and fail on any problem.

    python .ci/notebooks.py                 # every examples/0*.ipynb
    python .ci/notebooks.py examples/02_*.ipynb

Each notebook runs top to bottom in a fresh Jupyter kernel with
``XPNET_EXAMPLES_SMOKE=1`` (generated stand-ins instead of MNIST/CIFAR-10 downloads,
shorter training) and no ``MPLBACKEND`` (the kernel's own inline backend, as in a
stock Jupyter). It fails when a cell raises, when a figure was displayed only as text
(``<Figure size ... with N Axes>`` and no ``image/png``), when a notebook produced no
image at all, or when a notebook's .py (jupytext, py:percent) and .ipynb differ.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import jupytext
import nbclient
import nbformat

ROOT = Path(__file__).resolve().parent.parent
FIGURE_TEXT = re.compile(r"<\w*Figure size [\d.]+x[\d.]+ with \d+ Axes>")


def sources(notebook: nbformat.NotebookNode) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source.strip()) for cell in notebook.cells]


def out_of_sync(ipynb: Path) -> str | None:
    """Why ``ipynb`` and its paired .py differ, or None."""
    script = ipynb.with_suffix(".py")
    if not script.is_file():
        return f"{ipynb.name} has no paired {script.name}"
    if sources(jupytext.read(script)) != sources(jupytext.read(ipynb)):
        return (f"{ipynb.name} and {script.name} differ; edit the .py and run "
                f"`jupytext --sync examples/{script.name}` to regenerate the notebook")
    return None


def problems(notebook: nbformat.NotebookNode) -> tuple[list[str], int]:
    """Figures shown only as text, a notebook without any image; and the image count."""
    found, images = [], 0
    for number, cell in enumerate(notebook.cells, 1):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            images += "image/png" in data
            text = data.get("text/plain", "") + output.get("text", "")
            if FIGURE_TEXT.search(text) and "image/png" not in data:
                found.append(f"cell {number}: a figure produced no image ({FIGURE_TEXT.search(text).group()})")
    if images == 0:
        found.append("no cell produced an image")
    return found, images


def run(ipynb: Path) -> tuple[list[str], int]:
    reason = out_of_sync(ipynb)
    if reason:
        return [reason], 0
    notebook = nbformat.read(ipynb, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(ipynb.parent)}})
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as exc:
        return [str(exc)[-3000:]], 0
    return problems(notebook)


def main(paths: list[str]) -> int:
    os.environ["XPNET_EXAMPLES_SMOKE"] = "1"
    os.environ.pop("MPLBACKEND", None)
    notebooks = [Path(p).resolve() for p in paths] or sorted((ROOT / "examples").glob("0*.ipynb"))
    failed, total = 0, time.perf_counter()
    for ipynb in notebooks:
        start = time.perf_counter()
        found, images = run(ipynb)
        failed += bool(found)
        seconds = time.perf_counter() - start
        print(f"{'FAILED' if found else 'ok':<6} {ipynb.relative_to(ROOT)}  {images} images  {seconds:.1f} s", flush=True)
        for problem in found:
            print("    " + problem.replace("\n", "\n    "))
    print(f"{len(notebooks) - failed}/{len(notebooks)} notebooks passed in {time.perf_counter() - total:.1f} s")
    return 1 if failed or not notebooks else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
