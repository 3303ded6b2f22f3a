"""Layers over time: per-layer statistics and histograms, sampled along a run.

``run.layer_history()`` is a table with one row per layer (each parameter, and each module's
output) and sampled training batch; ``run.layer_histograms(name, what)`` the histograms of
one layer's weights, gradients or outputs over the same samples (one row each, fixed bins).
The :class:`HistoryTracker` here records them.

When it records
    Only while armed: while the dashboard's "Layers over time" panel is open, after
    ``run.track_layers()`` (until ``run.track_layers(False)``), and from the first
    ``run.layer_history()`` call on (a call starts the recording if nothing did). Disarmed,
    its callback is not in the run: a free ``fit()`` nobody asked about pays nothing.

Which batches
    Every training batch while the run is stepped (``run.step(...)``, the Step button);
    while it trains freely, at most one batch every :data:`EVERY_S` seconds (the
    dashboard's publisher rate), decided on the driving thread at the batch's start: a
    batch not sampled costs a clock read. For a sampled batch, forward hooks are put on
    every module for that batch only (a compiled model runs that batch eagerly), the
    weights the optimizer is about to change are copied, and every number is computed on
    the device and read back at the batch's end in one transfer per device.

What a sample holds (row columns :data:`HISTORY_COLUMNS`)
    Parameters: ``norm`` ‖w‖ after the step, ``grad_norm`` ‖g‖ of the gradient the step
    used (taken right before its optimizer stepped; with several optimizers, each at its
    own), ``update_norm`` ‖Δw‖ and ``update_ratio`` ‖Δw‖/‖w‖ of this batch's step (NaN
    for a parameter no optimizer stepped). Modules: ``act_mean``, ``act_std`` of the output
    (finite values), ``dead_frac`` for ReLU-like modules (:data:`DEAD`: the share of units,
    one per output element of a sample, that were exactly 0 for every sample of the batch)
    and ``saturated_frac`` for Tanh (|y| > 0.97) and Sigmoid (y < 0.03 or y > 0.97): the
    share of output values saturated. Other columns are NaN. With several forward passes
    per batch (several optimizers), the last one's output is kept.

Histograms
    :data:`BINS` counts per sample over bins fixed at the layer's first sample (so the
    columns of a heatmap compare): ``[-r, r]`` with ``r`` = :data:`HEADROOM` times the
    largest |value| of that first sample, or ``[0, r]`` when it held no negative value
    (ReLU outputs); later values outside (infinities too) are counted in the end bins, NaN
    not at all.

Memory
    The last :data:`MAX_SAMPLES` samples are kept (a ring). A rewind drops the samples at
    or after the step the run goes on from (what it will redo).
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from luzwidget.core.compiled import named_modules, named_parameters
from luzwidget.core.data import loader_len
from luzwidget.insight.hooks import Hook, ModuleHooks
from luzwidget.insight.stats import first_tensor, grad_norm, norm, numbers, stats
from luzwidget.insight.trackers import Armed

if TYPE_CHECKING:
    import pandas as pd

    from luzwidget.core.context import Context

__all__ = [
    "BINS",
    "DEAD",
    "EVERY_S",
    "HEADROOM",
    "HISTORY_COLUMNS",
    "MAX_SAMPLES",
    "SATURATED",
    "HistoryTracker",
    "Sample",
]

EVERY_S = 0.5
"""While a run trains freely, at most one sampled batch this often (seconds): the rate the
dashboard panels read at (:data:`luzwidget.widgets.inspector.INSPECT_EVERY_S`)."""
MAX_SAMPLES = 1000
"""Samples kept (the oldest dropped first)."""
BINS = 32
"""Bins of each histogram."""
HEADROOM = 1.5
"""Bin range: this times the largest |value| of the layer's first sample."""
DEAD = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU)
"""Modules whose ``dead_frac`` is measured (exact zeros only)."""
SATURATED = {nn.Tanh: (-0.97, 0.97), nn.Sigmoid: (0.03, 0.97)}
"""Modules whose ``saturated_frac`` is measured: outputs below the first or above the second."""
WHATS = ("weights", "grads", "acts")
"""What a histogram is of."""

HISTORY_COLUMNS = [
    "step",
    "epoch",
    "batch",
    "name",
    "kind",
    "module",
    "norm",
    "grad_norm",
    "update_norm",
    "update_ratio",
    "act_mean",
    "act_std",
    "dead_frac",
    "saturated_frac",
]

_NAN = math.nan


@dataclass
class Sample:
    """One sampled training batch.

    Attributes
    ----------
    seq : int
        Its number among the samples taken (never reused, even after a rewind).
    step, epoch, batch : int
        Training batch since the start (1-based), epoch, batch within the epoch.
    params : dict
        ``name -> (module type, norm, grad_norm, update_norm, update_ratio)``.
    modules : dict
        ``name -> (module type, act_mean, act_std, dead_frac, saturated_frac)``.
    hists : dict
        ``(name, what) -> counts`` (an int32 array of :data:`BINS`), ``what`` in
        ``"weights"``, ``"grads"``, ``"acts"``.
    """

    seq: int
    step: int
    epoch: int
    batch: int
    params: dict[str, tuple[str, float, float, float, float]]
    modules: dict[str, tuple[str, float, float, float, float]]
    hists: dict[tuple[str, str], np.ndarray]


class HistoryTracker(Armed):
    """Samples layer statistics and histograms while armed (see the module's docstring).

    Attributes
    ----------
    samples : collections.deque of Sample
        The samples kept, oldest first (at most ``max_samples``).
    edges : dict
        ``(name, what) -> (lo, hi)``: each histogram's range, fixed at its first sample.
    gen : int
        Bumped whenever kept samples are dropped by a rewind (a reader starts over).
    every_s : float
        The free-run sampling period (0: every batch).
    """

    weight = 1_001  # after the other callbacks: Δw includes what they change at after_step

    def __init__(self, run: Any, every_s: float = EVERY_S, max_samples: int = MAX_SAMPLES) -> None:
        super().__init__(run)
        self.every_s = every_s
        self.samples: deque[Sample] = deque(maxlen=max_samples)
        self.edges: dict[tuple[str, str], tuple[float, float]] = {}
        self.gen = 0
        self.seq = 0
        self.tracking = False
        self.hooks = ModuleHooks()
        self._last = -math.inf
        self._on = False
        self._acts: dict[str, tuple[str, list[Any]]] = {}
        self._names: dict[int, str] = {}
        self._grads: dict[int, torch.Tensor | None] = {}
        self._updates: dict[int, torch.Tensor] = {}
        self._hists: dict[tuple[str, str], torch.Tensor] = {}
        self._before: list[tuple[torch.Tensor, torch.Tensor]] = []

    @property
    def max_samples(self) -> int:
        """How many samples are kept."""
        return self.samples.maxlen or 0

    def kept(self) -> list[Sample]:
        """The samples kept, oldest first: a copy, safe to read while the run trains (the
        driving thread appends to :attr:`samples`)."""
        return list(self.samples)

    def track(self, on: bool = True) -> None:
        """Record (``run.track_layers()``) until ``track(False)`` (counted once)."""
        if on != self.tracking:
            self.tracking = on
            (self.subscribe if on else self.unsubscribe)()

    # -- the driving thread -------------------------------------------------------------
    def left(self) -> None:
        self._end_sample()

    def on_train_batch_begin(self, ctx: Context) -> None:
        """Decide whether this batch is sampled; if so, hook every module for it."""
        if self._on:  # a sampled batch that did not end (a retry, a rewind)
            self._end_sample()
        now = time.monotonic()
        if not (self.run.stepping or now - self._last >= self.every_s):
            return
        self._last, self._on = now, True
        if ctx.model is not None:
            self._names = {id(p): name for name, p in named_parameters(ctx.model)}
            self.hooks.install(ctx.model, self._hook)

    def on_train_batch_before_step(self, ctx: Context) -> None:
        """The gradient the current optimizer uses, and its weights before the step."""
        if not self._on or ctx.opt is None:
            return
        params = [p for group in ctx.opt.param_groups for p in group["params"]]
        for p in params:
            self._grads[id(p)] = grad_norm(p)
            if p.grad is not None and id(p) in self._names:
                self._hist(self._names[id(p)], "grads", p.grad)
        self._before = [(p, p.detach().clone()) for p in params]

    def on_train_batch_after_step(self, ctx: Context) -> None:
        """‖Δw‖ of each parameter the step changed (a tensor: no host sync here)."""
        if not self._before:  # not a sampled batch: nothing to compare
            return
        before, self._before = self._before, []
        for p, old in before:
            self._updates[id(p)] = norm(p.detach() - old)

    def on_train_batch_end(self, ctx: Context) -> None:
        """Read the sample back (one transfer per device) and keep it."""
        if self._on:
            self.hooks.remove()
            self._keep(ctx)
            self._end_sample()

    def _end_sample(self) -> None:
        self.hooks.remove()
        self._on = False
        self._acts, self._grads, self._updates, self._hists = {}, {}, {}, {}
        self._names = {}
        self._before = []

    def _hook(self, name: str) -> Hook:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            y = first_tensor(output)
            if y is None or not self._on:
                return
            with torch.no_grad():
                y = y.detach()
                extra = [_dead(module, y), _saturated(module, y)]
                self._acts[name] = (type(module).__name__, [*stats(y)[:2], *extra])
                self._hist(name, "acts", y)

        return hook

    def _hist(self, name: str, what: str, x: torch.Tensor) -> None:
        """Count ``x`` into the fixed bins of ``(name, what)`` (fixed now if new)."""
        with torch.no_grad():
            x = x.detach()
            x = x.abs() if x.is_complex() else x.float()
            key = (name, what)
            if key not in self.edges:  # the first sample: one host read per layer, once
                self.edges[key] = _range(x)
            lo, hi = self.edges[key]
            x = x.clamp(lo, hi)  # into the end bins (inf too); NaN stays NaN: not counted
            try:
                counts = torch.histc(x, bins=BINS, min=lo, max=hi)
            except RuntimeError:  # e.g. deterministic algorithms on CUDA
                counts = torch.histc(x.cpu(), bins=BINS, min=lo, max=hi)
            self._hists[key] = counts

    def _keep(self, ctx: Context) -> None:
        model = ctx.model
        if model is None:
            return
        named = list(named_parameters(model))
        types = _param_types(model)
        for name, p in named:
            self._hist(name, "weights", p)
        grads = [self._grads.get(id(p), grad_norm(p)) for _, p in named]
        values = numbers(
            [norm(p.detach()) for _, p in named]
            + grads
            + [self._updates.get(id(p)) for _, p in named]
            + [v for _, vals in self._acts.values() for v in vals]
        )
        n = len(named)
        params = {}
        for i, (name, _) in enumerate(named):
            w, g, u = values[i], values[n + i], values[2 * n + i]
            r = u / w if w and math.isfinite(w) and not math.isnan(u) else _NAN
            params[name] = (types.get(name, ""), w, g, u, r)
        modules = {}
        for k, (name, (kind, _)) in enumerate(self._acts.items()):
            m, s, dead, sat = values[3 * n + 4 * k : 3 * n + 4 * k + 4]
            modules[name] = (kind, m, s, dead, sat)
        hists = _read_counts(self._hists)
        self._add(ctx, params, modules, hists)

    def _add(self, ctx: Context, params: Any, modules: Any, hists: Any) -> None:
        per_epoch = loader_len(ctx.train_data)
        step = (ctx.epoch - 1) * per_epoch + ctx.iter if per_epoch else self.seq + 1
        if self.samples and self.samples[-1].step >= step:  # a rewind: the run redoes these
            while self.samples and self.samples[-1].step >= step:
                self.samples.pop()
            self.gen += 1
        self.seq += 1
        self.samples.append(Sample(self.seq, step, ctx.epoch, ctx.iter, params, modules, hists))

    # -- tables -------------------------------------------------------------------------
    def frame(self) -> pd.DataFrame:
        """The samples as ``run.layer_history()`` shows them."""
        import pandas as pd

        rows: list[tuple[Any, ...]] = []
        for s in self.kept():
            head = (s.step, s.epoch, s.batch)
            for name, (mod, w, g, u, r) in s.params.items():
                rows.append((*head, name, "parameter", mod, w, g, u, r, *[_NAN] * 4))
            for name, (mod, m, sd, dead, sat) in s.modules.items():
                rows.append((*head, name, "module", mod, *[_NAN] * 4, m, sd, dead, sat))
        return pd.DataFrame(rows, columns=HISTORY_COLUMNS)

    def histograms(self, name: str, what: str) -> pd.DataFrame:
        """``run.layer_histograms(name, what)``: one row per sample, ``counts`` and ``edges``."""
        import pandas as pd

        key = (name, what)
        lo, hi = self.edges.get(key, (_NAN, _NAN))
        edges = np.linspace(lo, hi, BINS + 1) if key in self.edges else None
        rows = [(s.step, s.epoch, s.batch, s.hists[key]) for s in self.kept() if key in s.hists]
        frame = pd.DataFrame(rows, columns=["step", "epoch", "batch", "counts"])
        frame.attrs["edges"] = edges
        return frame

    def names(self, what: str) -> list[str]:
        """The layers with a histogram of ``what``, in model order of the latest sample."""
        kept = self.kept()
        return [name for (name, w) in kept[-1].hists if w == what] if kept else []


# -- helpers ---------------------------------------------------------------------------


def _range(x: torch.Tensor) -> tuple[float, float]:
    """The fixed bins' range for a first sample ``x`` (see the module's docstring)."""
    finite = torch.where(torch.isfinite(x), x, 0.0)
    lo_v, hi_v = (float(v) for v in torch.stack([finite.amin(), finite.amax()]).tolist())
    r = HEADROOM * max(abs(lo_v), abs(hi_v))
    if not r > 0:
        r = 1.0
    return (0.0 if lo_v >= 0 else -r), r


def _dead(module: nn.Module, y: torch.Tensor) -> torch.Tensor | None:
    if not isinstance(module, DEAD) or y.dim() < 1 or y.shape[0] == 0:
        return None
    return (y == 0).all(dim=0).float().mean()


def _saturated(module: nn.Module, y: torch.Tensor) -> torch.Tensor | None:
    for kind, (low, high) in SATURATED.items():
        if isinstance(module, kind):
            return ((y < low) | (y > high)).float().mean()
    return None


def _param_types(model: nn.Module) -> dict[str, str]:
    return {
        f"{prefix}.{pname}" if prefix else pname: type(module).__name__
        for prefix, module in named_modules(model)
        for pname, _ in module.named_parameters(recurse=False)
    }


def _read_counts(hists: dict[tuple[str, str], torch.Tensor]) -> dict[tuple[str, str], np.ndarray]:
    """The counts as int32 arrays; one host transfer per device."""
    by_device: dict[torch.device, list[tuple[tuple[str, str], torch.Tensor]]] = {}
    for key, counts in hists.items():
        by_device.setdefault(counts.device, []).append((key, counts))
    out: dict[tuple[str, str], np.ndarray] = {}
    for pairs in by_device.values():
        stacked = torch.stack([c for _, c in pairs]).cpu().numpy().astype(np.int32)
        for (key, _), row in zip(pairs, stacked, strict=True):
            out[key] = row
    return out
