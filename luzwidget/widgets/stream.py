"""Bounded, downsampled history of a per-batch series (the live loss stream)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from luzwidget.core.limits import STREAM_BETA, STREAM_CAPACITY
from luzwidget.core.values import as_scalar

__all__ = [
    "DownsampledSeries",
    "halve",
    "json_points",
    "losses_to_floats",
    "number",
    "stream_delta",
]

_Points = tuple[list[float], list[float], list[float]]  # (x, y, ema), aligned


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

    def __init__(self, capacity: int = STREAM_CAPACITY, beta: float = STREAM_BETA) -> None:
        if capacity < 2:
            raise ValueError(f"capacity must be >= 2, got {capacity}.")
        if not 0 <= beta < 1:
            raise ValueError(f"beta must be in [0, 1), got {beta}.")
        self.capacity = capacity
        self.beta = beta
        self.bucket = 1
        self.halvings = 0  # how many times the points were averaged in pairs
        self.x: list[float] = []
        self.y: list[float] = []
        self.ema: list[float] = []
        self.count = 0  # raw values seen
        self.last = math.nan  # last raw value
        self.last_ema = math.nan
        self._avg = 0.0
        self._corr = 1.0  # beta ** (finite values seen), for the bias correction
        self._n_finite = 0
        self._acc = [0.0, 0.0, 0, 0.0, 0]  # sum x, sum finite y, n finite, sum ema, n

    def __len__(self) -> int:
        return len(self.x)

    def add(self, xs: Iterable[float], ys: Iterable[float]) -> _Points:
        """Add raw ``(x, y)`` values; return the completed points ``(x, y, ema)``."""
        xs, ys = list(xs), list(ys)
        if len(xs) != len(ys):
            raise ValueError(f"{len(xs)} x values but {len(ys)} y values.")
        emas = self._update_ema(ys)
        out: _Points = ([], [], [])
        i, n = 0, len(xs)
        while i < n:
            if self.bucket == 1:  # full resolution: whole runs of points at once
                j = min(n, i + self.capacity + 1 - len(self.x))
                for lst, local, values in zip(
                    (self.x, self.y, self.ema), out, (xs, ys, emas), strict=True
                ):
                    lst.extend(values[i:j])
                    local.extend(values[i:j])
            else:  # fill the current bucket
                j = min(n, i + self.bucket - int(self._acc[4]))  # _acc[4] counts points: an int
                self._accumulate(xs[i:j], ys[i:j], emas[i:j])
                if self._acc[4] >= self.bucket:
                    self._emit(out)
            i = j
            if len(self.x) > self.capacity:
                self._halve()
        return out

    def _update_ema(self, ys: list[float]) -> list[float]:
        """The bias-corrected EMA after each value (NaN/inf values leave it unchanged)."""
        beta, avg, corr, n = self.beta, self._avg, self._corr, self._n_finite
        ema = self.last_ema
        out = []
        isfinite = math.isfinite
        for y in ys:
            if isfinite(y):
                avg = beta * avg + (1 - beta) * y
                corr *= beta
                n += 1
                ema = avg / (1 - corr)
            out.append(ema)
        self._avg, self._corr, self._n_finite, self.last_ema = avg, corr, n, ema
        self.count += len(ys)
        if ys:
            self.last = ys[-1]
        return out

    def _accumulate(self, xs: list[float], ys: list[float], emas: list[float]) -> None:
        acc = self._acc
        finite = [y for y in ys if math.isfinite(y)]
        acc[0] += sum(xs)
        acc[1] += sum(finite)
        acc[2] += len(finite)
        acc[3] += sum(emas)
        acc[4] += len(xs)

    def flush(self) -> _Points:
        """Emit the partly filled bucket (e.g. when the run pauses); return it as points."""
        out: _Points = ([], [], [])
        if self._acc[4]:
            self._emit(out)
        if len(self.x) > self.capacity:
            self._halve()
        return out

    def points(self) -> dict[str, list[Any]]:
        """The whole history as JSON-safe lists (NaN becomes None)."""
        return json_points((self.x, self.y, self.ema))

    def _emit(self, out: _Points) -> None:
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
            setattr(self, name, halve(v))
        self.bucket = 2 * b
        self.halvings += 1


def halve(values: list[float]) -> list[float]:
    """Neighbours averaged in pairs (a NaN ignored); an odd last value is dropped.

    The one rule for thinning the stream. The browser applies the same rule to the points it
    holds when a delta says ``halve`` (``js/src/store.js``), so both keep the same points.
    """
    return [_mean2(values[i], values[i + 1]) for i in range(0, len(values) - 1, 2)]


def stream_delta(series: DownsampledSeries, held: int, halvings: int) -> dict[str, Any] | None:
    """What a browser holding ``held`` points after ``halvings`` halvings must do to catch up.

    ``{"halve": k, "x", "y", "ema"}``: halve its points ``k`` times with :func:`halve`, then
    append the points. The halved points a browser holds are always a prefix of the series
    (pairs are aligned from the start), so only the points after that prefix travel.
    None when there is nothing new.
    """
    k = series.halvings - halvings
    for _ in range(k):
        held //= 2
    if k == 0 and held == len(series.x):
        return None
    out: dict[str, Any] = json_points((series.x[held:], series.y[held:], series.ema[held:]))
    if k:
        out["halve"] = k
    return out


def _json_safe(values: Iterable[float]) -> list[float | None]:
    """Six significant digits (what a plot can show), NaN and inf as None."""
    return [float(f"{v:.6g}") if math.isfinite(v) else None for v in values]


def _json_x(values: Iterable[float]) -> list[float | int]:
    return [v if type(v) is int else int(v) if v.is_integer() else v for v in values]


def json_points(points: _Points) -> dict[str, list[Any]]:
    """_Points returned by :meth:`DownsampledSeries.add` as a compact JSON-safe dict."""
    x, y, ema = points
    return {"x": _json_x(x), "y": _json_safe(y), "ema": _json_safe(ema)}


def number(value: Any) -> float | None:
    """A finite float or None (JSON has no NaN)."""
    try:
        f = float(as_scalar(value))
    except (TypeError, ValueError, RuntimeError):
        return None
    return f if math.isfinite(f) else None


def losses_to_floats(items: list[tuple[int, Any]]) -> dict[str, tuple[list[int], list[float]]]:
    """Per-series (x, y) from ``(n, loss)`` items; tensors converted with one sync per series."""
    if items and all(type(loss) is torch.Tensor for _, loss in items):
        xs = [n for n, _ in items]
        try:  # the usual case: 0-d tensors of one dtype and device, one stack and one sync
            with torch.no_grad():
                stacked = torch.stack([t for _, t in items]).reshape(len(items), -1)
                return {"loss": (xs, stacked.float().mean(1).tolist())}
        except RuntimeError:  # shapes, dtypes or devices differ: the general path
            pass
    groups: dict[str, tuple[list[int], list[Any]]] = {}
    for n, loss in items:
        if isinstance(loss, dict):
            for name, value in loss.items():
                xs, ys = groups.setdefault(f"loss_{name}", ([], []))
                xs.append(n)
                ys.append(value)
        elif loss is not None:
            xs, ys = groups.setdefault("loss", ([], []))
            xs.append(n)
            ys.append(loss)
    out = {}
    for name, (xs, ys) in groups.items():
        if all(isinstance(y, torch.Tensor) for y in ys):
            try:  # the usual case: 0-d tensors of one dtype and device, one sync
                floats = torch.stack(ys).detach().reshape(len(ys), -1).float().mean(1).tolist()
            except RuntimeError:  # mixed shapes, dtypes or devices: one by one
                floats = [float(y.detach().float().mean()) for y in ys]
        else:
            floats = [number(y.mean() if isinstance(y, torch.Tensor) else y) for y in ys]
            floats = [math.nan if f is None else f for f in floats]
        out[name] = (xs, floats)
    return out
