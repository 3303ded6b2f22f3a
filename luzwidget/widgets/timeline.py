"""The time-travel timeline's data (``parts/travel.js``): the run's snapshots, sent as deltas.

Each snapshot gets a number of its own when first seen, kept for its life (the store's list
index moves when it evicts), and is sent once, as
``[number, epoch, batch, kind, label, x, event]``: ``kind`` ``"s"`` (the start), ``"e"``
(an epoch end), ``"i"`` (inside an epoch, training) or ``"v"`` (inside, validating); ``x``
where it sits on the loss stream's x axis (None: the loader has no length); ``event`` the
event an inside snapshot was taken after (two pauses inside one batch, stepping event by
event, are two snapshots: the event tells them apart).

Two snapshots of one place (:attr:`Snapshot.key`: a pause's automatic snapshot, then
Snapshot clicked there) hold the same state: the timeline shows one, the labelled one.
At most :data:`TIMELINE_MAX` marks are shown: past that, the unlabelled ones in between are
thinned by their number (every 2nd, 4th...), the first, the latest and the labelled always
kept. A message carries only what changed (:meth:`Timeline.delta`).
"""

from __future__ import annotations

from typing import Any

from luzwidget.storage.snapstore import Snapshot

__all__ = ["TIMELINE_MAX", "Timeline", "entry"]

TIMELINE_MAX = 400
"""The most snapshots a dashboard's timeline shows."""

_KINDS = {"start": "s", "epoch_end": "e"}


def entry(number: int, snap: Snapshot, offset: int) -> list[Any]:
    """How the timeline sends ``snap`` (see the module's docstring)."""
    kind = _KINDS.get(snap.kind)
    if kind is None:
        kind = "v" if snap.position is not None and snap.position[1] == "valid" else "i"
    batches = snap.batches
    x = None if batches is None or batches < offset else batches - offset
    event = snap.event or "" if kind in ("i", "v") else ""
    return [number, snap.epoch, snap.iter, kind, snap.label or "", x, event]


class Timeline:
    """The snapshots one dashboard view knows, numbered, and what changed since."""

    def __init__(self, offset: int) -> None:
        self.offset = offset
        self._numbers: dict[int, tuple[int, Snapshot]] = {}  # id(snapshot) -> (number, it)
        self._next = 0
        self._signature: tuple[int, ...] = ()
        self._sent: dict[int, list[Any]] = {}  # number -> entry, as the browser has it
        self._version = 0
        self._delta: dict[str, Any] = {"v": 0, "reset": True, "add": [], "drop": []}

    def number(self, snap: Snapshot) -> int:
        """The snapshot's number in this timeline (given when first seen)."""
        found = self._numbers.get(id(snap))
        if found is None or found[1] is not snap:
            found = self._numbers[id(snap)] = (self._next, snap)
            self._next += 1
        return found[0]

    def index(self, number: Any, snaps: list[Snapshot]) -> Any:
        """The store index of snapshot ``number`` (a number not known: returned as it is,
        for the command table to refuse)."""
        self._refresh(snaps)
        for i, snap in enumerate(snaps):
            if self.number(snap) == number:
                return i
        return number

    def _refresh(self, snaps: list[Snapshot]) -> bool:
        signature = tuple(id(s) for s in snaps)
        if signature == self._signature:
            return False
        self._signature = signature
        for snap in snaps:
            self.number(snap)
        alive = set(signature)
        self._numbers = {k: v for k, v in self._numbers.items() if k in alive}
        return True

    def shown(self, snaps: list[Snapshot]) -> dict[int, list[Any]]:
        """``{number: entry}`` of the snapshots the timeline shows, oldest first."""
        self._refresh(snaps)
        by_key: dict[tuple[Any, ...], Snapshot] = {}
        for snap in snaps:  # one mark per place: the labelled one if any
            held = by_key.get(snap.key)
            if held is None or (snap.label and not held.label):
                by_key[snap.key] = snap
        kept = [s for s in snaps if by_key[s.key] is s]
        numbers = [self.number(s) for s in kept]
        last = numbers[-1] if numbers else -1
        stride = 1
        while True:
            keep = [
                bool(s.label) or n in (numbers[0], last) or n % stride == 0
                for s, n in zip(kept, numbers, strict=True)
            ]
            if sum(keep) <= TIMELINE_MAX or stride > len(numbers) + self._next:
                break
            stride *= 2
        return {
            n: entry(n, s, self.offset) for s, n, k in zip(kept, numbers, keep, strict=True) if k
        }

    def delta(self, snaps: list[Snapshot], full: bool) -> dict[str, Any]:
        """What the browser's timeline needs: all of it (``full``: a new view), else what
        changed since the last delta (the same delta again when nothing did), as
        ``{"v": version, "reset": bool, "add": [entries], "drop": [numbers]}``."""
        if not self._refresh(snaps) and not full:
            return self._delta
        shown = self.shown(snaps)
        if full:
            add, drop = list(shown.values()), []
        else:
            add = [e for n, e in shown.items() if self._sent.get(n) != e]
            drop = [n for n in self._sent if n not in shown]
            if not add and not drop:
                return self._delta
        self._sent = shown
        self._version += 1
        self._delta = {"v": self._version, "reset": full, "add": add, "drop": drop}
        return self._delta
