"""The sentinel: checks that watch for silent bugs while a run trains (``breakpoints.sentinel``).

Each check is a named breakpoint: when it finds something, the run pauses at the next
event boundary (under several processes: rank 0's finding pauses every rank, at the next
batch they agree on) and ``run.reason`` names the check and the culprit (the parameter, the
module, the optimizer), e.g. ``"sentinel no_grad: parameter head.bias has no gradient
after backward (the loss does not reach it) at on_train_batch_before_step (epoch 1, batch
1)"``; the Layers panel lights its row. A blocking ``fit()`` says it once and goes on.
Each check fires once per fit (again after the run went back before it).

=====================  =======  =====================================================  =======
check                  default  what it finds                                          cost
=====================  =======  =====================================================  =======
``not_in_optimizer``   on       a trainable parameter no optimizer holds               at fit
                                                                                       and
                                                                                       epoch
                                                                                       start
``not_in_model``       on       an optimizer parameter that is not the model's         same
``no_grad``            on       a trainable parameter of the stepping optimizer whose  first
                                gradient is None after backward                        steps
``no_update``          on       an optimizer step that changed no weight, with         first
                                non-zero gradients and lr > 0                          steps
``zero_grads``         on       every gradient exactly zero                            first
                                                                                       steps
``wrong_mode``         on       the model in eval mode while training, or in train     per
                                mode while validating                                  batch
``detached_loss``      on       a training loss with no ``grad_fn`` (nothing for       per
                                backward to follow)                                    batch
``label_range``        on       integer labels outside the output's class range        each
                                (``-100`` and the loss's ``ignore_index`` allowed)     pass's
                                                                                       first
                                                                                       batch
``grad_explosion``     off      a gradient norm above ``explosion`` times the median   every
                                of the last 100 steps (and all-zero gradients at any   step
                                step)
``rank_drift``         on with  the ranks' weights differing (a checksum per           every
                       several  parameter all-reduced every ``rank_every`` steps)      100
                       ranks                                                           steps
=====================  =======  =====================================================  =======

"First steps" are the first :attr:`Sentinel.first_steps` optimizer steps of a fit (2):
a bug that shows there shows at every step. The per-batch checks read a flag and an
attribute; the first-steps checks copy the weights twice; ``grad_explosion`` computes the
gradient norm at every step (one host sync), which is why it is off by default.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from luzwidget.core.engine import engine_of
from luzwidget.core.events import Event
from luzwidget.core.exceptions import ConfigError
from luzwidget.insight.attached import OnDemand
from luzwidget.insight.checks import (
    FirstSteps,
    GradExplosion,
    RankDrift,
    bad_labels,
    optimizer_mismatch,
)

if TYPE_CHECKING:
    from luzwidget.core.context import Context

__all__ = ["CHECKS", "Finding", "Sentinel"]

CHECKS = {
    "not_in_optimizer": True,
    "not_in_model": True,
    "no_grad": True,
    "no_update": True,
    "zero_grads": True,
    "wrong_mode": True,
    "detached_loss": True,
    "label_range": True,
    "grad_explosion": False,
    "rank_drift": True,
}
"""Every check, and whether it is on by default (``rank_drift`` acts with several ranks)."""

_MODEL = ("module", "(model)")
_EVAL_IN_TRAINING = (
    "the model is in eval mode while training (model.eval() was called and not undone: "
    "dropout and batch norm act as in validation)"
)
_TRAIN_IN_VALIDATION = (
    "the model is in train mode while validating (model.train() was called during "
    "validation: dropout is on, batch norm statistics move)"
)
_DETACHED = (
    "the loss has no grad_fn: it was detached (.item(), .detach(), torch.no_grad(), a "
    "callback that replaced ctx.loss_grad: callbacks run under no_grad) or built from "
    "tensors that need no gradient, so backward() has nothing to follow"
)


@dataclass(frozen=True)
class Finding:
    """What a check found: ``check``, the ``culprit`` (``(kind, name)``: ``"parameter"``,
    ``"module"`` or ``"optimizer"``), a ``message``, and where (``epoch``, ``batch``, the
    ``event``, ``phase``)."""

    check: str
    culprit: tuple[str, str]
    message: str
    epoch: int
    batch: int
    event: str
    phase: str = "train"

    @property
    def reason(self) -> str:
        """The run's reason when it pauses for this finding."""
        return (
            f"sentinel {self.check}: {self.message} at {self.event} (epoch {self.epoch}, "
            f"batch {self.batch})"
        )


class Sentinel(OnDemand):
    """The checks of one run (``run.breakpoints.sentinel``); see the module's docstring.

    Attributes
    ----------
    checks : dict
        ``{name: on}`` for every check; change them with :meth:`enable` / :meth:`disable`.
    findings : list of Finding
        What was found in this run so far, in order.
    origin : tuple or None
        The culprit of the finding the run paused at (``(kind, name)``), for the Layers panel.
    first_steps : int
        Optimizer steps of a fit the first-steps checks look at (default 2).
    explosion : float
        ``grad_explosion`` fires above this many times the running median (default 10).
    rank_every : int
        ``rank_drift`` compares the ranks every this many optimizer steps (default 100).
    """

    weight = 5_000  # after the user's callbacks of an event: what they changed is seen

    def __init__(self, run: Any) -> None:
        super().__init__(run)
        self.checks = dict(CHECKS)
        self.findings: list[Finding] = []
        self.origin: tuple[str, str] | None = None
        self.first_steps = 2
        self.explosion = 10.0
        self.rank_every = 100
        self.pending: Finding | None = None
        self._fired: dict[str, tuple[int, int]] = {}
        self._values: dict[str, Any] = {}
        self.first = FirstSteps(run, self)
        self.explode = GradExplosion(run, self)
        self.drift = RankDrift(run, self)
        self.want(True)

    # -- turning checks on and off ----------------------------------------------------------
    def enable(self, *names: str) -> None:
        """Turn checks on (``"all"``: every one)."""
        self._set(names, True)

    def disable(self, *names: str) -> None:
        """Turn checks off (``"all"``: every one; the sentinel then leaves the run)."""
        self._set(names, False)

    def _set(self, names: Iterable[str], on: bool) -> None:
        chosen = list(CHECKS) if "all" in names else list(names)
        unknown = [n for n in chosen if n not in CHECKS]
        if unknown or not chosen:
            what = f"unknown check {unknown[0]!r}" if unknown else "no check named"
            raise ConfigError(f"sentinel: {what}; the checks are {', '.join(CHECKS)} (or 'all').")
        for name in chosen:
            self.checks[name] = on
        self.want(any(self.checks.values()))
        self.explode.want(self.wanted and self.checks["grad_explosion"])
        if not self.wanted:
            self.first.want(False)
            self.drift.want(False)

    def __repr__(self) -> str:
        on = [n for n, v in self.checks.items() if v]
        return f"Sentinel({', '.join(on) or 'off'})"

    # -- findings ---------------------------------------------------------------------------
    def found(self, check: str, culprit: tuple[str, str], message: str, ctx: Context) -> None:
        """A check found something: pause at the next boundary (once per fit per check;
        never in a replay, whose breakpoints are off)."""
        if not self.checks.get(check) or self.run.breakpoints.sentinel is not self:
            return
        where = (int(ctx.epoch), int(ctx.iter))
        fired = self._fired.get(check)
        if fired is not None and where > fired:
            return  # said already in this fit (unless the run went back before it)
        self._fired[check] = where
        event = self.run.event.value if self.run.event is not None else ""
        phase = "train" if ctx.training else "valid"
        finding = Finding(check, culprit, message, where[0], where[1], event, phase)
        if ctx.world_size > 1 and ctx.rank != 0:
            self.findings.append(finding)  # rank 0 finds it too and pauses every rank
            return
        self.pending = finding
        self.run.boundary.listen()  # the loop yields at its next event: the pause is there

    def hit(self, event: Event, ctx: Context) -> str | None:
        """Why to pause after ``event`` (a finding since the last boundary), or None."""
        finding, self.pending = self.pending, None
        if finding is None:
            return None
        finding = Finding(finding.check, finding.culprit, finding.message, finding.epoch,
                          finding.batch, event.value, finding.phase)  # fmt: skip
        self.findings.append(finding)
        self.origin = finding.culprit
        return finding.reason

    # -- the run's events ---------------------------------------------------------------------
    def joined(self) -> None:
        self._values = engine_of(self.run.ctx).values

    def on_fit_begin(self, ctx: Context) -> None:
        """A fit begins: every check may fire again; the first steps are watched."""
        self._fired.clear()
        self._values = engine_of(ctx).values
        self._static(ctx)
        self.first.start(self.first_steps)
        self.explode.want(self.checks["grad_explosion"], now=True)
        self.drift.want(self.checks["rank_drift"] and ctx.world_size > 1, now=True)

    def on_train_begin(self, ctx: Context) -> None:
        """Each epoch: the parameters and the optimizers still go together."""
        self._static(ctx)

    def _static(self, ctx: Context) -> None:
        mismatch = optimizer_mismatch(ctx)
        if mismatch is not None:
            check, culprit, message = mismatch
            self.found(check, culprit, message, ctx)

    def on_train_batch_after_pred(self, ctx: Context) -> None:
        """Per batch: the model's mode; the labels at a pass's first (before the loss
        reads them: a CUDA loss would stop the process at a label out of range)."""
        v, checks = self._values, self.checks
        if checks["wrong_mode"] and not v["model"].training:
            self.found("wrong_mode", _MODEL, _EVAL_IN_TRAINING, ctx)
        if checks["label_range"] and v["iter"] == 1:
            self._labels(ctx)

    def on_train_batch_before_backward(self, ctx: Context) -> None:
        """Per batch: the loss has a graph for backward to follow."""
        loss = self._values["loss_grad"]
        if self.checks["detached_loss"] and type(loss) is torch.Tensor and not loss.requires_grad:
            self.found("detached_loss", _MODEL, _DETACHED, ctx)

    def on_valid_batch_after_pred(self, ctx: Context) -> None:
        """Per validation batch: the model's mode; the labels at the pass's first."""
        v = self._values
        if self.checks["wrong_mode"] and v["model"].training:
            self.found("wrong_mode", _MODEL, _TRAIN_IN_VALIDATION, ctx)
        if self.checks["label_range"] and v["iter"] == 1:
            self._labels(ctx)

    def _labels(self, ctx: Context) -> None:
        bad = bad_labels(ctx.pred, ctx.target, ctx.loss_fn)
        if bad is not None:
            self.found("label_range", _MODEL, bad, ctx)
