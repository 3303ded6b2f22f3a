"""Faults under several processes: a rank that fails posts it in the group's store; on
rank 0 a watcher thread reports it at once, wherever rank 0 is.

The watcher runs only while the run can go on: it is stopped (and its thread joined) when
the run fails or ends, and at the interpreter's exit, so no thread is left inside a store
call while Python finalizes (that aborted rank 0 with SIGABRT).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

from luzwidget.core.distributed import World, connect
from luzwidget.core.exceptions import LuzwidgetError
from luzwidget.core.report import report

__all__ = ["WATCH_JOIN_S", "FaultWatch", "GroupError"]

WATCH_JOIN_S = 5.0
"""How long stopping the fault watcher waits for its thread (one store call at most)."""

_WATCHING: weakref.WeakSet[FaultWatch] = weakref.WeakSet()


class GroupError(LuzwidgetError):
    """Another rank of the process group failed; this one stops instead of waiting."""


class FaultWatch:
    """Rank 0's watcher of the faults other ranks post under ``prefix`` in the store."""

    def __init__(self, world: World, prefix: str) -> None:
        self.world, self.prefix, self.store = world, prefix, world.store
        self._stop_watch = threading.Event()
        self._watcher: threading.Thread | None = None

    def posted(self) -> dict[str, Any] | None:
        """The fault a rank posted (``{"rank", "error"}``), or None."""
        if not self.store.check([self.prefix + "fault"]):
            return None
        fault: dict[str, Any] = json.loads(bytes(self.store.get(self.prefix + "fault")).decode())
        return fault

    def watch(self) -> None:
        """Rank 0: a thread that reports another rank's fault as soon as it is posted."""
        if self._watcher is not None and self._watcher.is_alive():
            return
        connect = _client_store()
        if connect is None:
            return
        self._stop_watch = threading.Event()
        self._watcher = threading.Thread(
            target=self._watch,
            args=(connect, self._stop_watch),
            daemon=True,
            name="luzwidget-faults",
        )
        _WATCHING.add(self)
        self._watcher.start()

    def unwatch(self) -> None:
        """Stop the watcher and wait for its thread (bounded by :data:`WATCH_JOIN_S`)."""
        self._stop_watch.set()
        thread, self._watcher = self._watcher, None
        _WATCHING.discard(self)
        if thread is not None and thread is not threading.current_thread():
            thread.join(WATCH_JOIN_S)

    def _watch(self, connect: Callable[[], Any], stop: threading.Event) -> None:
        """Look for a fault every 0.2 s; once stopped, one last look (the run that stopped
        it may have failed because of another rank: that rank is still named)."""
        with contextlib.suppress(Exception):
            store = connect()
            key = self.prefix + "fault"
            while True:
                stopping = stop.is_set()
                if store.check([key]):
                    break
                if stopping:
                    return
                stop.wait(0.2)
            fault = json.loads(bytes(store.get(key)).decode())
            if fault["rank"] != self.world.rank:
                report(f"rank {fault['rank']} of {self.world.world_size} failed: {fault['error']}")
            store.set(self.prefix + "fault_seen", "1")


@atexit.register
def _unwatch_all() -> None:
    """At the interpreter's exit: no watcher thread is left inside a store call."""
    for watch in list(_WATCHING):
        watch.unwatch()


def _client_store() -> Callable[[], Any] | None:
    """Opens a second connection to the group's store (for a thread), where there is one."""
    if not os.environ.get("MASTER_ADDR") or not os.environ.get("MASTER_PORT"):
        return None
    return lambda: connect(30.0)
