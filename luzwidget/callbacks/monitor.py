"""Watching one logged metric: parse ``"<set>_<metric>"``, read it, tell whether it improved."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from luzwidget.core.exceptions import ConfigError
from luzwidget.core.records import MONITORED_SETS as _SETS
from luzwidget.core.values import as_scalar

if TYPE_CHECKING:
    from luzwidget.core.context import Context

__all__ = ["Monitor", "available_monitors"]


def available_monitors(ctx: Context, epoch: int | None = None) -> list[str]:
    """Every ``"<set>_<metric>"`` name logged for ``epoch`` (default: the current one)."""
    return ctx.history.monitors(ctx.epoch if epoch is None else epoch)


_MISSING = object()


class Monitor:
    """A monitored metric such as ``"valid_loss"`` or ``"valid_binary_acc"``.

    The name is split on its first underscore only: the set (``train`` or ``valid``), then
    the metric as it is logged (it may contain underscores).

    Parameters
    ----------
    monitor
        ``"<set>_<metric>"``.
    mode
        ``"min"`` (lower is better, e.g. losses) or ``"max"`` (e.g. accuracies).
    min_delta
        How much better than the best a value must be to count as an improvement.
    owner
        The callback's name, for error messages.

    Raises
    ------
    ConfigError
        If ``monitor`` has no known set prefix, ``mode`` is not min/max, or ``min_delta < 0``.
    """

    def __init__(self, monitor: str, mode: str, min_delta: float, owner: str) -> None:
        if (
            not isinstance(monitor, str)
            or monitor.split("_", 1)[0] not in _SETS
            or ("_" not in monitor)
        ):
            raise ConfigError(
                f"{owner}: monitor={monitor!r} must be '<set>_<metric>' with set 'train' or "
                "'valid', e.g. monitor='valid_loss' or monitor='train_acc'."
            )
        if mode not in ("min", "max"):
            raise ConfigError(
                f"{owner}: mode={mode!r} must be 'min' (lower is better, e.g. a loss) or 'max' "
                "(higher is better, e.g. an accuracy)."
            )
        if isinstance(min_delta, bool) or not isinstance(min_delta, int | float) or min_delta < 0:
            raise ConfigError(f"{owner}: min_delta must be a number >= 0, got {min_delta!r}.")
        self.name = monitor
        self.set, self.metric = monitor.split("_", 1)
        self.mode = mode
        self.min_delta = float(min_delta)
        self.owner = owner

    @property
    def worst(self) -> float:
        """The starting "best" value: +inf for min, -inf for max."""
        return math.inf if self.mode == "min" else -math.inf

    def find(self, ctx: Context) -> float | None:
        """The monitored value at the current epoch, or None when it was not logged."""
        found = ctx.history.get(self.metric, self.set, ctx.epoch, _MISSING)
        return None if found is _MISSING else self._number(found)

    def value(self, ctx: Context) -> float:
        """The monitored value at the current epoch.

        Raises
        ------
        ConfigError
            If it was not logged; the message lists the names that were.
        """
        found = self.find(ctx)
        if found is None:
            logged = ", ".join(available_monitors(ctx)) or "none"
            hint = ""
            if self.set == "valid" and not ctx.history.epochs("valid"):
                hint = " There is no validation: pass valid_data= to fit(), or monitor 'train_...'."
            raise ConfigError(
                f"{self.owner}: monitor={self.name!r} was not logged at epoch {ctx.epoch}. "
                f"Logged metrics: {logged}.{hint}"
            )
        return found

    def improved(self, value: float, best: float) -> bool:
        """True if ``value`` beats ``best`` by more than ``min_delta`` (NaN never does)."""
        if math.isnan(value):
            return False
        if self.mode == "min":
            return value < best - self.min_delta
        return value > best + self.min_delta

    def _number(self, value: Any) -> float:
        value = as_scalar(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(
                f"{self.owner}: monitor={self.name!r} is not a single number (got "
                f"{type(value).__name__} {value!r:.60}); monitor a scalar metric."
            )
        return float(value)
