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

A compiled model (``torch.compile(model)``, ``model.compile()``) is shown as the module
itself: names without ``_orig_mod``, hooks on the original modules, and while hooks are
installed its batches run eagerly (:func:`luzwidget.core.compiled.run_eagerly`: a graph
compiled before would not call them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from luzwidget.core.compiled import named_modules, named_parameters
from luzwidget.core.events import Event
from luzwidget.core.states import RunState
from luzwidget.insight.stats import ROOT, grad_norm, nonfinite_count, norm, numbers, ratio
from luzwidget.insight.trackers import ActivationTracker, Armed, tracker

if TYPE_CHECKING:
    import pandas as pd

    from luzwidget.core.context import Context


__all__ = ["ACTIVATION_COLUMNS", "LAYER_COLUMNS", "ROOT", "LayerTracker", "activations", "layers"]

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


def layers(run: Any, arm: bool = True, latest: bool = False) -> pd.DataFrame:
    """One row per parameter of ``run.ctx.model``; see :meth:`Run.layers`.

    ``latest``: the update columns show the last recorded step even when later steps
    were not recorded (``tracker(run, LayerTracker).recorded`` says which step that was).
    """
    import pandas as pd

    ctx = run.ctx
    layer_tracker = tracker(run, LayerTracker)
    owner = _owners(ctx.optimizers or {})
    types = _module_types(ctx.model)
    named = list(named_parameters(ctx.model))  # the user's names: no DDP or compile prefix
    norms = numbers([norm(p.detach()) for _, p in named])
    grads = numbers([grad_norm(p) for _, p in named])
    updates = numbers([layer_tracker.update_of(p, latest) for _, p in named])
    counts = numbers([nonfinite_count(p) for _, p in named])
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
            ratio(updates[i], norms[i]),
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
    means = numbers([s[2] for _, s in items])
    stds = numbers([s[3] for _, s in items])
    counts = numbers([s[4] for _, s in items])
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
        for prefix, module in named_modules(model)
        for pname, _ in module.named_parameters(recurse=False)
    }
