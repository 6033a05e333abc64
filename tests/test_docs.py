"""The docs site's rule that every public object has a docstring (docs/hooks.py), checked
without building the site; CI also runs ``mkdocs build --strict``."""

import importlib.util
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
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
