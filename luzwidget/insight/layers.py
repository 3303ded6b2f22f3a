"""Seeing inside the model: per-parameter norms and the last update, per-module outputs.

``run.layers()`` is a table, one row per parameter: its norm, its gradient's norm, the norm
of the change the last optimizer step made (``update_norm``, ‖Δw‖) and that change relative
to the weight (``update_ratio``, ‖Δw‖/‖w‖), and how many values of the weight or its
gradient are NaN or infinite. Norms and counts are computed when asked, from the tensors as
they are at that moment. The update needs the weights from before the step, so it is
recorded only while a :class:`LayerTracker` is armed:

- a ``run.layers()`` call arms it for the next stretch of driving (the next ``step()``,
  ``resume()`` or ``start()``, until the run pauses or ends again): step, look, step, look
  shows each step's update; a free run started after a ``layers()`` call pays one copy of
  the weights per optimizer step, a free run nobody asked about pays nothing;
- ``tracker.subscribe()`` arms it until ``tracker.unsubscribe()``;
- ``tracker.subscribe(sampled=True)`` (the dashboard's Layers panel, which reads at most
  twice a second while the run trains) records a free run's steps only when asked with
  ``tracker.request()``, one step per request, and then computes the table on the driving
  thread at that batch's end (``tracker.take()`` hands it over: another thread must not
  read gradients while backward and ``zero_grad`` replace them); while the run steps or
  pauses every step is recorded as with a plain subscriber.

While it is disarmed its callback is not in the run (no per-batch work at all). The update
columns are NaN before any step was recorded, for parameters whose last step was not
recorded (the weight changed since, which ``Tensor._version`` tells at no cost: a later
step, a rewind, a loaded checkpoint), and with a module's own ``step()`` (no
``on_train_batch_before_step`` event to record at). ``run.activations()`` does the same for
the output of every module (forward hooks, installed only while armed).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from torch import nn

from luzwidget.core.callback import run_bound
from luzwidget.core.events import Event
from luzwidget.core.states import RunState
from luzwidget.insight.attached import OnDemand, insight_of

if TYPE_CHECKING:
    import pandas as pd

    from luzwidget.core.context import Context

__all__ = ["ActivationTracker", "LayerTracker", "activations", "layers", "tracker"]

LAYER_COLUMNS = [
    "name",
    "module",
    "optimizer",
    "shape",
    "numel",
    "norm",
    "grad_norm",
    "update_norm",
    "update_ratio",
    "nonfinite",
]
ACTIVATION_COLUMNS = ["name", "module", "shape", "mean", "std", "nonfinite"]
ROOT = "(model)"
"""How the model itself is named among its modules (``named_modules()`` calls it ``""``)."""


class Armed(OnDemand):
    """An :class:`OnDemand` callback armed by subscribers, or once for the next drive."""

    def __init__(self, run: Any) -> None:
        super().__init__(run)
        self.subscribers = 0
        self._once = False
        self._drove = False
        self._listening = False

    def subscribe(self) -> None:
        """Keep recording until the matching :meth:`unsubscribe` (counted)."""
        self.subscribers += 1
        self._update()

    def unsubscribe(self) -> None:
        """Undo one :meth:`subscribe`; the last one disarms unless a call armed it."""
        self.subscribers = max(0, self.subscribers - 1)
        self._update()

    def arm_once(self) -> None:
        """Record during the next stretch of driving, until the run pauses or ends again."""
        self._once = True
        self._drove = self.run.state == RunState.RUNNING
        if not self._listening:
            self.run.add_listener(self._state_changed)
            self._listening = True
        self._update()

    def _state_changed(self, run: Any) -> None:
        if run.state == RunState.RUNNING:
            self._drove = True
        elif self._drove:
            self._once = self._drove = False
            run.remove_listener(self._state_changed)
            self._listening = False
            self._update()

    def _update(self) -> None:
        self.want(self.subscribers > 0 or self._once)


class LayerTracker(Armed):
    """Records, while armed, the change each optimizer step makes to each parameter.

    Every step is recorded while a call or a plain subscriber armed it, and while the run
    steps (a step target) or pauses. A subscriber that reads at its own rate (a dashboard
    panel, ``subscribe(sampled=True)``) asks for one step at a time with :meth:`request`:
    while only such subscribers arm it and the run trains freely, the weights are copied
    before the next step after a request and no other.

    Attributes
    ----------
    updates : dict
        ``id(param) -> (param, ‖Δw‖ as a 0-d tensor, param._version after the step)``.
    recorded : tuple of int, optional
        ``(epoch, batch)`` of the last step recorded.
    copies : int
        How many times the weights were copied (one per recorded step).
    table : pandas.DataFrame, optional
        ``layers(run, latest=True)`` computed at the end of the requested batch, until taken.
    """

    weight = 1_000  # after other callbacks: ‖Δw‖ includes what they change at after_step

    def __init__(self, run: Any) -> None:
        super().__init__(run)
        self.updates: dict[int, tuple[torch.Tensor, torch.Tensor, int]] = {}
        self.recorded: tuple[int, int] | None = None
        self.copies = 0
        self.samplers = 0
        self._requested = False
        self._table_due = False
        self.table: pd.DataFrame | None = None
        self._before: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    def subscribe(self, sampled: bool = False) -> None:
        """Keep recording until :meth:`unsubscribe`; ``sampled``: only steps requested."""
        self.samplers += sampled
        super().subscribe()

    def unsubscribe(self, sampled: bool = False) -> None:
        """Undo one :meth:`subscribe` (with the same ``sampled``)."""
        if self.subscribers > 0:
            self.samplers = max(0, self.samplers - sampled)
        super().unsubscribe()

    def request(self) -> None:
        """Record the next optimizer step and compute :attr:`table` at its batch's end."""
        self._requested = True

    def take(self) -> pd.DataFrame | None:
        """The :attr:`table` computed since the last call, or None (no new one)."""
        table, self.table = self.table, None
        return table

    def joined(self) -> None:
        # Armed at a pause right before a step: the weights are still the ones before it.
        self.record_pending()

    def left(self) -> None:
        self._before = None
        self._table_due = False

    def record_pending(self) -> None:
        """At a pause right before a step not recorded yet, copy the weights now."""
        at_step = self.run.event == Event.on_train_batch_before_step
        if self.present and at_step and self._before is None:
            self._copy(self.run.ctx)

    def on_train_batch_before_step(self, ctx: Context) -> None:
        """Copy the weights the current optimizer is about to change (if wanted)."""
        if self._requested or self._every_step():
            self._table_due, self._requested = self._table_due or self._requested, False
            self._copy(ctx)

    def on_train_batch_end(self, ctx: Context) -> None:
        """After a requested step: the table, computed here on the driving thread."""
        if self._table_due:
            self._table_due = False
            self.table = layers(self.run, arm=False, latest=True)

    def _every_step(self) -> bool:
        """Whether each step is recorded: armed by more than sampled readers, or stepping."""
        if self._once or self.subscribers > self.samplers:
            return True
        return bool(self.run.stepping)  # a step target: the user steps

    def _copy(self, ctx: Context) -> None:
        opt = ctx.opt
        if opt is None:
            return
        params = [p for group in opt.param_groups for p in group["params"]]
        self._before = [(p, p.detach().clone()) for p in params]
        self.recorded = (ctx.epoch, ctx.iter)
        self.copies += 1

    def on_train_batch_after_step(self, ctx: Context) -> None:
        """Keep ‖Δw‖ of each parameter the step changed (a tensor: no host sync here)."""
        before, self._before = self._before, None
        for p, old in before or ():
            delta = norm(p.detach() - old)
            self.updates[id(p)] = (p, delta, p._version)

    def update_of(self, p: torch.Tensor, latest: bool = False) -> torch.Tensor | None:
        """‖Δw‖ of ``p``'s last step, or None if not recorded or stale.

        ``latest``: the last step recorded even if later ones changed ``p`` since.
        """
        entry = self.updates.get(id(p))
        if entry is None or entry[0] is not p or (entry[2] != p._version and not latest):
            return None
        return entry[1]


class ActivationTracker(Armed):
    """Keeps, while armed, the statistics of each module's last output (forward hooks).

    Attributes
    ----------
    stats : dict
        ``module name -> (module type, shape, mean, std, non-finite count)`` of the last
        forward pass recorded; the numbers are 0-d tensors until read.
    """

    def __init__(self, run: Any) -> None:
        super().__init__(run)
        self.stats: dict[str, tuple[str, tuple[int, ...], Any, Any, Any]] = {}
        self.handles: list[Any] = []

    def joined(self) -> None:
        for name, module in self.run.ctx.model.named_modules():
            self.handles.append(module.register_forward_hook(self._hook(name or ROOT)))

    def left(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()

    def _hook(self, name: str) -> Any:
        @run_bound
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            tensor = first_tensor(output)
            if tensor is not None:
                self.stats[name] = (type(module).__name__, tuple(tensor.shape), *_stats(tensor))

        return hook


_A = TypeVar("_A", bound=Armed)


def tracker(run: Any, kind: type[_A] = LayerTracker) -> _A:  # type: ignore[assignment]  # the default
    """The run's view of ``kind`` (made on first use, kept by its insight feature)."""
    views = insight_of(run).views
    found = views.get(kind)
    if found is None:
        found = views[kind] = kind(run)
    return found  # type: ignore[return-value]  # views[kind] is a kind


def layers(run: Any, arm: bool = True, latest: bool = False) -> pd.DataFrame:
    """One row per parameter of ``run.ctx.model``; see :meth:`Run.layers`.

    ``latest``: the update columns show the last recorded step even when later steps
    were not recorded (``tracker(run).recorded`` says which step that was).
    """
    import pandas as pd

    ctx = run.ctx
    layer_tracker = tracker(run, LayerTracker)
    owner = _owners(ctx.optimizers or {})
    types = _module_types(ctx.model)
    named = list(ctx.model.named_parameters())
    norms = _numbers([norm(p.detach()) for _, p in named])
    grads = _numbers([_grad_norm(p) for _, p in named])
    updates = _numbers([layer_tracker.update_of(p, latest) for _, p in named])
    counts = _numbers([_nonfinite(p) for _, p in named])
    rows = [
        (
            name,
            types.get(name, ""),
            owner.get(id(p)),
            tuple(p.shape),
            p.numel(),
            norms[i],
            grads[i],
            updates[i],
            _ratio(updates[i], norms[i]),
            int(counts[i]),
        )
        for i, (name, p) in enumerate(named)
    ]
    if arm and run.state != RunState.DONE:  # a done run drives no more (until extended)
        layer_tracker.arm_once()
    frame = pd.DataFrame(rows, columns=LAYER_COLUMNS)
    frame.attrs["update_of"] = layer_tracker.recorded  # (epoch, batch) of the last step recorded
    return frame


def activations(run: Any, arm: bool = True) -> pd.DataFrame:
    """One row per module whose output was recorded; see :meth:`Run.activations`."""
    import pandas as pd

    act = tracker(run, ActivationTracker)
    items = list(act.stats.items())
    means = _numbers([s[2] for _, s in items])
    stds = _numbers([s[3] for _, s in items])
    counts = _numbers([s[4] for _, s in items])
    rows = [
        (name, s[0], s[1], means[i], stds[i], int(counts[i])) for i, (name, s) in enumerate(items)
    ]
    if arm and run.state != RunState.DONE:
        act.arm_once()
    return pd.DataFrame(rows, columns=ACTIVATION_COLUMNS)


# -- helpers ---------------------------------------------------------------------------


def _owners(optimizers: dict[str, torch.optim.Optimizer]) -> dict[int, str]:
    """``id(param) -> name of the optimizer that steps it``."""
    return {
        id(p): name
        for name, opt in optimizers.items()
        for group in opt.param_groups
        for p in group["params"]
    }


def _module_types(model: nn.Module) -> dict[str, str]:
    """``parameter name -> class name of the module that holds it`` (e.g. ``"Linear"``)."""
    return {
        f"{prefix}.{pname}" if prefix else pname: type(module).__name__
        for prefix, module in model.named_modules()
        for pname, _ in module.named_parameters(recurse=False)
    }


def first_tensor(output: Any) -> torch.Tensor | None:
    """The output itself if a tensor, else the first tensor in a tuple, list or dict."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, tuple | list):
        for item in output:
            if isinstance(item, torch.Tensor):
                return item
    return None


def _stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean and std of the finite values (NaN if none), and the count of the others."""
    with torch.no_grad():
        x = x.detach()
        x = x.abs() if x.is_complex() else x.float()
        finite = torch.isfinite(x)
        n = finite.sum()
        kept = torch.where(finite, x, 0.0)
        mean = kept.sum() / n
        var = (torch.where(finite, x - mean, 0.0) ** 2).sum() / (n - 1)
        return mean, var.sqrt(), x.numel() - n


def norm(x: torch.Tensor) -> torch.Tensor:
    """‖x‖ as a float32 0-d tensor that does not overflow for huge finite values.

    Squaring values above ~1.8e19 overflows float32, so ‖x‖ is computed as
    ``max|x| * ‖x / max|x|‖`` (inf or NaN only when ``x`` holds one; no host sync).
    """
    with torch.no_grad():
        x = x.detach()
        x = x.abs() if x.is_complex() else x.float()
        scale = x.abs().amax() if x.numel() else torch.zeros((), device=x.device)
        safe = torch.where(torch.isfinite(scale) & (scale > 0), scale, torch.ones_like(scale))
        out: torch.Tensor = torch.linalg.vector_norm(x / safe) * safe
        return out


def _grad_norm(p: torch.Tensor) -> torch.Tensor | None:
    return None if p.grad is None else norm(p.grad)


def _nonfinite(p: torch.Tensor) -> torch.Tensor:
    count = (~torch.isfinite(p.detach())).sum()
    if p.grad is not None:
        count = count + (~torch.isfinite(p.grad)).sum().to(count.device)
    return count


def _numbers(values: list[torch.Tensor | None]) -> list[float]:
    """Python floats (NaN for None), with one host transfer per device."""
    out = [math.nan] * len(values)
    by_device: dict[torch.device, list[tuple[int, torch.Tensor]]] = {}
    for i, v in enumerate(values):
        if v is not None:
            by_device.setdefault(v.device, []).append((i, v))
    for pairs in by_device.values():
        stacked = torch.stack([v.reshape(()).double() for _, v in pairs])
        for (i, _), value in zip(pairs, stacked.tolist(), strict=True):
            out[i] = value
    return out


def _ratio(update: float, norm: float) -> float:
    if math.isnan(update) or norm == 0 or not math.isfinite(norm):
        return math.nan
    return update / norm
