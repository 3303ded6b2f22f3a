"""Bounded, downsampled history of a per-batch series (the live loss stream)."""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["DownsampledSeries"]


def _mean2(a: float, b: float) -> float:
    """Mean of two values, ignoring a NaN (NaN only if both are)."""
    if math.isnan(a):
        return b
    if math.isnan(b):
        return a
    return (a + b) / 2


class DownsampledSeries:
    """Per-batch values kept in at most ``capacity`` points of equal width.

    Raw values are averaged into buckets of ``bucket`` batches; when the history grows past
    ``capacity`` points, neighbouring points are averaged in pairs and the bucket width
    doubles. So memory is bounded whatever the run length, the resolution stays uniform,
    and :meth:`add` returns only the points it completed (what a view must append).
    A bias-corrected exponential moving average (``beta``) of the raw values rides along.

    Parameters
    ----------
    capacity : int, default 2000
        Most points kept (must be >= 2).
    beta : float, default 0.98
        Smoothing of the EMA, in [0, 1).
    """

    def __init__(self, capacity: int = 2000, beta: float = 0.98) -> None:
        if capacity < 2:
            raise ValueError(f"capacity must be >= 2, got {capacity}.")
        if not 0 <= beta < 1:
            raise ValueError(f"beta must be in [0, 1), got {beta}.")
        self.capacity = capacity
        self.beta = beta
        self.bucket = 1
        self.x: list[float] = []
        self.y: list[float] = []
        self.ema: list[float] = []
        self.count = 0  # raw values seen
        self.last = math.nan  # last raw value
        self.last_ema = math.nan
        self._avg = 0.0
        self._n_finite = 0
        self._acc = [0.0, 0.0, 0, 0.0, 0]  # sum x, sum finite y, n finite, sum ema, n

    def __len__(self) -> int:
        return len(self.x)

    def add(self, xs: Iterable[float], ys: Iterable[float]) -> tuple[list, list, list]:
        """Add raw ``(x, y)`` values; return the completed points ``(x, y, ema)``."""
        out: tuple[list, list, list] = ([], [], [])
        beta, acc = self.beta, self._acc
        for x, y in zip(xs, ys, strict=True):
            self.count += 1
            self.last = y
            if math.isfinite(y):
                self._n_finite += 1
                self._avg = beta * self._avg + (1 - beta) * y
                self.last_ema = self._avg / (1 - beta**self._n_finite)
                acc[1] += y
                acc[2] += 1
            acc[0] += x
            acc[3] += self.last_ema
            acc[4] += 1
            if acc[4] >= self.bucket:
                self._emit(out)
                acc = self._acc
                if len(self.x) > self.capacity:
                    self._halve()
        return out

    def flush(self) -> tuple[list, list, list]:
        """Emit the partly filled bucket (e.g. when the run pauses); return it as points."""
        out: tuple[list, list, list] = ([], [], [])
        if self._acc[4]:
            self._emit(out)
        if len(self.x) > self.capacity:
            self._halve()
        return out

    def points(self) -> dict[str, list[float | None]]:
        """The whole history as JSON-safe lists (NaN becomes None)."""
        return {"x": list(self.x), "y": _json_safe(self.y), "ema": _json_safe(self.ema)}

    def _emit(self, out: tuple[list, list, list]) -> None:
        sx, sy, ny, se, n = self._acc
        point = (sx / n, sy / ny if ny else math.nan, se / n)
        for lst, local, v in zip((self.x, self.y, self.ema), out, point, strict=True):
            lst.append(v)
            local.append(v)
        self._acc = [0.0, 0.0, 0, 0.0, 0]

    def _halve(self) -> None:
        b = self.bucket
        if len(self.x) % 2:  # the odd newest point goes back to the accumulator
            x, y, e = self.x.pop(), self.y.pop(), self.ema.pop()
            acc = self._acc
            acc[0] += x * b
            acc[3] += e * b
            acc[4] += b
            if not math.isnan(y):
                acc[1] += y * b
                acc[2] += b
        for name in ("x", "y", "ema"):
            v = getattr(self, name)
            setattr(self, name, [_mean2(v[i], v[i + 1]) for i in range(0, len(v), 2)])
        self.bucket = 2 * b


def _json_safe(values: Iterable[float]) -> list[float | None]:
    return [v if math.isfinite(v) else None for v in values]


def json_points(points: tuple[list, list, list]) -> dict[str, list[float | None]]:
    """Points returned by :meth:`DownsampledSeries.add` as a JSON-safe dict."""
    x, y, ema = points
    return {"x": list(x), "y": _json_safe(y), "ema": _json_safe(ema)}
