"""The learning-rate finder: train briefly while raising the learning rate each batch.

``setup(...).lr_finder(data)`` trains a fresh copy of the model for ``steps`` batches, the
learning rate going from ``start_lr`` to ``end_lr``, and records the loss at each one. It
runs the ordinary loop (a callback sets the learning rate and ends the run), so it takes
``fit``'s arguments (``dataloader_options``, ``accelerator``, ``callbacks``, ``verbose``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from luzwidget.core.callback import Callback
from luzwidget.core.context import optimizer_names
from luzwidget.core.exceptions import ConfigError, StopFit
from luzwidget.session import build_run, drive_to_end
from luzwidget.storage.checkpoint import get_rng_states, set_rng_states

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from luzwidget.core.context import Context
    from luzwidget.module import Setup

__all__ = ["LRFinderResult", "lr_finder", "smooth"]


def lr_finder(
    spec: Setup,
    data: Any,
    steps: int = 100,
    start_lr: float = 1e-7,
    end_lr: float = 1e-1,
    log_spaced: bool = True,
    *,
    diverge: float | None = 4.0,
    opt_name: str | list[str] | None = None,
    **fit_kwargs: Any,
) -> LRFinderResult:
    """Train a fresh model for ``steps`` batches, raising the learning rate each batch.

    Parameters
    ----------
    spec
        What :func:`~luzwidget.setup` returned. It is not changed: a built module is
        copied, and the RNG states are restored afterwards, so a later ``fit`` starts
        exactly as if the finder had not run.
    data
        Training data, as for ``fit`` (several epochs are used if it has fewer batches).
    steps
        Number of batches (learning rates) to try.
    start_lr, end_lr
        First and last learning rate.
    log_spaced
        Space the learning rates evenly on a log scale (else linearly).
    diverge
        Stop once the smoothed loss exceeds this many times its best value (checked after
        the first tenth of the steps, at most 10), or is not finite. None: always run all
        ``steps``.
    opt_name
        Which optimizer(s) get the learning rates (default: all of them). Every parameter
        group of those gets the same learning rate at each step, as in luz.
    **fit_kwargs
        ``fit``'s other arguments: ``dataloader_options``, ``accelerator``, ``callbacks``,
        ``verbose``.

    Returns
    -------
    LRFinderResult
        ``.frame`` (columns lr, loss), ``.suggested_lr``, ``.plot()``.
    """
    lrs = _schedule(steps, start_lr, end_lr, log_spaced)
    if diverge is not None and (not isinstance(diverge, int | float) or diverge <= 1):
        raise ConfigError(f"lr_finder: diverge must be a number > 1 or None, got {diverge!r}.")
    if "valid_data" in fit_kwargs or "epochs" in fit_kwargs:
        raise ConfigError("lr_finder trains for `steps` batches only; drop valid_data/epochs.")
    sweep = _Sweep(lrs, opt_name, diverge)
    kwargs = dict(fit_kwargs)
    extra = kwargs.pop("callbacks", None) or []
    kwargs["callbacks"] = [*(extra if isinstance(extra, list | tuple) else [extra]), sweep]
    rng = get_rng_states()
    try:
        run = build_run(_fresh(spec), data, steps, kwargs)
        drive_to_end(run)
    finally:
        set_rng_states(rng)
    return LRFinderResult(run.ctx.records, diverged=sweep.diverged)


def _schedule(steps: Any, start_lr: Any, end_lr: Any, log_spaced: bool) -> np.ndarray:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ConfigError(f"lr_finder: steps must be an int >= 2, got {steps!r}.")
    for name, value in (("start_lr", start_lr), ("end_lr", end_lr)):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not (math.isfinite(value) and value > 0)
        ):
            raise ConfigError(f"lr_finder: {name} must be a finite number > 0, got {value!r}.")
    if end_lr <= start_lr:
        raise ConfigError(f"lr_finder: end_lr={end_lr} must be larger than start_lr={start_lr}.")
    if log_spaced:
        return np.geomspace(start_lr, end_lr, steps)
    return np.linspace(start_lr, end_lr, steps)


def _fresh(spec: Setup) -> Setup:
    """``spec`` with its own copy of a built module (and of an optimizer built on it)."""
    if not isinstance(spec.module, torch.nn.Module):
        return spec  # a class: each run builds a new model
    fresh = copy.copy(spec)
    fresh.module = copy.deepcopy(spec.module)
    opt = spec.optimizer
    if isinstance(opt, torch.optim.Optimizer):
        twin = dict(zip(map(id, spec.module.parameters()), fresh.module.parameters(), strict=True))
        groups = [
            {
                **{k: v for k, v in g.items() if k != "params"},
                "params": [twin[id(p)] for p in g["params"]],
            }
            for g in opt.param_groups
        ]
        # The subclass's own constructor (SGD(params, lr=...)), not Optimizer(params, defaults):
        # each group carries all its settings.
        build: Callable[..., torch.optim.Optimizer] = type(opt)
        fresh.optimizer = build(groups)
    return fresh


class _Sweep(Callback):
    """Set the learning rate before each batch; record it with the loss; stop at the end."""

    run_bound = True  # luzwidget's own, for this run only: a branch does not copy it

    weight = 90

    def __init__(self, lrs: np.ndarray, opt_name: str | list[str] | None, diverge: float | None):
        self.lrs = [float(lr) for lr in lrs]
        self.opt_names = [opt_name] if isinstance(opt_name, str) else opt_name
        self.diverge = diverge
        self.diverged = False
        self.i = 0
        self.avg = 0.0
        self.best = math.inf

    def on_fit_begin(self, ctx: Context) -> None:
        names = optimizer_names(ctx, self.opt_names, "lr_finder")
        self.opts = [ctx.optimizers[n] for n in names]

    def on_train_batch_begin(self, ctx: Context) -> None:
        lr = self.lrs[self.i]
        for opt in self.opts:
            for group in opt.param_groups:
                group["lr"] = lr

    def on_train_batch_end(self, ctx: Context) -> None:
        loss = ctx.loss
        values = {k: float(v) for k, v in loss.items()} if isinstance(loss, dict) else {}
        total = sum(values.values()) if values else float(loss)
        ctx.log("lr_finder", "lr", self.lrs[self.i])
        ctx.log("lr_finder", "loss", total)
        for name, value in values.items():
            ctx.log("lr_finder", f"loss_{name}", value)
        self.i += 1
        self.avg = 0.9 * self.avg + 0.1 * total
        smoothed = self.avg / (1 - 0.9**self.i)
        self.best = min(self.best, smoothed)
        warm = self.i > min(10, len(self.lrs) // 10)  # early averages are too noisy to judge
        if self.diverge is not None and (
            not math.isfinite(smoothed) or (warm and smoothed > self.diverge * self.best)
        ):
            self.diverged = True
            raise StopFit(f"the loss diverged at lr={self.lrs[self.i - 1]:.3g}")
        if self.i >= len(self.lrs):
            raise StopFit("lr_finder: all learning rates tried")


def smooth(values: Any, beta: float = 0.9) -> np.ndarray:
    """Exponential moving average of ``values``, bias-corrected (as in Adam)."""
    out = np.empty(len(values))
    avg = 0.0
    for i, value in enumerate(values, 1):
        avg = beta * avg + (1 - beta) * float(value)
        out[i - 1] = avg / (1 - beta**i)
    return out


class LRFinderResult:
    """What :func:`lr_finder` found: the (lr, loss) table, a suggestion and a plot.

    Attributes
    ----------
    frame : pandas.DataFrame
        Columns ``lr`` and ``loss`` (and ``loss_<name>`` per optimizer when several), one
        row per batch; ``result["lr"]`` is a column.
    records : dict
        The run's records; ``records["lr_finder"]`` holds the same lists.
    diverged : bool
        True if the sweep stopped early because the loss blew up.
    """

    def __init__(self, records: dict[str, Any], diverged: bool = False) -> None:
        import pandas as pd

        self.records = records
        self.frame: pd.DataFrame = pd.DataFrame(
            dict(records.get("lr_finder", {})), dtype=float
        ).reindex(columns=_columns(records))
        self.diverged = diverged

    def smoothed(self, beta: float = 0.9) -> np.ndarray:
        """The loss as an exponential moving average (bias-corrected)."""
        return smooth(self.frame["loss"].to_numpy(), beta)

    def suggestion(self, beta: float = 0.9) -> float | None:
        """The lr where the smoothed loss falls fastest (per log-lr), before its minimum.

        The first tenth of the points (where the average has seen few batches) is left
        out. None when there are too few finite points to tell.
        """
        lr = self.frame["lr"].to_numpy()
        loss = self.smoothed(beta)
        finite = np.isfinite(loss)
        lr, loss = lr[finite], loss[finite]
        start = len(loss) // 10
        end = int(np.argmin(loss)) + 1
        if end - start < 3:
            return None
        slope = np.gradient(loss[start:end], np.log10(lr[start:end]))
        return float(lr[start + int(np.argmin(slope))])

    @property
    def suggested_lr(self) -> float | None:
        """:meth:`suggestion` with beta 0.9."""
        return self.suggestion()

    def plot(self, beta: float = 0.9, raw: bool = True) -> go.Figure:
        """The smoothed loss against the learning rate (log axis), the suggestion marked."""
        from luzwidget.plots import lr_finder_figure

        return lr_finder_figure(
            self.frame["lr"].to_numpy(),
            self.frame["loss"],
            self.smoothed(beta),
            self.suggestion(beta),
            beta=beta,
            raw=raw,
        )

    def __getitem__(self, column: str) -> pd.Series:
        return self.frame[column]

    def __len__(self) -> int:
        return len(self.frame)

    def __repr__(self) -> str:
        suggested = self.suggested_lr
        shown = f"{suggested:.3g}" if suggested is not None else "none"
        end = " (stopped: loss diverged)" if self.diverged else ""
        return f"<LRFinderResult {len(self)} lrs, suggested lr {shown}{end}>"


def _columns(records: dict[str, Any]) -> list[str]:
    found = list(records.get("lr_finder", {}))
    return ["lr", "loss", *[c for c in found if c not in ("lr", "loss")]]
