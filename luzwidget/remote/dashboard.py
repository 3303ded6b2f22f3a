"""The dashboard of an attached run: the same widget and JavaScript, its messages relayed.

:class:`RemoteDashboard` is a widget with the :class:`~luzwidget.widgets.Dashboard`'s
front end (same bundle, same traits), whose messages come from the served run's own
collector: the server pushes the snapshot/delta messages, the connection's thread hands
them here, and they are sent to the browser from the kernel's event loop. What the
browser sends (buttons, edits) goes to the server, which applies it there with the same
parser as a local dashboard (:func:`luzwidget.widgets.commands.handle_command`).

A command's ``id`` is sent prefixed with this view's own id, so with several notebooks
attached each view sees only its own acks (the event log shows everyone's). A server
that stops answering shows as ``disconnected``, with every button off.
"""

from __future__ import annotations

import contextlib
import itertools
import uuid
from typing import Any

import anywidget
import traitlets
from ipywidgets import widget_serialization

from luzwidget.remote.client import Connection
from luzwidget.widgets._library import STATIC, PlotlyLibrary, plotly_library
from luzwidget.widgets.commands import BUTTONS
from luzwidget.widgets.dashboard import PARTS
from luzwidget.widgets.publisher import main_loop

__all__ = ["RemoteDashboard"]


class RemoteDashboard(anywidget.AnyWidget):
    """The dashboard of a run served in another process (``lw.attach(...).dashboard()``).

    Parameters
    ----------
    conn : Connection
        The attached run's connection.
    parts : sequence of str, optional
        Which parts to show (default: all of :data:`~luzwidget.widgets.dashboard.PARTS`).
    """

    _esm = STATIC / "dashboard.js"
    _css = STATIC / "dashboard.css"
    _lib = traitlets.Instance(PlotlyLibrary).tag(sync=True, **widget_serialization)
    _uid = traitlets.Unicode().tag(sync=True)
    parts = traitlets.List(traitlets.Unicode(), help="Parts shown (list of str).").tag(sync=True)

    def __init__(self, conn: Connection, *, parts: Any = None, **kwargs: Any) -> None:
        chosen = list(PARTS if parts is None else parts)
        unknown = sorted(set(chosen) - set(PARTS))
        if unknown:
            raise ValueError(f"parts: unknown {unknown}; choose from {list(PARTS)}.")
        super().__init__(_lib=plotly_library(), _uid=uuid.uuid4().hex, parts=chosen, **kwargs)
        self._conn = conn
        self._loop = main_loop()
        self._ready = False
        self._closed = False
        self._prefix = f"{self._uid[:8]}:"
        self._ids = itertools.count(1)
        self._asked: dict[str, Any] = {}  # relayed id -> the browser's own id
        conn.on_update.append(self._on_update)
        conn.on_link.append(self._on_link)
        conn.subscribed = True
        conn.send({"op": "subscribe"})
        self.on_msg(self._on_msg)

    # -- server -> browser ----------------------------------------------------------------
    def _on_update(self, msg: dict[str, Any]) -> None:
        """On the connection's thread: keep this view's acks, hand it to the kernel loop."""
        if not self._ready or self._closed:
            return
        acks = msg.get("acks")
        if acks:
            mine = []
            for ack in acks:
                ident = ack.get("id")
                if isinstance(ident, str) and ident in self._asked:
                    mine.append({**ack, "id": self._asked.pop(ident)})
            msg = {**msg, "acks": mine} if mine else {k: v for k, v in msg.items() if k != "acks"}
            if len(msg) == 1 and msg.get("type") == "update":
                return
        self._deliver(msg)

    def _on_link(self, up: bool) -> None:
        if up:
            self._conn.send({"op": "dash", "content": {"cmd": "hello"}})
            return
        self._deliver(
            {
                "type": "update",
                "status": {
                    "state": "disconnected",
                    "buttons": dict.fromkeys(BUTTONS, False),
                    "start_label": "Resume",
                    "event": None,
                    "hint": f"disconnected: the run at {self._conn.address} stopped answering "
                    "(its process ended, or the network dropped).",
                },
            }
        )

    def _deliver(self, msg: dict[str, Any]) -> None:
        if self._closed:
            return
        if self._loop is None:
            self.send(msg)
            return
        with contextlib.suppress(RuntimeError):  # the kernel's loop is closed (shutting down)
            self._loop.call_soon_threadsafe(self._send_now, msg)

    def _send_now(self, msg: dict[str, Any]) -> None:
        if not self._closed:
            self.send(msg)

    # -- browser -> server ----------------------------------------------------------------
    def _on_msg(self, _: Any, content: Any, buffers: Any = None) -> None:
        if not isinstance(content, dict):
            return
        if content.get("cmd") == "hello":
            self._ready = True
        elif "id" in content:
            relayed = f"{self._prefix}{next(self._ids)}"
            self._asked[relayed] = content["id"]
            content = {**content, "id": relayed}
        try:
            self._conn.send({"op": "dash", "content": content})
        except Exception:  # a closed connection: the view already shows it disconnected
            self._on_link(False)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        self._ready = True
        self._conn.send({"op": "dash", "content": {"cmd": "hello"}})
        return super()._repr_mimebundle_(**kwargs)

    def close(self) -> None:
        """Stop relaying and close the widget (the run goes on)."""
        self._closed = True
        with contextlib.suppress(ValueError):
            self._conn.on_update.remove(self._on_update)
        with contextlib.suppress(ValueError):
            self._conn.on_link.remove(self._on_link)
        super().close()
