"""Optimizers with several parameter groups: every group is edited, scheduled, swept and saved.

Each test uses an optimizer whose two groups have different learning rates (the hidden
layer at ``LR0``, the output layer at a tenth of it), so that anything that reads or
writes only ``param_groups[0]`` shows.

``run.set_lr(x)`` sets every group to ``x``; ``run.set_lr(x, keep_ratios=True)`` scales
every group so that the first gets ``x`` and the ratios stay.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.optim.lr_scheduler import StepLR

import luzwidget as lw
from luzwidget.callbacks import LRScheduler, ModelCheckpoint, ResumeFromCheckpoint
from luzwidget.core.exceptions import ConfigError
from luzwidget.core.summaries import optimizer_summary
from luzwidget.lr_finder import lr_finder
from luzwidget.widgets.commands import edit_values, handle_command
from tests.helpers import MLP, E, Recorder, make_data, snapshot

LR0 = 0.05
LR1 = LR0 / 10
OPTS = {"batch_size": 16}
X, Y = make_data(32)


def two_groups(model: MLP, lr: float = LR0) -> torch.optim.SGD:
    """Plain SGD, the hidden layer at ``lr``, the output layer at ``lr / 10``."""
    groups: list[dict[str, Any]] = [
        {"params": model.net[0].parameters()},
        {"params": model.net[2].parameters(), "lr": lr / 10},
    ]
    return torch.optim.SGD(
        groups,
        lr=lr,
    )


class TwoGroups(MLP):
    """An MLP whose optimizer (built by the module, fresh for each run) has two groups."""

    def set_optimizers(self, lr: float = LR0) -> torch.optim.Optimizer:
        return two_groups(self, lr)


def spec(module: type[nn.Module] = TwoGroups) -> lw.Setup:
    return lw.setup(module, loss=nn.MSELoss()).set_opt_hparams(lr=LR0)


def lrs(opt: torch.optim.Optimizer) -> list[float]:
    return [float(g["lr"]) for g in opt.param_groups]


def close(seen: list[list[float]], expected: list[list[float]]) -> bool:
    """``seen == expected`` up to float rounding, list by list."""
    return len(seen) == len(expected) and all(
        s == pytest.approx(e) for s, e in zip(seen, expected, strict=True)
    )


def run_lrs(run: Any) -> list[float]:
    return lrs(run.ctx.optimizers["opt"])


def _run(epochs: int = 2, callbacks: list[Any] | None = None, **kwargs: Any) -> lw.Run:
    torch.manual_seed(0)
    return spec(**kwargs).run(
        (X, Y), epochs=epochs, callbacks=callbacks, verbose=False, dataloader_options=OPTS
    )


class StepProbe(Recorder):
    """Weights at each ``train_batch_begin`` and ``after_step``, grads at ``before_step``."""

    def __init__(self) -> None:
        super().__init__()
        self.begin: dict[str, torch.Tensor] = {}
        self.grads: dict[str, torch.Tensor] = {}
        self.after: dict[str, torch.Tensor] = {}

    def record(self, ctx: lw.Context, event: Any) -> None:
        if event is E.on_train_batch_begin:
            self.begin = snapshot(ctx.model)
        if event is E.on_train_batch_before_step:
            self.grads = {n: p.grad.detach().clone() for n, p in ctx.model.named_parameters()}
        if event is E.on_train_batch_after_step:
            self.after = snapshot(ctx.model)
        super().record(ctx, event)

    def check_step(self, per_group: list[float]) -> None:
        """The last step moved each group's weights by its own ``lr * grad`` (plain SGD)."""
        group_of = {"net.0.weight": 0, "net.0.bias": 0, "net.2.weight": 1, "net.2.bias": 1}
        for name, weight in self.after.items():
            lr = per_group[group_of[name]]
            torch.testing.assert_close(weight, self.begin[name] - lr * self.grads[name])


# -- set_lr ---------------------------------------------------------------------------------


def test_set_lr_while_paused_sets_every_group_and_the_next_step_uses_it() -> None:
    probe = StepProbe()
    run = _run(callbacks=[probe])
    run.step("batch")
    probe.check_step([LR0, LR1])
    run.set_lr(0.2)
    assert run_lrs(run) == [0.2, 0.2]
    assert run.ctx.opt_hparams["lr"] == 0.2
    run.step("batch")
    probe.check_step([0.2, 0.2])


def test_set_lr_keep_ratios_scales_every_group_so_the_first_gets_lr() -> None:
    probe = StepProbe()
    run = _run(callbacks=[probe])
    run.step("batch")
    run.set_lr(0.2, keep_ratios=True)
    assert run_lrs(run)[0] == 0.2
    assert run_lrs(run) == pytest.approx([0.2, 0.02])
    run.step("batch")
    probe.check_step([0.2, 0.02])
    run.set_lr(0.4)  # the default again: every group gets 0.4
    assert run_lrs(run) == [0.4, 0.4]


def test_set_lr_refuses_keep_ratios_that_cannot_hold() -> None:
    run = _run()
    run.step("batch")
    with pytest.raises(ConfigError, match=r"set_lr: keep_ratios must be True or False, got 1"):
        run.set_lr(0.2, keep_ratios=1)  # type: ignore[arg-type]
    run.ctx.optimizers["opt"].param_groups[0]["lr"] = 0.0  # a frozen first group
    with pytest.raises(ConfigError, match=r"first parameter group of 'opt' has lr=0\.0"):
        run.set_lr(0.2, keep_ratios=True)
    assert run_lrs(run) == [0.0, LR1]
    run.set_lr(0.2)
    assert run_lrs(run) == [0.2, 0.2]


class Gate:
    """Blocks the model's forward at one call until released (the run is mid-step)."""

    def __init__(self, at: int) -> None:
        self.at = at
        self.calls = 0
        self.reached = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> None:
        self.calls += 1
        if self.calls == self.at:
            self.reached.set()
            assert self.release.wait(10)


@pytest.mark.parametrize(("keep_ratios", "after"), [(False, [0.5, 0.5]), (True, [0.5, 0.05])])
def test_set_lr_while_running_in_the_background_reaches_every_group(
    keep_ratios: bool, after: list[float]
) -> None:
    gate = Gate(at=2)  # the forward of batch 2
    seen: list[tuple[int, Any, list[float]]] = []

    class Gated(TwoGroups):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            gate()
            return super().forward(x)

    class LRs(Recorder):
        def record(self, ctx: lw.Context, event: Any) -> None:
            seen.append((ctx.iter, event, lrs(ctx.optimizers["opt"])))

    run = _run(epochs=1, callbacks=[LRs()], module=Gated)
    run.start()
    assert gate.reached.wait(10)
    run.set_lr(0.5, keep_ratios=keep_ratios)
    assert run_lrs(run) == [LR0, LR1], "the edit was applied in the middle of a step"
    gate.release.set()
    assert run.wait(10) == "done"
    at = seen.index((2, E.on_train_batch_after_pred, [LR0, LR1]))
    assert all(groups == [LR0, LR1] for _, _, groups in seen[: at + 1])
    assert all(groups == pytest.approx(after) for _, _, groups in seen[at + 1 :])
    assert seen[at + 1][:2] == (2, E.on_train_batch_after_loss)
    assert run_lrs(run) == pytest.approx(after)


# -- the dashboard's lr edit ------------------------------------------------------------------


@pytest.mark.parametrize("opt", ["opt", None])
def test_dashboard_lr_edit_sets_every_group(opt: str | None) -> None:
    run = _run()
    run.step("batch")
    msg = {"cmd": "edit", "field": "lr", "value": "0.01", "id": 1}
    ack = handle_command(run, msg if opt is None else {**msg, "opt": opt})
    assert ack.ok, ack.message
    assert ack.message.endswith("set to 0.01 in every parameter group")
    assert edit_values(run)["optimizers"][0]["lr"] == "0.01"
    assert run_lrs(run) == [0.01, 0.01]
    run.resume()
    assert run.state == "done"
    assert run_lrs(run) == [0.01, 0.01]


def test_dashboard_refused_lr_edit_leaves_every_group() -> None:
    run = _run()
    ack = handle_command(run, {"cmd": "edit", "field": "lr", "opt": "opt", "value": "-1", "id": 1})
    assert not ack.ok
    assert edit_values(run)["optimizers"][0]["lr"] == repr(LR0)  # the box snaps back
    assert run_lrs(run) == [LR0, LR1]


def test_dashboard_shows_the_first_groups_lr_in_the_box_and_every_group_in_the_inspector() -> None:
    import json

    from luzwidget.widgets import Dashboard

    run = _run()
    dash = Dashboard(run)
    sent: list[dict[str, Any]] = []
    dash.send = lambda msg, buffers=None: sent.append(json.loads(json.dumps(msg)))  # type: ignore[method-assign]
    dash._handle_custom_msg({"cmd": "hello"}, [])
    snap = dash.tick()
    assert snap is not None
    assert snap["config"]["optimizers"] == [{"name": "opt", "lr": repr(LR0)}]
    assert snap["inspector"]["rows"]["optimizers"] == "{opt: SGD lr=0.05,0.005 (2 groups)}"
    run.set_lr(0.01)
    assert optimizer_summary(run.ctx.optimizers["opt"]) == "SGD lr=0.01 (2 groups)"


# -- LRScheduler ---------------------------------------------------------------------------


class EpochLRs(lw.Callback):
    """Every group's lr at each epoch's begin."""

    def __init__(self) -> None:
        self.seen: list[list[float]] = []

    def on_epoch_begin(self, ctx: lw.Context) -> None:
        self.seen.append(lrs(ctx.optimizers["opt"]))


def test_lr_scheduler_schedules_every_group() -> None:
    seen = EpochLRs()
    torch.manual_seed(0)
    fitted = spec().fit(
        (X, Y),
        epochs=3,
        callbacks=[LRScheduler(StepLR, step_size=1, gamma=0.5), seen],
        verbose=False,
        dataloader_options=OPTS,
    )
    assert close(seen.seen, [[LR0, LR1], [LR0 / 2, LR1 / 2], [LR0 / 4, LR1 / 4]])
    assert lrs(fitted.optimizers["opt"]) == pytest.approx([LR0 / 8, LR1 / 8])


def test_set_lr_under_a_chainable_scheduler_keeps_each_group_and_goes_on_scheduling() -> None:
    seen = EpochLRs()
    run = _run(epochs=3, callbacks=[LRScheduler(StepLR, step_size=1, gamma=0.5), seen])
    run.step("epoch")
    run.set_lr(0.2, keep_ratios=True)
    run.resume()
    assert close(seen.seen, [[LR0, LR1], [0.2, 0.02], [0.1, 0.01]])


# -- the LR finder ---------------------------------------------------------------------------


class BatchLRs(lw.Callback):
    """Every group's lr at each training batch's forward."""

    def __init__(self) -> None:
        self.seen: list[list[float]] = []

    def on_train_batch_after_pred(self, ctx: lw.Context) -> None:
        self.seen.append(lrs(ctx.optimizers["opt"]))


@pytest.mark.parametrize("built", [False, True])
def test_lr_finder_sweeps_every_group_and_leaves_the_spec_alone(built: bool) -> None:
    torch.manual_seed(0)
    if built:  # a built module and a built optimizer on it: the finder copies both
        model = MLP()
        opt = two_groups(model)
        finder_spec = lw.setup(model, loss=nn.MSELoss(), optimizer=opt)
        before = snapshot(model)
    else:
        finder_spec = spec()
    seen = BatchLRs()
    result = lr_finder(
        finder_spec,
        (X, Y),
        steps=6,
        start_lr=1e-4,
        end_lr=1e-2,
        diverge=None,
        callbacks=[seen],
        dataloader_options=OPTS,
    )
    swept = list(result["lr"])
    assert len(swept) == 6
    assert seen.seen == [[lr, lr] for lr in swept]
    if built:
        assert lrs(opt) == [LR0, LR1]
        assert all(torch.equal(v, before[k]) for k, v in snapshot(model).items())


# -- checkpoints and resume -------------------------------------------------------------------


def _edited_fit(epochs: int = 1, callbacks: list[Any] | None = None) -> lw.Fitted:
    """A fit whose groups end at lrs that differ from what the module would build."""
    run = _run(epochs=epochs, callbacks=callbacks)
    run.step("batch")
    run.set_lr(0.3, keep_ratios=True)
    run.ctx.optimizers["opt"].param_groups[1]["lr"] = 0.007  # ratio no longer 10
    run.resume()
    assert isinstance(run.result, lw.Fitted)
    return run.result


def test_save_and_load_restore_each_groups_lr(tmp_path: Path) -> None:
    fitted = _edited_fit()
    assert lrs(fitted.optimizers["opt"]) == [0.3, 0.007]
    lw.save(fitted, tmp_path / "model.pt")
    again = lw.load(tmp_path / "model.pt", setup=spec())
    assert lrs(again.optimizers["opt"]) == [0.3, 0.007]


def test_resume_from_a_checkpoint_restores_each_groups_lr(tmp_path: Path) -> None:
    _edited_fit(epochs=2, callbacks=[ModelCheckpoint(tmp_path / "ck")])
    seen = EpochLRs()
    torch.manual_seed(1)
    resumed = spec().fit(
        (X, Y),
        epochs=1,
        callbacks=[
            ResumeFromCheckpoint(tmp_path / "ck" / "epoch-01.pt", restore_optimizer_state=True),
            seen,
        ],
        verbose=False,
        dataloader_options=OPTS,
    )
    assert seen.seen == [[0.3, 0.007]]
    assert lrs(resumed.optimizers["opt"]) == [0.3, 0.007]


def test_a_full_resume_under_a_scheduler_matches_the_uninterrupted_run(tmp_path: Path) -> None:
    def sched() -> LRScheduler:
        return LRScheduler(StepLR, step_size=1, gamma=0.5)

    whole = _edited_fit(epochs=3, callbacks=[ModelCheckpoint(tmp_path / "ck"), sched()])
    seen = EpochLRs()
    torch.manual_seed(1)
    resumed = spec().fit(
        (X, Y),
        epochs=3,
        callbacks=[
            ResumeFromCheckpoint(
                tmp_path / "ck" / "epoch-01.pt",
                restore_records=True,
                restore_optimizer_state=True,
                restore_callbacks_state=True,
            ),
            sched(),
            seen,
        ],
        verbose=False,
        dataloader_options=OPTS,
    )
    assert close(seen.seen, [[0.15, 0.0035], [0.075, 0.00175]])
    assert lrs(resumed.optimizers["opt"]) == lrs(whole.optimizers["opt"])
    assert all(torch.equal(v, snapshot(whole.model)[k]) for k, v in snapshot(resumed.model).items())


# -- loggers ---------------------------------------------------------------------------------


def test_tensorboard_logs_every_groups_lr(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from luzwidget.callbacks import TensorBoard
    from tests.callbacks.test_loggers import read_events

    sched = LRScheduler(StepLR, step_size=1, gamma=0.5)  # weight 0: steps before TensorBoard
    torch.manual_seed(0)
    spec().fit(
        (X, Y),
        epochs=2,
        callbacks=[TensorBoard(tmp_path), sched],
        verbose=False,
        dataloader_options=OPTS,
    )
    events = read_events(tmp_path)
    tags = {t for t in events.Tags()["scalars"] if t.startswith("lr/")}
    assert tags == {"lr/opt", "lr/opt/group1"}
    per_epoch = zip(*(events.Scalars(t) for t in ("lr/opt", "lr/opt/group1")), strict=True)
    logged = [[e.value for e in pair] for pair in per_epoch]
    assert close(logged, [[LR0 / 2, LR1 / 2], [LR0 / 4, LR1 / 4]])
