"""The docs site's rules, checked without building the site; CI also runs ``mkdocs build --strict``.

Every public object has a docstring (docs/hooks.py); the docstrings' Sphinx roles and reST
literal blocks become Markdown (docs/griffe_roles.py), and raw reST on a page fails the build.
"""

import importlib.util
import re
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _hooks():
    return _docs_module("hooks")


def _docs_module(name):
    spec = importlib.util.spec_from_file_location(f"docs_{name}", ROOT / "docs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("module_name", _hooks().MODULES)
def test_every_public_object_has_a_docstring(module_name):
    pytest.importorskip("sklearn") if module_name == "xpnet.sklearn" else None
    assert _hooks().undocumented(module_name) == []


def test_undocumented_objects_are_found(monkeypatch):
    fake = types.ModuleType("xpnet._fake", "A module.")

    class Documented:
        """Has one."""

        def run(self):
            """Runs."""

    class Child(Documented):
        def run(self):  # inherits the docstring
            pass

        def extra(self):
            pass

        @property
        def size(self):
            return 1

    def bare():
        pass

    for obj in (Documented, Child, bare):
        obj.__module__ = "xpnet._fake"
    fake.Documented, fake.Child, fake.bare = Documented, Child, bare
    fake.__all__ = ["Documented", "Child", "bare"]
    monkeypatch.setitem(sys.modules, "xpnet._fake", fake)
    assert _hooks().undocumented("xpnet._fake") == ["xpnet._fake.Child", "xpnet._fake.Child.extra",
                                                    "xpnet._fake.Child.size", "xpnet._fake.bare"]


def test_roles_become_links_or_code():
    pytest.importorskip("griffe")
    convert = _docs_module("griffe_roles").convert
    known = {"fit": "xpnet.training.fit", "xpnet.History": "xpnet.history.History"}
    text = ("See :func:`fit`, :class:`~xpnet.History`, :meth:`the state <xpnet.History>`, "
            ":func:`!fit`, :class:`matplotlib.figure.Figure` and :py:func:`~scipy.optimize.minimize`.")
    assert convert(text, known.get) == (
        'See <autoref identifier="xpnet.training.fit" optional>`fit`</autoref>, '
        '<autoref identifier="xpnet.history.History" optional>`History`</autoref>, '
        '<autoref identifier="xpnet.history.History" optional>`the state`</autoref>, '
        "`fit`, `matplotlib.figure.Figure` and `minimize`.")


def test_literal_blocks_become_fenced_code():
    pytest.importorskip("griffe")
    convert = _docs_module("griffe_roles").convert
    text = ("The loop::\n\n    for b in batches:\n        step(b)\n\nThen ::\n\n  >>> fit()\n\n::\n\n"
            "    x = 1\n\nA list::\nis not a block, and :func:`fit` in code stays::\n\n    :func:`fit`\n")
    assert convert(text, {"fit": "xpnet.training.fit"}.get) == (
        "The loop:\n\n```python\nfor b in batches:\n    step(b)\n```\n\n"
        "Then\n\n```pycon\n>>> fit()\n```\n\n\n```python\nx = 1\n```\n\n"
        'A list::\nis not a block, and <autoref identifier="xpnet.training.fit" optional>`fit`</autoref> in code stays:'
        "\n\n```python\n:func:`fit`\n```\n")


def test_every_docstring_role_resolves_and_converts():
    """The docstrings as the API reference gets them: no reST left, and every role names a real
    object (a typo or a renamed function is caught here), unless it names another package."""
    griffe = pytest.importorskip("griffe")
    roles = _docs_module("griffe_roles")
    targets, original = [], roles.resolver

    def resolver(obj, collection):
        resolve = original(obj, collection)

        def recording(target):
            targets.append((obj.path, target, resolve(target)))
            return targets[-1][2]
        return recording

    extension = roles.SphinxRoles()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(roles, "resolver", resolver)
        package = griffe.load("xpnet", search_paths=[str(ROOT)], extensions=griffe.load_extensions(extension))
    assert len(targets) > 150
    unresolved = [(path, target) for path, target, found in targets
                  if found is None and (target.split(".")[0] == "xpnet" or "." not in target)]
    assert unresolved == []
    assert ("xpnet.training.evaluate", "fit", "xpnet.training.fit") in targets  # relative to the module
    assert ("xpnet.nn.module.Module.named_children", "children", "xpnet.nn.module.Module.children") in targets

    def docstrings(obj):
        if obj.docstring is not None:
            yield obj.path, obj.docstring.value
        for member in obj.members.values():
            if not member.is_alias:
                yield from docstrings(member)

    left = [(path, line) for path, text in docstrings(package) for line in re.split(r"```.*?```", text, flags=re.S)
            if roles.ROLE.search(line) or re.search(r"::\n\n", line)]
    assert left == []


def test_backend_device_table_is_a_table():
    markdown = pytest.importorskip("markdown")
    import xpnet.backend

    html = markdown.markdown(xpnet.backend.__doc__, extensions=["tables"])
    assert "<table>" in html and html.count("<tr>") == 8 and "<td><code>\"cuda:N\"</code></td>" in html


def test_raw_rest_on_a_page_is_found():
    raw_rest = _hooks().raw_rest
    assert raw_rest("<p>See <a href='#f'><code>fit</code></a>.</p><pre><code>:func:`fit`</code></pre>") == []
    found = raw_rest("<p>See :func:<code>fit</code> and :class:`X`.</p><p>The loop::</p><p>==== ====</p>")
    assert [markup for markup, _ in found] == [":func:<code>", ":class:`", "::</p>", "<p>==== "]


def test_getting_started_code_runs(tmp_path, monkeypatch, capsys):
    """The page a new user follows: every Python block runs, in order, as written."""
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    import re

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import xpnet

    text = (ROOT / "docs" / "getting-started.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    namespace = {}
    try:
        with xpnet.using("cpu"):
            for block in blocks:
                exec(compile(block, "getting-started.md", "exec"), namespace)
    finally:
        plt.close("all")
    out = capsys.readouterr().out
    assert "training on cpu" in out
    assert re.search(r"'accuracy': 0\.9\d", out)  # the page promises 0.96...
    assert "gradient check of Scale() in float64 on cpu: passed" in out and "parity passed on: cpu/float64" in out
    assert (tmp_path / "digits.npz").is_file()
