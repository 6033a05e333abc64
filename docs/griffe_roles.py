"""Griffe extension: the reST markup of xpnet's docstrings, as Markdown for the API reference.

The docstrings are written for ``help()`` and use Sphinx roles (``:class:`~xpnet.History```,
``:func:`fit```) and reST literal blocks (``a paragraph::`` and an indented block). The
API reference renders docstrings as Markdown, where both show up raw. Before mkdocstrings
renders anything, this extension rewrites its copy of every docstring (the source stays
as it is):

- a role whose target is an xpnet object becomes an optional cross-reference: a link when
  the API reference documents the object, plain inline code when it does not (a private
  helper, a module without a page), never a build warning;
- any other role (``:class:`matplotlib.figure.Figure```) becomes inline code;
- ``~`` shows only the last component of the target, as in Sphinx; ``title <target>``
  shows the title;
- a relative target resolves like a name in Python: in the class, then in the enclosing
  modules, then in ``xpnet``;
- a literal block becomes a fenced code block.

mkdocs.yml loads it through the python handler's ``extensions`` option; docs/hooks.py
fails the build if a rendered page still shows a role.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?P<role>class|func|meth|mod|attr|data|exc|obj|const|any):`(?P<body>[^`]+)`")
_FENCE = re.compile(r"^\s*```")
_TITLED = re.compile(r"^(?P<title>.*?)\s*<(?P<target>[^<>]+)>$")
PACKAGE = "xpnet"


def convert(text: str, resolve: Callable[[str], str | None]) -> str:
    """``text`` with literal blocks fenced and roles turned into Markdown.

    ``resolve`` maps a role's target, as written, to the identifier of the xpnet object
    it names, or to None when it names none.
    """
    lines = _fence_literal_blocks(text.split("\n"))
    out, in_fence = [], False
    for line in lines:
        if _FENCE.match(line):
            in_fence = not in_fence
        out.append(line if in_fence or _FENCE.match(line) else ROLE.sub(lambda m: _role(m, resolve), line))
    return "\n".join(out)


def _role(match: re.Match, resolve: Callable[[str], str | None]) -> str:
    body = match["body"].strip()
    if titled := _TITLED.match(body):
        title, target = titled["title"], titled["target"].strip()
    else:
        title, target = None, body
    no_link = target.startswith("!")
    target = target.lstrip("!")
    short = target.startswith("~")
    target = target.lstrip("~")
    shown = title or (target.rsplit(".", 1)[-1] if short else target)
    identifier = None if no_link else resolve(target)
    if identifier is None:
        return f"`{shown}`"
    # An optional autoref (what mkdocstrings itself emits for signatures): mkdocs-autorefs
    # turns it into a link when some page documents the object, and into plain text
    # without a warning when none does.
    return f'<autoref identifier="{identifier}" optional>`{shown}`</autoref>'


def _fence_literal_blocks(lines: list[str]) -> list[str]:
    """reST ``paragraph::`` plus an indented block -> ``paragraph:`` plus a fenced block."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.rstrip()
        if not stripped.endswith("::") or _FENCE.match(line):
            out.append(line)
            i += 1
            continue
        indent = len(line) - len(line.lstrip())
        end = i + 1
        while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > indent):
            end += 1
        block = lines[i + 1:end]
        while block and not block[-1].strip():
            block.pop()
        if not any(b.strip() for b in block):  # no literal block follows: leave the line alone
            out.append(line)
            i += 1
            continue
        # reST: "text::" shows "text:", "text ::" shows "text", a lone "::" shows nothing.
        head = stripped[:-2]
        if head.strip():
            out.append(head.rstrip() if head.endswith(" ") else head + ":")
        pad = " " * indent
        code = textwrap.dedent("\n".join(block)).strip("\n").split("\n")
        language = "pycon" if code[0].lstrip().startswith(">>>") else "python"
        out += ["", f"{pad}```{language}", *[(pad + c) if c.strip() else "" for c in code], f"{pad}```"]
        i += 1 + len(block)
    return out


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _lookup(scope: Any, name: str) -> Any:
    """The object ``name`` (dotted) names inside ``scope``, or None."""
    first, _, rest = name.partition(".")
    try:
        members = scope.all_members if scope.is_class else scope.members  # a class's inherited ones count
        found = members.get(first)
        if found is not None and rest:
            found = found[rest]
        return found
    except Exception:  # noqa: BLE001 - an alias that cannot be resolved names nothing
        return None


def resolver(obj: Any, collection: Any) -> Callable[[str], str | None]:
    """Resolve role targets as written in ``obj``'s docstring: an identifier or None."""
    scopes = []
    scope = obj if (obj.is_class or obj.is_module) else obj.parent
    while scope is not None:
        scopes.append(scope)
        scope = scope.parent
    if PACKAGE in collection:
        scopes.append(collection[PACKAGE])

    def resolve(target: str) -> str | None:
        found = None
        if target == PACKAGE or target.startswith(PACKAGE + "."):
            found = collection[PACKAGE] if target == PACKAGE else _lookup(collection[PACKAGE], target[len(PACKAGE) + 1:])
        else:
            for scope in scopes:
                if (found := _lookup(scope, target)) is not None:
                    break
        if found is None:
            return None
        try:
            return found.canonical_path  # registered by mkdocstrings for every documented alias too
        except Exception:  # noqa: BLE001 - an alias that cannot be resolved names nothing
            return None

    return resolve


def _objects(obj: Any) -> Iterator[Any]:
    yield obj
    for member in list(obj.members.values()):
        if not member.is_alias:
            yield from _objects(member)


class SphinxRoles(griffe.Extension):
    """Rewrite each docstring of a loaded package (see the module docstring)."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        """Convert every docstring once the whole package is loaded (so names resolve)."""
        for obj in _objects(pkg):
            if obj.docstring is not None and obj.docstring.value:
                obj.docstring.value = convert(obj.docstring.value, resolver(obj, loader.modules_collection))
