"""OnDemand: in the run's callbacks exactly while wanted, whatever order queued changes land in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from luzwidget.core.context import Context
from luzwidget.insight.attached import OnDemand


class QueuedRun:
    """A run training in another thread: add/remove_callback are applied only by apply()."""

    def __init__(self) -> None:
        self.ctx = Context()
        self.queue: list[Callable[[], None]] = []

    def add_callback(self, cb: Any) -> None:
        self.queue.append(lambda: setattr(self.ctx, "callbacks", [*self.ctx.callbacks, cb]))

    def remove_callback(self, cb: Any) -> None:
        self.queue.append(
            lambda: setattr(self.ctx, "callbacks", [c for c in self.ctx.callbacks if c is not cb])
        )

    def apply(self) -> None:
        while self.queue:
            self.queue.pop(0)()


class Counted(OnDemand):
    def __init__(self, run: Any) -> None:
        super().__init__(run)
        self.log: list[str] = []

    def joined(self) -> None:
        self.log.append("joined")

    def left(self) -> None:
        self.log.append("left")


@pytest.mark.parametrize(
    ("wants", "inside", "log"),
    [
        ([True], 1, ["joined"]),
        ([True, False], 0, []),
        ([True, False, True], 1, ["joined"]),
        ([True, False, True, False], 0, []),
    ],
)
def test_queued_wants_end_in_the_last_one(wants: list[bool], inside: int, log: list[str]) -> None:
    run = QueuedRun()
    cb = Counted(run)
    for on in wants:
        cb.want(on)
    assert cb.log == []  # nothing happens before the boundary
    run.apply()
    assert sum(c is cb for c in run.ctx.callbacks) == inside
    assert cb.log == log
    assert cb.present is bool(inside)
    assert cb._observing is bool(inside)  # no observer left behind once out


def test_joined_and_left_at_the_boundary_each_time() -> None:
    run = QueuedRun()
    cb = Counted(run)
    cb.want(True)
    run.apply()
    cb.want(False)
    assert cb.log == ["joined"]
    run.apply()
    assert cb.log == ["joined", "left"]
    assert not run.ctx.callbacks
    assert not run.ctx._trait_notifiers.get("callbacks", {}).get("change")


@pytest.mark.parametrize(
    ("wants", "inside", "log"),
    [
        ([False], 0, ["joined", "left"]),
        ([False, True], 1, ["joined"]),
        ([False, True, False], 0, ["joined", "left"]),
        ([False, True, False, True], 1, ["joined"]),
    ],
)
def test_queued_wants_after_it_joined(wants: list[bool], inside: int, log: list[str]) -> None:
    run = QueuedRun()
    cb = Counted(run)
    cb.want(True)
    run.apply()
    for on in wants:
        cb.want(on)
    run.apply()
    assert sum(c is cb for c in run.ctx.callbacks) == inside
    assert cb.log == log
    assert cb._observing is bool(inside)
