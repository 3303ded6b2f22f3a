"""A griffe extension: Sphinx cross-reference roles in docstrings become mkdocs links.

luzwidget's numpy-style docstrings name other objects with Sphinx roles
(``:class:`~luzwidget.Run```, ``:meth:`step```). mkdocstrings renders Markdown, where a
role would show as literal text. This extension rewrites each role, once the package is
loaded, into an optional autorefs link: a link where the target is documented on the
site, plain code where it is not (``torch.nn.Module``, a private helper), never a broken
link. Relative names are looked up from the docstring's object outwards (its class, its
module, the package), as Sphinx does.

Loaded by mkdocstrings (``extensions`` in ``mkdocs.yml``); not part of the package.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj|const):`(~?)([^`<]+)`")
LITERAL = re.compile(r"(\S)::\n(?=[ \t]*\n)")
"""A paragraph ending in ``::`` (reST: a literal block follows): Markdown shows one colon."""


class SphinxRoles(griffe.Extension):
    """Rewrite ``:role:`target``` in every docstring of the loaded package."""

    def on_object(self, *, obj: griffe.Object, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        """Rewrite the roles of one object's docstring (the tree is complete by now)."""
        if obj.docstring is None:
            return
        text = LITERAL.sub(r"\1:\n", obj.docstring.value)
        obj.docstring.value = ROLE.sub(
            lambda m: _link(m.group(2).strip(), short=bool(m.group(1)), obj=obj, loader=loader),
            text,
        )


def _link(target: str, *, short: bool, obj: griffe.Object, loader: griffe.GriffeLoader) -> str:
    shown = target.lstrip(".")
    if short:
        shown = shown.rsplit(".", 1)[-1]
    path = _resolve(target.lstrip("."), obj, loader)
    code = f"<code>{html.escape(shown)}</code>"
    return f'<autoref identifier="{html.escape(path)}" optional>{code}</autoref>'


def _resolve(target: str, obj: griffe.Object, loader: griffe.GriffeLoader) -> str:
    """The full path of ``target`` as seen from ``obj``, or ``target`` if none is found."""
    scopes: list[str] = []
    scope: griffe.Object | None = obj
    while scope is not None:
        scopes.append(scope.path)
        scope = scope.parent
    for prefix in ["", *scopes]:
        path = f"{prefix}.{target}" if prefix else target
        if _exists(path, loader):
            return path
    return target


def _exists(path: str, loader: griffe.GriffeLoader) -> bool:
    try:
        loader.modules_collection.get_member(path)
    except (KeyError, ValueError, AttributeError, griffe.AliasResolutionError):
        return False
    return True
