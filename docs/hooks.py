"""MkDocs hooks that turn silent gaps of the API reference into warnings, so ``--strict`` fails.

A public object without a docstring: mkdocstrings silently leaves it out of the API
reference; this hook makes the omission visible. Public means: listed in a module's ``__all__`` (or the
modules the API reference documents), and, for classes, every method and property
whose name does not start with ``_``. Inherited docstrings count (an override of a
documented method needs none of its own).

reST markup that reached a page raw: the docstrings use Sphinx roles and literal blocks,
which docs/griffe_roles.py rewrites as Markdown; a role it does not know (or a page that
bypasses it) would otherwise print as ``:func:<code>fit</code>`` without any warning.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.plugins.xpnet_docstrings")

MODULES = ["xpnet", "xpnet.nn", "xpnet.functional", "xpnet.losses", "xpnet.optim", "xpnet.init", "xpnet.gradcheck",
           "xpnet.testing", "xpnet.data", "xpnet.metrics", "xpnet.callbacks", "xpnet.io", "xpnet.plot",
           "xpnet.sklearn", "xpnet.distributed", "xpnet.backend", "xpnet.errors"]


def undocumented(module_name: str) -> list[str]:
    """Qualified names of the public objects of ``module_name`` without a docstring."""
    module = importlib.import_module(module_name)
    missing = [] if inspect.getdoc(module) else [module_name]
    for name in getattr(module, "__all__", []):
        obj = getattr(module, name)
        if inspect.ismodule(obj) or not (inspect.isclass(obj) or callable(obj)):
            continue
        if getattr(obj, "__module__", "").split(".")[0] != "xpnet":
            continue  # re-exported from elsewhere
        own = vars(obj).get("__doc__") if inspect.isclass(obj) else obj.__doc__  # a class needs its own
        if not own:
            missing.append(f"{module_name}.{name}")
        if inspect.isclass(obj):
            missing += [f"{module_name}.{name}.{member}" for member in _undocumented_members(obj)]
    return missing


def _undocumented_members(cls: type) -> list[str]:
    missing = []
    for member, value in vars(cls).items():
        if member.startswith("_") or not (inspect.isfunction(value) or isinstance(value, (property, classmethod,
                                                                                           staticmethod))):
            continue
        if not _doc(cls, member):
            missing.append(member)
    return missing


def _doc(cls: type, member: str) -> Any:
    for base in cls.__mro__:
        value = vars(base).get(member)
        if value is None:
            continue
        target = value.__func__ if isinstance(value, (classmethod, staticmethod)) else value
        if getattr(target, "__doc__", None):
            return target.__doc__
    return None


def on_pre_build(config: Any) -> None:
    """Warn once per public object without a docstring."""
    root = str(Path(config["config_file_path"]).resolve().parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    for module_name in MODULES:
        for name in undocumented(module_name):
            log.warning(f"{name} has no docstring; the API reference would leave it out")


# Outside code blocks: a Sphinx role (``:func:`fit``` renders as ``:func:<code>fit</code>``),
# a literal-block marker left at the end of a paragraph, the rule of a reST table.
RAW_REST = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj|const|any|ref|doc):(?:<code>|`)"
                      r"|::</p>|<p>={4,} ")
_PRE = re.compile(r"<pre[ >].*?</pre>", flags=re.S)


def raw_rest(html: str) -> list[tuple[str, str]]:
    """The pieces of reST markup in rendered ``html`` that nothing converted (code blocks aside),
    each with some text around it."""
    text = _PRE.sub("", html)
    return [(m.group(), text[max(0, m.start() - 40):m.end() + 40].replace("\n", " ")) for m in RAW_REST.finditer(text)]


def on_page_content(html: str, page: Any, **kwargs: Any) -> str:
    """Warn once per piece of raw reST markup on a page."""
    for markup, context in raw_rest(html):
        log.warning(f"{page.file.src_uri}: raw reST markup {markup!r} (docs/griffe_roles.py converts the known "
                    f"roles; use Markdown in docs pages) in: ...{context}...")
    return html
