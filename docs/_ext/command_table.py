"""A griffe extension: the attached proxy's commands, made from the command table at import.

``luzwidget.remote.proxy.Attached`` gets one method per remote command of
``luzwidget.control.commands.TABLE`` (``pause``, ``set_lr``, ``rewind``...), set on the
class when the module is imported, so a static read of the source does not see them. This
extension inspects the live class and adds each such method, with its signature and
docstring, to the statically loaded one.

Loaded by mkdocstrings (``extensions`` in ``mkdocs.yml``); not part of the package.
"""

from __future__ import annotations

from typing import Any

import griffe

PROXY = "luzwidget.remote.proxy.Attached"


class CommandTable(griffe.Extension):
    """Add the generated methods of the attached proxy to its documentation."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Once ``luzwidget`` is loaded: copy the proxy's generated methods in."""
        if pkg.name != "luzwidget":
            return
        static = pkg.get_member(PROXY.removeprefix("luzwidget."))
        live = griffe.inspect("luzwidget.remote.proxy").get_member("Attached")
        for name, member in live.members.items():
            if name.startswith("_") or name in static.members or not member.is_function:
                continue
            member.parent = static
            static.set_member(name, member)
