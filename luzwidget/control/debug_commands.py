"""The command table's entries for debugging backwards: ``step_back``, ``find``,
``sample_losses`` and ``sentinel`` (see :mod:`luzwidget.control.commands`)."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import TYPE_CHECKING

from luzwidget.control.command import Answer, status
from luzwidget.core.exceptions import ConfigError

if TYPE_CHECKING:
    from luzwidget.control.run import Run

__all__ = ["find", "sample_losses", "sentinel", "step_back"]


def step_back(run: Run, what: str, n: int) -> Answer:
    """``run.step_back(what, n)``; answers where it went, what it replayed, the status."""
    landing = run.step_back(what, n)
    said = f"{run.reason}: {landing.replayed} batches replayed from {landing.base}"
    return Answer(f"{said} in {landing.seconds:.2f} s", status(run))


def find(
    run: Run, condition: str, k: float | None, window: int | None,
    above: float | None, below: float | None,
) -> Answer:  # fmt: skip
    """``run.find(condition, ...)``; answers the batch found (None: none)."""
    given = {"k": k, "window": window, "above": above, "below": below}
    found = run.find(condition, **{n: v for n, v in given.items() if v is not None})
    if found is None:
        return Answer(f"{condition}: not in the run's history (it is where it was)", None)
    return Answer(f"found {found}", {**asdict(found), "value": _finite_or_none(found.value)})


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def sample_losses(run: Run) -> Answer:
    """The current batch's per-sample losses and dataset indices (None where unknown)."""
    losses, indices = run.sample_losses(), run.ctx.indices
    return Answer("the batch's samples", {
        "losses": None if losses is None else [_finite_or_none(v) for v in losses.tolist()],
        "indices": None if indices is None else indices.tolist(),
    })  # fmt: skip


def sentinel(run: Run, check: str, on: bool) -> Answer:
    """Turn a sentinel check (or ``"all"``) on or off; answers every check's state."""
    watch = run.breakpoints.sentinel
    if watch is None:
        raise ConfigError("sentinel: this run has none (a Run built by hand has no features).")
    (watch.enable if on else watch.disable)(check)
    return Answer(f"sentinel {check} {'on' if on else 'off'}", dict(watch.checks))
