"""A read-only view over a run's records: the one place that knows their layout.

``ctx.records`` is a plain dict that ``ctx.log()`` mutates and checkpoints save;
``records["metrics"][set][epoch - 1]`` holds the metrics of one epoch as a dict (or ``None``
or ``{}`` where nothing was logged for that epoch). :class:`Records` reads that layout, so
callbacks, loggers, ``Fitted`` and the dashboard never index it by hand.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, overload

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["MONITORED_SETS", "Records"]

MONITORED_SETS = ("train", "valid")
"""The sets a monitor name can start with (``"valid_loss"``), in the order they are listed."""

_MISSING = object()
_D = TypeVar("_D")


class Records:
    """Read the metrics in a records dict without copying it.

    Parameters
    ----------
    records : mapping
        ``ctx.records`` / ``fitted.records`` / ``evaluation.records``. The view reads it at
        every call, so it always shows what has been logged since.

    Examples
    --------
    >>> view = Records({"metrics": {"train": [{"loss": 1.0}, {"loss": 0.5}]}})
    >>> view.epochs("train"), view.metrics("train"), view.value("loss", "train", 1)
    (2, {'loss': 0.5}, 1.0)
    >>> view.monitors()
    ['train_loss']
    """

    __slots__ = ("raw",)

    def __init__(self, records: Mapping[str, Any]) -> None:
        self.raw = records
        """The records dict itself (not a copy)."""

    def _entries(self, set: str) -> list[Any]:
        return (self.raw.get("metrics") or {}).get(set) or []

    def sets(self) -> list[str]:
        """The sets with metrics logged (at least one epoch), in the order they appeared."""
        return [s for s, entries in (self.raw.get("metrics") or {}).items() if entries]

    def epochs(self, set: str) -> int:
        """The last epoch of ``set`` with an entry (0 when nothing was logged there)."""
        return len(self._entries(set))

    @overload
    def metrics(self, set: str, epoch: int | None = None) -> dict[str, Any]: ...
    @overload
    def metrics(self, set: str, epoch: int | None, default: _D) -> dict[str, Any] | _D: ...
    @overload
    def metrics(
        self, set: str, epoch: int | None = None, *, default: _D
    ) -> dict[str, Any] | _D: ...
    def metrics(self, set: str, epoch: int | None = None, default: Any = _MISSING) -> Any:
        """The metrics of ``set`` at ``epoch`` (1-based; default: the last logged), as a new dict.

        ``{}`` when ``epoch`` is None and nothing was logged in ``set``, or when the entry for
        ``epoch`` is empty. ``default``, if given, is returned for an epoch out of range.

        Raises
        ------
        KeyError
            If ``epoch`` is outside ``1..epochs(set)`` and no ``default`` is given; the
            message says what is logged.
        """
        entries = self._entries(set)
        if epoch is None:
            return dict(entries[-1] or {}) if entries else {}
        if not 1 <= epoch <= len(entries):
            if default is not _MISSING:
                return default
            raise KeyError(f"no {set} metrics for epoch {epoch}; logged: {self._logged(set)}.")
        return dict(entries[epoch - 1] or {})

    def _logged(self, set: str) -> str:
        n = self.epochs(set)
        if n:
            return f"1..{n}"
        return f"none in {set!r} (sets logged: {', '.join(map(repr, self.sets())) or 'none'})"

    def value(self, name: str, set: str, epoch: int | None = None) -> Any:
        """One metric value, e.g. ``value("loss", "valid")`` (default: the last epoch logged).

        Raises
        ------
        KeyError
            If ``epoch`` is out of range or ``name`` was not logged there; says what was.
        """
        found = self.metrics(set, epoch)
        if name not in found:
            raise KeyError(
                f"no {set} metric {name!r}"
                + (f" at epoch {epoch}" if epoch else "")
                + f"; logged: {sorted(found) or 'none'}."
            )
        return found[name]

    def get(self, name: str, set: str, epoch: int, default: Any = None) -> Any:
        """``value(name, set, epoch)``, or ``default`` when it was not logged (never raises)."""
        entries = self._entries(set)
        if not 1 <= epoch <= len(entries):
            return default
        found = (entries[epoch - 1] or {}).get(name, _MISSING)
        return default if found is _MISSING else found

    def last(self, set: str) -> tuple[int, dict[str, Any]]:
        """``(epoch, metrics)`` of the last non-empty entry of ``set``; ``(0, {})`` if none."""
        entries = self._entries(set)
        for epoch in range(len(entries), 0, -1):
            if entries[epoch - 1]:
                return epoch, dict(entries[epoch - 1])
        return 0, {}

    def rows(self) -> Iterator[tuple[str, str, int, Any]]:
        """Every logged value as ``(set, metric, epoch, value)``, set by set, epoch by epoch.

        Empty entries give no row; a dict-valued or tensor metric is yielded as it is.
        """
        for set_, entries in (self.raw.get("metrics") or {}).items():
            for epoch, values in enumerate(entries or [], 1):
                for name, value in (values or {}).items():
                    yield set_, name, epoch, value

    def frame(self) -> pd.DataFrame:
        """The rows as a pandas DataFrame with columns set, metric, epoch, value
        (``fitted.get_metrics()``)."""
        import pandas as pd

        return pd.DataFrame(list(self.rows()), columns=["set", "metric", "epoch", "value"])

    def monitors(self, epoch: int | None = None) -> list[str]:
        """The monitor names (``"train_loss"``, ``"valid_acc"``...) logged at ``epoch``.

        Only the sets ``Monitor`` accepts (:data:`MONITORED_SETS`). ``epoch`` defaults to each
        set's last logged epoch; an epoch a set has not reached lists nothing for it.
        """
        names = []
        for set_ in MONITORED_SETS:
            entries = self._entries(set_)
            at = len(entries) if epoch is None else epoch
            if 1 <= at <= len(entries):
                names += [f"{set_}_{name}" for name in entries[at - 1] or {}]
        return names

    def __repr__(self) -> str:
        shown = ", ".join(f"{s}: {self.epochs(s)} epochs" for s in self.sets())
        return f"<Records {shown or 'no metrics'}>"
