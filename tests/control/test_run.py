"""Run: stepping, breakpoints, pausing, errors that pause, retry/skip, Ctrl-C, background runs."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import nn

import luzwidget as lw
from luzwidget import ConfigError, Event, RunStateError
from luzwidget.control import driver as driver_module
from luzwidget.control import interrupts as interrupts_module
from luzwidget.control.breakpoints import Breakpoints
from luzwidget.control.run import RunState
from luzwidget.core.callback import Callback
from tests.helpers import (
    MLP,
    E,
    Recorder,
    batches,
    fit_events,
    make_data,
    make_spec,
    snapshot,
    state_equal,
)

OPTS = {"batch_size": 16}
X, Y = make_data(64)  # 4 training batches of 16 per epoch


def _run(
    spec: lw.Setup | None = None,
    epochs: int = 2,
    seed: int = 0,
    valid: bool = False,
    data: Any = None,
    **kwargs: Any,
) -> lw.Run:
    torch.manual_seed(seed)
    return (spec or make_spec()).run(
        (X, Y) if data is None else data,
        epochs=epochs,
        verbose=False,
        valid_data=(X[:32], Y[:32]) if valid else None,
        dataloader_options=None if isinstance(data, list) else OPTS,
        **kwargs,
    )


def _clean(spec: lw.Setup | None = None, **kwargs: Any) -> dict[str, torch.Tensor]:
    """Final weights of a run that never failed nor paused."""
    run = _run(spec, **kwargs)
    run.resume()
    assert run.state == "done"
    return snapshot(run.ctx.model)


def _dropout() -> lw.Setup:
    return make_spec(dropout=0.5)


# -- stepping ---------------------------------------------------------------------------------


def test_a_new_run_is_ready_and_has_not_started() -> None:
    rec = Recorder()
    run = _run(callbacks=[rec])
    assert run.state == "ready"
    assert run.event is None
    assert run.n_events == 0
    assert rec.calls == []
    assert repr(run) == "<Run ready: epoch 0/2, batch 0>"


def test_step_fires_one_event() -> None:
    rec = Recorder()
    run = _run(callbacks=[rec])
    assert run.step() is E.on_fit_begin
    assert run.state == "paused"
    assert run.step() is E.on_epoch_begin
    assert rec.events == [E.on_fit_begin, E.on_epoch_begin]
    assert run.n_events == 2
    assert list(run.events) == [E.on_fit_begin, E.on_epoch_begin]
    assert run.reason == "stepped to on_epoch_begin"


def test_step_batch_epoch_and_event() -> None:
    rec = Recorder()
    run = _run(callbacks=[rec], valid=True)
    expected = fit_events(2, n_train=4, n_valid=2)
    assert run.step("batch") is E.on_train_batch_end
    assert rec.calls == expected[:10]
    assert run.step("batch") is E.on_train_batch_end
    assert run.ctx.iter == 2
    assert run.step(E.on_train_batch_after_loss) is E.on_train_batch_after_loss
    assert run.ctx.iter == 3
    assert run.step("epoch") is E.on_epoch_end
    assert rec.calls == expected[: expected.index((1, 2, E.on_epoch_end)) + 1]
    assert run.step("valid_batch_end") is E.on_valid_batch_end  # a name without on_
    assert (run.ctx.epoch, run.ctx.iter) == (2, 1)
    run.resume()
    assert rec.calls == expected
    assert run.state == "done"


def test_step_batch_stops_at_validation_batches_too() -> None:
    run = _run(valid=True, epochs=1)
    run.step(E.on_train_end)
    assert run.step("batch") is E.on_valid_batch_end
    assert run.ctx.iter == 1


def test_step_n_events() -> None:
    rec = Recorder()
    run = _run(callbacks=[rec])
    assert run.step("event", n=3) is E.on_train_begin
    assert len(rec.calls) == 3
    assert run.step("batch", n=3) is E.on_train_batch_end
    assert run.ctx.iter == 3
    assert run.step("epoch", n=1) is E.on_epoch_end
    assert run.ctx.epoch == 1


def test_step_n_alone_steps_batches_as_issue_3_says() -> None:
    run = _run()
    run.step(n=3)
    assert run.event is E.on_train_batch_end
    assert run.ctx.iter == 3


@pytest.mark.parametrize(
    ("what", "n", "match"),
    [
        (
            "batches",
            1,
            r"what='on_batches' is not an event|what='batches' is not an event.*"
            r"Or use 'batch' or 'epoch'",
        ),
        ("batch", 0, r"n must be an int >= 1 \(how many to step\), got 0"),
        (None, True, r"n must be an int >= 1"),
    ],
)
def test_step_refuses_bad_arguments(what: Any, n: Any, match: str) -> None:
    run = _run()
    with pytest.raises(ConfigError, match=match):
        run.step(what, n=n)
    assert run.state == "ready"


def test_stepping_to_the_end_is_bit_identical_to_fit() -> None:
    run = _run(_dropout(), valid=True)
    while run.state != "done":
        run.step()
    assert state_equal(snapshot(run.ctx.model), _clean(_dropout(), valid=True))
    assert isinstance(run.result, lw.Fitted)
    assert run.result.run is run


def test_done_run_refuses_to_step_and_says_extend() -> None:
    run = _run(epochs=1)
    run.resume()
    with pytest.raises(RunStateError, match=r"the run is done at epoch \d+ of max_epochs"):
        run.step()


# -- states -----------------------------------------------------------------------------------


def test_state_sequence_seen_by_a_listener() -> None:
    seen: list[str] = []
    flag = {"fail": True}

    class Once(Callback):
        def on_train_batch_end(self, ctx: lw.Context) -> None:
            if flag["fail"] and ctx.iter == 2:
                raise RuntimeError("once")

    run = _run(epochs=1, callbacks=[Once()])
    run.add_listener(lambda r: seen.append(r.state))
    run.step("batch")
    run.resume()
    assert run.state == "error"
    flag["fail"] = False
    run.retry()
    assert seen == ["running", "paused", "running", "error", "paused", "running", "done"]
    run.remove_listener(seen.append)  # unknown listener: ignored


# -- breakpoints ------------------------------------------------------------------------------


def test_event_breakpoint_pauses_every_time() -> None:
    run = _run(epochs=3)
    run.breakpoints.add("epoch_end")
    assert E.on_epoch_end in run.breakpoints
    assert "on_epoch_end" in run.breakpoints
    epochs = []
    while run.resume() or run.state == "paused":
        assert run.event is E.on_epoch_end
        assert run.reason == "breakpoint at on_epoch_end"
        epochs.append(run.ctx.epoch)
    assert epochs == [1, 2, 3]
    assert run.state == "done"


def test_removed_breakpoint_no_longer_pauses() -> None:
    run = _run()
    run.breakpoints.add(E.on_train_batch_end)
    run.resume()
    assert run.ctx.iter == 1
    run.breakpoints.remove("train_batch_end")
    run.resume()
    assert run.state == "done"
    with pytest.raises(KeyError, match="no breakpoint at on_train_batch_end; set: none"):
        run.breakpoints.remove(E.on_train_batch_end)


def test_condition_breakpoint_is_checked_after_each_loss_by_default() -> None:
    run = _run(valid=True)

    def third_batch(ctx: lw.Context) -> bool:
        return ctx.iter == 2

    run.breakpoints.add(third_batch)
    run.resume()
    assert run.event is E.on_train_batch_after_loss
    assert (run.ctx.epoch, run.ctx.iter) == (1, 2)
    assert run.reason == "condition third_batch is true at on_train_batch_after_loss"
    run.resume()
    assert run.event is E.on_valid_batch_after_loss
    assert (run.ctx.epoch, run.ctx.iter, run.ctx.training) == (1, 2, False)


@pytest.mark.parametrize(
    ("at", "stops"),
    [
        ("on_train_batch_end", [(1, 4, E.on_train_batch_end), (2, 4, E.on_train_batch_end)]),
        (
            [E.on_train_batch_begin, "epoch_end"],
            [
                (1, 4, E.on_train_batch_begin),
                (1, 4, E.on_epoch_end),
                (2, 4, E.on_train_batch_begin),
                (2, 4, E.on_epoch_end),
            ],
        ),
    ],
)
def test_condition_breakpoint_at_chosen_events(at: Any, stops: list[Any]) -> None:
    run = _run()
    run.breakpoints.add(lambda ctx: ctx.iter == 4, at=at)
    seen = []
    while run.resume() or run.state == "paused":
        seen.append((run.ctx.epoch, run.ctx.iter, run.event))
    assert seen == stops


def test_condition_breakpoint_at_all_events() -> None:
    run = _run(epochs=1)
    run.breakpoints.add(lambda ctx: True, at="all")
    run.resume()
    assert run.event is E.on_fit_begin
    run.resume()
    assert run.event is E.on_epoch_begin


def test_condition_that_raises_pauses_and_says_why() -> None:
    run = _run()

    def broken(ctx: lw.Context) -> bool:
        raise KeyError("nope")

    run.breakpoints.add(broken)
    run.resume()
    assert run.state == "paused"
    assert run.reason == "condition broken raised KeyError: 'nope'"


def test_nonfinite_loss_breakpoint_pauses_when_the_loss_becomes_nan() -> None:
    data = batches(X, Y, 16)
    data[2] = (torch.full((16, 4), math.nan), data[2][1])
    run = _run(data=data)
    run.breakpoints.nonfinite_loss = True
    assert not run.breakpoints  # told by Metrics at the epoch's end: the loop never listens
    run.resume()
    assert run.state == "paused"
    assert run.event is E.on_train_end
    assert run.ctx.epoch == 1
    assert run.reason.startswith(
        "the training loss became nan at epoch 1, batch 3 (the first batch whose loss was "
        "not finite) after on_train_end"
    )
    run.breakpoints.nonfinite_loss = False
    run.resume()
    assert run.state == "done"


def test_breakpoint_argument_errors() -> None:
    bp = Breakpoints()
    with pytest.raises(ValueError, match=r"breakpoint='nope' is not an event; expected one of"):
        bp.add("nope")
    with pytest.raises(ConfigError, match=r"at= is only for conditions"):
        bp.add(E.on_epoch_end, at="all")
    with pytest.raises(ValueError, match=r"at='never' is not an event"):
        bp.add(lambda ctx: True, at="never")
    with pytest.raises(ConfigError, match=r"at= must be an event, a list of events or 'all'"):
        bp.add(lambda ctx: True, at=3)
    with pytest.raises(ConfigError, match=r"nonfinite_loss must be True or False, got 1"):
        bp.nonfinite_loss = 1
    with pytest.raises(KeyError, match="no such condition breakpoint"):
        bp.remove(print)


def test_breakpoints_container_protocol() -> None:
    run = _run()
    bp = run.breakpoints
    assert not bp
    assert len(bp) == 0

    def cond(ctx: lw.Context) -> bool:
        return False

    bp.add("epoch_end")
    bp.add(cond)
    bp.nonfinite_loss = True
    assert len(bp) == 3
    assert bp
    assert list(bp) == [E.on_epoch_end, cond]
    assert cond in bp
    assert "bogus" not in bp
    assert bp.events == frozenset({E.on_epoch_end})
    assert repr(bp) == "Breakpoints(on_epoch_end, cond, nonfinite_loss)"
    bp.clear()
    assert not bp
    assert not bp.nonfinite_loss


# -- pausing ----------------------------------------------------------------------------------


def test_a_callback_can_pause_the_run() -> None:
    class Pauser(Callback):
        def on_train_batch_end(self, ctx: lw.Context) -> None:
            if ctx.iter == 2:
                ctx.pause("look here")

    run = _run(callbacks=[Pauser()])
    run.resume()
    assert run.state == "paused"
    assert run.event is E.on_train_batch_end
    assert (run.ctx.epoch, run.ctx.iter) == (1, 2)
    assert run.reason == "look here after on_train_batch_end (epoch 1, batch 2)"
    run.resume()
    assert run.state == "paused"
    assert run.ctx.epoch == 2
    run.resume()
    assert run.state == "done"


def test_pause_from_a_callback_in_a_blocking_fit_goes_on(
    capsys: pytest.CaptureFixture[str],
) -> None:
    class Pauser(Callback):
        def on_epoch_end(self, ctx: lw.Context) -> None:
            ctx.pause()

    torch.manual_seed(0)
    fitted = make_spec().fit(
        (X, Y), epochs=2, callbacks=[Pauser()], verbose=False, dataloader_options=OPTS
    )
    assert fitted.run.state == "done"
    assert "fit() goes on" in capsys.readouterr().err


class _LateBool(Breakpoints):
    """Empty breakpoints whose truth test asks for a pause: a pause() that arrives (from
    another thread or a signal) while the run decides whether to keep checking."""

    run: lw.Run | None = None

    def __bool__(self) -> bool:
        if self.run is not None:
            run, self.run = self.run, None
            run.pause("late pause")
        return False


def test_a_pause_requested_while_the_run_stops_checking_is_not_lost() -> None:
    run = _run()
    late = _LateBool(on_change=run._driver.wake)
    run.breakpoints = late
    late.run = run
    run.resume()
    assert run.state == "paused", "the pause was lost; the run went on to the end"
    assert run.reason.startswith("late pause after ")


# -- errors pause the run; retry and skip ------------------------------------------------------


def _failing_once(event: Event, at_iter: int = 2, at_epoch: int = 1) -> tuple[Callback, dict]:
    flag = {"fail": True, "calls": 0}

    def method(self: Any, ctx: lw.Context) -> None:
        if flag["fail"] and ctx.epoch == at_epoch and ctx.iter in (at_iter, 0, None):
            flag["calls"] += 1
            raise RuntimeError("callback bug")

    return type("Flaky", (Callback,), {event.value: method})(), flag


@pytest.mark.parametrize(
    "event",
    [
        E.on_train_begin,
        E.on_train_batch_begin,
        E.on_train_batch_after_pred,
        E.on_train_batch_after_loss,
        E.on_train_batch_before_backward,
        E.on_train_batch_before_step,
        E.on_train_batch_after_step,
        E.on_train_batch_end,
        E.on_valid_batch_after_pred,
        E.on_valid_batch_end,
        E.on_epoch_end,
    ],
)
def test_retry_after_a_callback_error_is_bit_identical(event: Event) -> None:
    cb, flag = _failing_once(event)
    rec = Recorder()
    run = _run(_dropout(), valid=True, callbacks=[cb, rec])
    run.resume()
    assert run.state == "error"
    assert isinstance(run.error, lw.CallbackError)
    assert run.error.event == event
    assert "Callback Flaky." + event.value in str(run.error)
    assert "RuntimeError: callback bug" in run.error_traceback
    # the context is intact for inspection
    assert run.ctx.epoch == 1
    with pytest.raises(
        RunStateError, match=r"(?s)stopped on an error.*run\.retry\(\).*run\.skip\(\)"
    ):
        run.resume()
    flag["fail"] = False
    run.retry()
    assert run.state == "done"
    assert run.error is None
    assert flag["calls"] == 1
    # rec comes after the failing callback: it saw every event exactly once, as in a clean run
    clean = Recorder()
    _run(valid=True, callbacks=[clean]).resume()
    assert rec.calls == clean.calls
    assert state_equal(snapshot(run.ctx.model), _clean(_dropout(), valid=True))


def test_retry_does_not_call_again_the_callbacks_that_already_ran() -> None:
    before = Recorder()
    cb, flag = _failing_once(E.on_train_batch_end)
    cb.weight = 1
    after = Recorder()
    after.weight = 2
    run = _run(callbacks=[before, cb, after])
    run.resume()
    flag["fail"] = False
    run.retry()
    assert before.calls == after.calls == fit_events(2, 4)


def test_retry_without_error_and_resume_after_error() -> None:
    run = _run()
    with pytest.raises(
        RunStateError,
        match=r"retry\(\) is for a run stopped on an error; this "
        r"one is ready",
    ):
        run.retry()
    with pytest.raises(RunStateError, match=r"skip\(\) abandons a failed step, or a batch the run"):
        run.skip()


@pytest.mark.parametrize("stage", ["forward", "loss", "backward", "step", "valid_forward"])
def test_retry_after_a_step_error_is_bit_identical(stage: str) -> None:
    state = {"calls": 0, "fail_at": 6}

    def once() -> None:
        state["calls"] += 1
        if state["calls"] == state["fail_at"]:
            raise RuntimeError(f"{stage} failed once")

    class Model(MLP):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = super().forward(x)  # dropout draws random numbers first
            if stage == "forward" or (stage == "valid_forward" and not self.training):
                once()
            return out

    def loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if stage == "loss":
            once()
        return nn.functional.mse_loss(pred, target)

    def backward(loss: torch.Tensor) -> None:
        loss.backward()
        if stage == "backward":
            once()  # after the gradients were accumulated: they must be discarded

    spec = (
        lw.setup(Model, loss=loss, optimizer=torch.optim.SGD, backward=backward)
        .set_hparams(dropout=0.5)
        .set_opt_hparams(lr=0.05)
    )
    if stage == "valid_forward":
        state["fail_at"] = 2
    run = _run(spec, valid=True)
    if stage == "step":

        def step_opt(opt: torch.optim.Optimizer) -> None:
            once()
            opt.step()

        run.ctx.step_opt = step_opt
    run.resume()
    assert run.state == "error"
    assert isinstance(run.error, lw.StepError)
    assert f"{stage} failed once".replace("valid_", "") in str(run.error)
    run.retry()
    assert run.state == "done"
    state["fail_at"] = -1
    clean = _run(spec, valid=True)
    clean.resume()
    assert state_equal(snapshot(run.ctx.model), snapshot(clean.ctx.model))
    assert run.ctx.records["metrics"] == clean.ctx.records["metrics"]


def test_fixing_the_loss_and_retrying() -> None:
    spec = make_spec(loss=nn.MSELoss(reduction="none"))
    run = _run(spec)
    run.resume()
    assert run.state == "error"
    assert "the loss must be a scalar tensor" in str(run.error)
    run.edit("loss_fn", nn.MSELoss())
    run.retry()
    assert run.state == "done"
    assert state_equal(snapshot(run.ctx.model), _clean())


def test_skip_abandons_the_batch_after_a_callback_error() -> None:
    cb, _flag = _failing_once(E.on_train_batch_before_step, at_iter=2)
    rec = Recorder()
    data = batches(X, Y, 16)
    run = _run(data=data, epochs=1, callbacks=[cb, rec])
    run.resume()
    assert run.state == "error"
    run.skip()
    assert run.state == "done"
    ends = [(e, it) for _, it, e in rec.calls if e is E.on_train_batch_end]
    assert ends == [(E.on_train_batch_end, 1), (E.on_train_batch_end, 3), (E.on_train_batch_end, 4)]
    without = _run(data=[data[0], data[2], data[3]], epochs=1)
    without.resume()
    assert state_equal(snapshot(run.ctx.model), snapshot(without.ctx.model))


def test_skip_after_a_step_error_with_dropout_is_as_if_the_batch_was_not_there() -> None:
    class Model(MLP):
        calls = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = super().forward(x)
            Model.calls += 1
            if Model.calls == 2:
                raise RuntimeError("bad batch")
            return out

    spec = (
        lw.setup(Model, loss=nn.MSELoss(), optimizer=torch.optim.SGD)
        .set_hparams(dropout=0.5)
        .set_opt_hparams(lr=0.05)
    )
    data = batches(X, Y, 16)
    run = _run(spec, data=data, epochs=1)
    run.resume()
    assert run.state == "error"
    assert run.error.epoch == 1
    assert run.error.batch == 2
    run.skip()
    assert run.state == "done"
    Model.calls = -100
    without = _run(spec, data=[data[0], data[2], data[3]], epochs=1)
    without.resume()
    assert state_equal(snapshot(run.ctx.model), snapshot(without.ctx.model))


def test_a_failing_loader_can_be_skipped() -> None:
    class Flaky(torch.utils.data.Dataset):  # type: ignore[type-arg]
        def __len__(self) -> int:
            return 64

        def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
            if i == 20:
                raise OSError("disk gone")
            return X[i], Y[i]

    rec = Recorder()
    loader = torch.utils.data.DataLoader(Flaky(), batch_size=16)
    torch.manual_seed(0)
    run = make_spec().run(loader, epochs=1, verbose=False, callbacks=[rec])
    run.resume()
    assert run.state == "error"
    assert "loading the next batch failed before on_train_batch_begin (epoch 1, batch 2)" in str(
        run.error
    )
    run.skip()
    assert run.state == "done"
    assert [it for _, it, e in rec.calls if e is E.on_train_batch_end] == [1, 2, 3]


def test_stop_from_an_error_runs_fit_end_and_keeps_the_result() -> None:
    cb, _ = _failing_once(E.on_train_batch_end)
    rec = Recorder()
    run = _run(callbacks=[cb, rec])
    run.resume()
    assert run.state == "error"
    run.stop()
    assert run.state == "done"
    assert run.error is None
    assert rec.events[-1] is E.on_fit_end
    assert isinstance(run.result, lw.Fitted)


def test_stop_while_paused_and_before_starting() -> None:
    rec = Recorder()
    run = _run(callbacks=[rec])
    run.step("batch")
    run.stop()
    assert run.state == "done"
    assert rec.events[-1] is E.on_fit_end
    assert isinstance(run.result, lw.Fitted)
    run.stop()  # stopping a done run does nothing
    assert run.state == "done"
    fresh = _run()
    fresh.stop()
    assert fresh.state == "done"
    assert isinstance(fresh.result, lw.Fitted)


# -- Ctrl-C -----------------------------------------------------------------------------------


@contextlib.contextmanager
def _catch_stray_sigint() -> Iterator[list[int]]:
    """A SIGINT that arrives when no run is driving is recorded instead of killing pytest."""
    stray: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: stray.append(signum))
    try:
        yield stray
    finally:
        signal.signal(signal.SIGINT, previous)


def _ctrl_c() -> None:
    os.kill(os.getpid(), signal.SIGINT)


WHERE = [
    "callback_batch_end",
    "callback_after_loss",
    "callback_epoch_begin",
    "forward",
    "loss",
    "backward",
    "step_opt",
    "loader",
    "valid_forward",
]


@pytest.mark.parametrize("where", WHERE)
def test_ctrl_c_pauses_and_resume_is_bit_identical(
    where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    fired = {"n": 0}

    def maybe(target: str, ok: bool = True) -> None:
        if where == target and ok and fired["n"] == 0:
            fired["n"] += 1
            _ctrl_c()

    class Hooks(Callback):
        def on_train_batch_end(self, ctx: lw.Context) -> None:
            maybe("callback_batch_end", ctx.iter == 2)

        def on_train_batch_after_loss(self, ctx: lw.Context) -> None:
            maybe("callback_after_loss", ctx.iter == 3)

        def on_epoch_begin(self, ctx: lw.Context) -> None:
            maybe("callback_epoch_begin", ctx.epoch == 2)

    class Model(MLP):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = super().forward(x)
            maybe("forward", self.training)
            maybe("valid_forward", not self.training)
            return out

    def loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        maybe("loss")
        return nn.functional.mse_loss(pred, target)

    def backward(loss: torch.Tensor) -> None:
        loss.backward()
        maybe("backward")

    def step_opt(opt: torch.optim.Optimizer) -> None:
        maybe("step_opt")  # not user code: deferred to the next event
        opt.step()

    class Data(torch.utils.data.Dataset):  # type: ignore[type-arg]
        def __len__(self) -> int:
            return 64

        def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
            maybe("loader", i == 40)
            return X[i], Y[i]

    spec = (
        lw.setup(Model, loss=loss, optimizer=torch.optim.Adam, backward=backward)
        .set_hparams(dropout=0.5)
        .set_opt_hparams(lr=0.01)
    )
    data = torch.utils.data.DataLoader(Data(), batch_size=16, shuffle=True)
    valid = batches(X[:32], Y[:32], 16)

    def build() -> lw.Run:
        torch.manual_seed(0)
        run = spec.run(data, epochs=2, valid_data=valid, callbacks=[Hooks()], verbose=False)
        run.ctx.step_opt = step_opt
        return run

    with _catch_stray_sigint() as stray:
        run = build()
        run.resume()
        assert fired["n"] == 1
        assert run.state == "paused"
        assert run.interrupted
        assert run.reason.startswith("interrupted (Ctrl-C)")
        assert "run.resume()" in run.reason
        said = capsys.readouterr().err
        assert said.endswith(f"[luzwidget] {run.reason}\n"), "Ctrl-C must say where it paused"
        assert torch.is_grad_enabled()
        run.resume()
        assert run.state == "done"
        clean = build()
        clean.resume()
    assert stray == []
    assert state_equal(snapshot(run.ctx.model), snapshot(clean.ctx.model))
    assert run.ctx.records["metrics"] == clean.ctx.records["metrics"]


def test_ctrl_c_during_step_pauses_and_stepping_goes_on() -> None:
    class CtrlC(Callback):
        sent = False

        def on_train_batch_after_loss(self, ctx: lw.Context) -> None:
            if ctx.iter == 2 and not self.sent:
                self.sent = True
                _ctrl_c()

    with _catch_stray_sigint() as stray:
        run = _run(_dropout(), callbacks=[CtrlC()])
        # The first Ctrl-C waits for the end of the event whose callback it interrupted.
        assert run.step("epoch") is E.on_train_batch_after_loss
        assert run.state == "paused"
        assert run.interrupted
        assert run.ctx.iter == 2
        assert run.step("epoch") is E.on_epoch_end
        assert not run.interrupted
        assert run.ctx.epoch == 1
        run.resume()
    assert stray == []
    assert state_equal(snapshot(run.ctx.model), _clean(_dropout()))


class _Slow(MLP):
    """Sleeps in forward so a run lasts long enough for a timed Ctrl-C to land inside."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(0.0015)
        return super().forward(x)


def _slow_setup() -> lw.Setup:
    return (
        lw.setup(_Slow, loss=nn.MSELoss(), optimizer=torch.optim.Adam)
        .set_hparams(dropout=0.3)
        .set_opt_hparams(lr=0.01)
    )


def _slow_args(started: threading.Event | None) -> tuple[tuple[Any, ...], dict[str, Any]]:
    class Started(Callback):
        def on_fit_begin(self, ctx: lw.Context) -> None:
            if started is not None:
                started.set()

    x, y = make_data(256)
    return ((x, y),), {
        "epochs": 2,
        "valid_data": (x[:64], y[:64]),
        "callbacks": [Started()],
        "verbose": False,
        "dataloader_options": {"batch_size": 8},
    }


def _slow_run(started: threading.Event | None = None) -> lw.Run:
    torch.manual_seed(0)
    args, kwargs = _slow_args(started)
    return _slow_setup().run(*args, **kwargs)


@pytest.fixture(scope="module")
def slow_clean() -> dict[str, torch.Tensor]:
    run = _slow_run()
    run.resume()
    return snapshot(run.ctx.model)


def _interrupt_after(started: threading.Event, delay: float) -> threading.Thread:
    def fire() -> None:
        if started.wait(10):
            time.sleep(delay)
            _ctrl_c()

    thread = threading.Thread(target=fire, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("delay", [0.0, 0.013, 0.037, 0.061, 0.089, 0.12])
def test_ctrl_c_from_another_thread_at_various_times(
    delay: float, slow_clean: dict[str, torch.Tensor]
) -> None:
    started = threading.Event()
    with _catch_stray_sigint() as stray:
        run = _slow_run(started)
        thread = _interrupt_after(started, delay)
        run.resume()
        thread.join()
        assert run.state == "paused", run.reason
        assert run.interrupted
        where = (run.ctx.epoch, run.ctx.iter, run.event)
        run.resume()
        assert run.state == "done", where
    assert stray == []
    assert state_equal(snapshot(run.ctx.model), slow_clean), where


def test_ctrl_c_twice_during_one_run(slow_clean: dict[str, torch.Tensor]) -> None:
    with _catch_stray_sigint() as stray:
        started = threading.Event()
        run = _slow_run(started)
        for delay in (0.02, 0.05):
            _interrupt_after(started, delay).join(0)
            run.resume()
            assert run.state == "paused"
        run.resume()
        assert run.state == "done"
    assert stray == []
    assert state_equal(snapshot(run.ctx.model), slow_clean)


def test_ctrl_c_in_a_blocking_fit_returns_what_was_trained(
    capsys: pytest.CaptureFixture[str],
) -> None:
    class CtrlC(Callback):
        sent = False

        def on_train_batch_end(self, ctx: lw.Context) -> None:
            if ctx.epoch == 1 and ctx.iter == 3 and not self.sent:
                self.sent = True  # the interrupted callback is called again on resume
                _ctrl_c()

    rec = Recorder()
    with _catch_stray_sigint() as stray:
        torch.manual_seed(0)
        fitted = _dropout().fit(
            (X, Y), epochs=2, callbacks=[CtrlC(), rec], verbose=False, dataloader_options=OPTS
        )
    assert stray == []
    assert isinstance(fitted, lw.Fitted)
    # Ctrl-C landed in CtrlC.on_train_batch_end: the run paused once that event was over
    # (the recorder saw it), then fit() fired on_interrupt and on_fit_end
    assert rec.events[-3:] == [E.on_train_batch_end, E.on_interrupt, E.on_fit_end]
    assert rec.calls[-1][:2] == (1, 3)
    assert "Training interrupted at epoch 1, batch 3" in capsys.readouterr().err
    assert fitted.run.state == "paused"
    fitted.run.resume()
    assert fitted.run.state == "done"
    assert isinstance(fitted.run.result, lw.Fitted)
    assert state_equal(snapshot(fitted.model), _clean(_dropout()))


def test_ctrl_c_from_a_thread_in_a_blocking_fit(slow_clean: dict[str, torch.Tensor]) -> None:
    started = threading.Event()
    args, kwargs = _slow_args(started)
    with _catch_stray_sigint() as stray:
        torch.manual_seed(0)
        thread = _interrupt_after(started, 0.04)
        fitted = _slow_setup().fit(*args, **kwargs)
        thread.join()
        assert fitted.run.state == "paused"
        assert 0 < fitted.ctx.epoch <= 2
        fitted.run.resume()
        assert fitted.run.state == "done"
    assert stray == []
    assert state_equal(snapshot(fitted.model), slow_clean)


# -- edits ------------------------------------------------------------------------------------


def _lrs(run: lw.Run) -> list[float]:
    return [g["lr"] for opt in run.ctx.optimizers.values() for g in opt.param_groups]


def test_set_lr_and_edit_while_paused_apply_at_once() -> None:
    run = _run(epochs=3)
    run.step("batch")
    run.set_lr(0.5)
    assert _lrs(run) == [0.5]
    assert run.ctx.opt_hparams["lr"] == 0.5
    run.edit("max_epochs", 5)
    run.edit("min_epochs", 2)
    run.edit("verbose", False)
    assert (run.ctx.max_epochs, run.ctx.min_epochs) == (5, 2)
    run.edit("min_epochs", 0)
    run.edit("max_epochs", 1)
    run.resume()
    assert run.state == "done"
    assert run.ctx.epoch == 1


@pytest.mark.parametrize("lr", ["abc", -1, 0, math.nan, math.inf, -math.inf, True, None, [0.1]])
def test_refused_lr_changes_nothing(lr: Any) -> None:
    run = _run()
    run.step("batch")
    with pytest.raises(ConfigError, match=r"lr must be a finite positive number, got"):
        run.set_lr(lr)
    assert _lrs(run) == [0.05]
    assert run.ctx.opt_hparams == {"lr": 0.05}


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("max_epochs", 0, r"max_epochs=0 is invalid: expected an integer >= 1 .*current epoch=1"),
        ("max_epochs", 2.5, r"max_epochs must be an int, got float 2\.5"),
        ("max_epochs", True, r"max_epochs must be an int, got bool True"),
        (
            "min_epochs",
            7,
            r"min_epochs=7 is invalid: expected an integer between 0 and "
            r"max_epochs=3\. Raise max_epochs first",
        ),
        ("min_epochs", -1, r"min_epochs=-1 is invalid"),
        ("loss_fn", "mse", r"loss_fn must be callable, got str"),
        (
            "epoch",
            5,
            r"'epoch' cannot be edited; editable fields: max_epochs, min_epochs, verbose, "
            r"loss_fn",
        ),
        ("lr", 0.1, r"'lr' cannot be edited"),
    ],
)
def test_refused_edits_change_nothing(field: str, value: Any, match: str) -> None:
    run = _run(epochs=3)
    run.step("batch")
    before = {f: getattr(run.ctx, f) for f in ("max_epochs", "min_epochs", "loss_fn", "epoch")}
    with pytest.raises(ConfigError, match=match):
        run.edit(field, value)
    assert {f: getattr(run.ctx, f) for f in before} == before


def test_set_lr_per_optimizer_and_unknown_name() -> None:
    from tests.core.test_loop import _two_part_spec

    torch.manual_seed(0)
    run = _two_part_spec().run((X, Y), epochs=1, verbose=False)
    run.step("batch")
    run.set_lr(0.3, opt_name="b")
    assert _lrs(run) == [0.05, 0.3]
    with pytest.raises(
        ConfigError,
        match=r"set_lr: opt_name 'c' is not an optimizer of this run; they "
        r"are: 'a', 'b'",
    ):
        run.set_lr(0.3, opt_name="c")
    assert _lrs(run) == [0.05, 0.3]


def test_add_and_remove_callbacks_while_paused() -> None:
    rec = Recorder()
    run = _run(epochs=1)
    run.step("batch")
    run.add_callback(rec)
    run.step("batch")
    assert rec.events[0] is E.on_train_batch_begin
    assert rec.calls[0][1] == 2
    run.remove_callback(Recorder)
    run.resume()
    assert rec.events[-1] is E.on_train_batch_end

    class Typo(Callback):
        def on_batch_end(self, ctx: lw.Context) -> None:
            pass

    with pytest.raises(ConfigError, match=r"Typo\.on_batch_end is not an event"):
        run.add_callback(Typo())
    with pytest.raises(ConfigError, match=r"is not a callback of this run; it has: Profile"):
        run.remove_callback(rec)


# -- continuing a finished run ------------------------------------------------------------------


def _adam() -> lw.Setup:
    return make_spec(optimizer=torch.optim.Adam, lr=0.01)


def _adam_steps(run_or_fitted: Any) -> list[int]:
    opt = run_or_fitted.ctx.optimizers["opt"]
    return sorted({int(opt.state[p]["step"]) for p in run_or_fitted.ctx.model.parameters()})


def test_extend_continues_with_optimizer_state_and_epochs_numbered_on() -> None:
    rec = Recorder()
    run = _run(_adam(), epochs=2, callbacks=[rec])
    run.resume()
    assert _adam_steps(run) == [8]
    with pytest.raises(ConfigError, match=r"epochs must be a positive int or None, got 0"):
        run.extend(0)
    run.extend(epochs=3)
    assert run.state == "ready"
    assert run.ctx.max_epochs == 5
    run.resume()
    assert run.state == "done"
    assert _adam_steps(run) == [20]
    assert len(run.ctx.records["metrics"]["train"]) == 5
    assert [c[0] for c in rec.calls if c[2] is E.on_epoch_begin] == [1, 2, 3, 4, 5]
    assert isinstance(run.result, lw.Fitted)
    assert state_equal(snapshot(run.ctx.model), _clean(_adam(), epochs=5))


def test_extend_refused_unless_done() -> None:
    run = _run()
    run.step()
    with pytest.raises(
        RunStateError,
        match=r"extend\(\) continues a finished run; this one is "
        r"paused\. Raise the limit with run\.edit\('max_epochs', n\) instead",
    ):
        run.extend(2)


def test_fitted_fit_continues_with_optimizer_state() -> None:
    torch.manual_seed(0)
    first = _adam().fit((X, Y), epochs=2, verbose=False, dataloader_options=OPTS)
    more = first.fit((X, Y), epochs=3, verbose=False, dataloader_options=OPTS)
    assert more.model is first.model
    assert more.ctx.epoch == 5
    assert _adam_steps(more) == [20]
    assert [len(more.records["metrics"]["train"])] == [5]
    assert more.get_metrics()["epoch"].max() == 5
    assert state_equal(snapshot(more.model), _clean(_adam(), epochs=5))


def test_continue_after_an_interrupted_fit() -> None:
    class CtrlC(Callback):
        sent = False

        def on_train_batch_end(self, ctx: lw.Context) -> None:
            if ctx.epoch == 1 and ctx.iter == 2 and not self.sent:
                self.sent = True
                _ctrl_c()

    with _catch_stray_sigint() as stray:
        torch.manual_seed(0)
        fitted = _adam().fit(
            (X, Y), epochs=2, callbacks=[CtrlC()], verbose=False, dataloader_options=OPTS
        )
    assert stray == []
    assert fitted.run.state == "paused"
    more = fitted.fit((X, Y), epochs=1, verbose=False, dataloader_options=OPTS)
    assert more.ctx.epoch == 2
    assert _adam_steps(more) == [6]


# -- background driving ------------------------------------------------------------------------


def test_start_returns_at_once_and_ends_like_a_blocking_fit() -> None:
    started = threading.Event()
    run = _slow_run(started)
    t0 = time.perf_counter()
    run.start()
    assert time.perf_counter() - t0 < 0.5
    assert run.state == "running"
    assert started.wait(10)
    run.start()  # already running: nothing happens
    with pytest.raises(RunStateError, match=r"already training in the background"):
        run.step()
    assert run.wait(30) == "done"
    assert isinstance(run.result, lw.Fitted)
    blocking = _slow_run()
    blocking.resume()
    assert state_equal(snapshot(run.ctx.model), snapshot(blocking.ctx.model))


def test_pause_and_start_again_in_the_background(slow_clean: dict[str, torch.Tensor]) -> None:
    started = threading.Event()
    run = _slow_run(started)
    run.start()
    assert started.wait(10)
    time.sleep(0.02)
    run.pause()
    assert run.wait(10) == "paused"
    assert run.reason.startswith("paused after ")
    where = (run.ctx.epoch, run.ctx.iter)
    assert where != (2, None)
    run.start()
    assert run.wait(30) == "done"
    assert state_equal(snapshot(run.ctx.model), slow_clean)


def test_start_until_an_epoch() -> None:
    run = _run(epochs=3)
    run.start(until="epoch")
    assert run.wait(10) == "paused"
    assert run.event is E.on_epoch_end
    assert run.ctx.epoch == 1


class _Gate:
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


def _gated_run(gate: _Gate, callbacks: list[Any], epochs: int = 1) -> lw.Run:
    class Gated(MLP):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            gate()
            return super().forward(x)

    return _run(make_spec(Gated), epochs=epochs, callbacks=callbacks)


def test_set_lr_while_running_is_applied_at_the_next_event_boundary() -> None:
    seen: list[tuple[int, Event, float]] = []

    class LR(Recorder):
        def record(self, ctx: lw.Context, event: Event) -> None:
            seen.append((ctx.iter, event, ctx.optimizers["opt"].param_groups[0]["lr"]))

    gate = _Gate(at=2)  # the forward of batch 2
    run = _gated_run(gate, [LR()])
    run.start()
    assert gate.reached.wait(10)
    run.set_lr(0.5)
    run.edit("max_epochs", 1)
    assert _lrs(run) == [0.05], "the edit was applied in the middle of a step"
    gate.release.set()
    assert run.wait(10) == "done"
    at = seen.index((2, E.on_train_batch_after_pred, 0.05))
    assert all(lr == 0.05 for _, _, lr in seen[: at + 1])
    assert all(lr == 0.5 for _, _, lr in seen[at + 1 :])
    assert seen[at + 1][:2] == (2, E.on_train_batch_after_loss)


def test_stop_while_running_runs_fit_end_and_keeps_the_result() -> None:
    rec = Recorder()
    gate = _Gate(at=3)
    run = _gated_run(gate, [rec], epochs=50)
    run.start()
    assert gate.reached.wait(10)
    run.stop()
    assert run.state == "running"
    gate.release.set()
    assert run.wait(10) == "done"
    assert rec.events[-2:] == [E.on_train_batch_after_pred, E.on_fit_end]
    assert isinstance(run.result, lw.Fitted)
    assert run.ctx.epoch == 1


@pytest.mark.parametrize("background", [False, True])
def test_run_stop_called_from_a_callback_stops_at_the_next_boundary(background: bool) -> None:
    holder: dict[str, lw.Run] = {}

    class Stopper(Callback):
        def on_train_batch_end(self, ctx: lw.Context) -> None:
            if ctx.iter == 2:
                holder["run"].stop()

    rec = Recorder()
    run = holder["run"] = _run(epochs=3, callbacks=[Stopper(), rec])
    if background:
        run.start()
        run.wait(10)
    else:
        run.resume()
    assert run.state == "done", run.error
    assert rec.calls[-2:] == [(1, 2, E.on_train_batch_end), (1, 2, E.on_fit_end)]
    assert isinstance(run.result, lw.Fitted)


def test_a_callback_pauses_a_background_run() -> None:
    class Pauser(Callback):
        def on_epoch_end(self, ctx: lw.Context) -> None:
            ctx.pause("epoch done")

    run = _run(epochs=2, callbacks=[Pauser()])
    run.start()
    assert run.wait(10) == "paused"
    assert run.reason == "epoch done after on_epoch_end (epoch 1, batch 4)"
    run.start()
    assert run.wait(10) == "paused"
    run.start()
    assert run.wait(10) == "done"


def test_an_error_in_the_background_is_never_lost(capsys: pytest.CaptureFixture[str]) -> None:
    cb, flag = _failing_once(E.on_train_batch_end, at_iter=3)
    run = _run(_dropout(), callbacks=[cb])
    run.start()
    assert run.wait(10) == "error"
    assert isinstance(run.error, lw.CallbackError)
    assert (
        "Callback Flaky.on_train_batch_end raised RuntimeError: callback bug (epoch 1, batch 3)"
        in str(run.error)
    )
    err = capsys.readouterr().err
    assert "[luzwidget] the run stopped on an error" in err
    assert "run.retry()" in err
    flag["fail"] = False
    run.retry()  # goes on in the background, as the run was started there
    assert run.wait(10) == "done"
    assert state_equal(snapshot(run.ctx.model), _clean(_dropout()))


def test_an_exception_escaping_the_loop_in_the_background_is_kept() -> None:
    class Boom(Callback):
        def on_train_batch_end(self, ctx: lw.Context) -> None:
            raise ValueError("in callback")

    def bad_handler(ctx: lw.Context, exc: BaseException) -> None:
        raise LookupError("the handler itself broke")

    run = _run(callbacks=[Boom()])
    run.ctx.handlers = {ValueError: bad_handler}
    run.start()
    assert run.wait(10) == "error"
    assert isinstance(run.error, LookupError)
    assert "the handler itself broke" in run.error_traceback


def test_listener_sees_running_then_done_from_the_background() -> None:
    seen: list[str] = []
    run = _run(epochs=1)
    run.add_listener(lambda r: seen.append(r.state))
    run.start()
    run.wait(10)
    assert seen == ["running", "done"]


def test_run_driven_by_callable_make_loop() -> None:
    """Run is generic over the loop: a tiny generator is enough to drive it."""

    def loop(ctx: lw.Context) -> Iterator[Event]:
        yield E.on_fit_begin
        yield E.on_fit_end

    ctx = lw.Context()
    run = lw.Run(ctx, loop, finish=lambda r: "finished")
    assert run.step() is E.on_fit_begin
    run.resume()
    assert (run.state, run.result) == ("done", "finished")


# -- commands in order, none lost (issue 9, point 12) -----------------------------------------


def test_pause_then_start_at_once_pauses_then_resumes_to_the_end() -> None:
    gate = _Gate(at=2)
    run = _gated_run(gate, [], epochs=2)
    seen: list[str] = []
    run.add_listener(lambda r: seen.append(r.state))
    run.start()
    assert gate.reached.wait(10)
    run.pause()
    run.start()  # queued behind the pause: applied after it, not lost
    gate.release.set()
    assert run.wait(10) == "done", run.reason
    assert seen == ["running", "paused", "running", "done"]


def test_two_starts_until_a_batch_in_a_row_step_two_batches() -> None:
    gate = _Gate(at=1)
    run = _gated_run(gate, [], epochs=2)
    run.start(until="batch")
    assert gate.reached.wait(10)
    run.start(until="batch")  # the run is mid-batch: this one waits for the first
    gate.release.set()
    assert run.wait(10) == "paused"
    assert (run.ctx.epoch, run.ctx.iter, run.event) == (1, 2, E.on_train_batch_end)


def test_an_edit_queued_behind_a_start_is_applied_in_order() -> None:
    seen: list[tuple[int, float]] = []

    class LR(Callback):
        def on_train_batch_end(self, ctx: lw.Context) -> None:
            seen.append((ctx.iter, ctx.optimizers["opt"].param_groups[0]["lr"]))

    gate = _Gate(at=1)
    run = _gated_run(gate, [LR()], epochs=1)
    run.start(until="batch")
    assert gate.reached.wait(10)
    run.start(until="batch")
    run.set_lr(0.5)  # given after the second start: applied once that start is
    gate.release.set()
    assert run.wait(10) == "paused"
    assert seen == [(1, 0.05), (2, 0.5)], "the edit jumped ahead of the queued start"


def test_pause_on_a_paused_run_does_not_linger() -> None:
    run = _run(epochs=1)
    run.step()
    run.pause()  # nothing runs: nothing to pause
    run.resume()
    assert run.state == "done", run.reason


def test_run_state_is_an_enum_equal_to_its_string() -> None:
    run = _run(epochs=1)
    assert run.state is RunState.READY
    assert run.state == "ready"
    run.resume()
    assert run.state is RunState.DONE
    assert f"{run.state}" == "done"
    assert [s.value for s in RunState] == ["ready", "running", "paused", "error", "done"]


# -- Ctrl-C at any instant of a blocking drive (issue 9, point 11) ----------------------------

_TRACED = frozenset({driver_module.__file__, interrupts_module.__file__})


def _tiny_run() -> lw.Run:
    def loop(ctx: lw.Context) -> Iterator[Event]:
        yield E.on_fit_begin
        yield E.on_epoch_end
        yield E.on_fit_end

    return lw.Run(lw.Context(), loop, finish=lambda r: "finished")


def _sigint_at_line(k: int | None, drive: Any) -> int:
    """Drive with SIGINT raised at the ``k``-th line the driver runs; return the lines run."""
    lines = 0

    def local(frame: Any, event: str, arg: Any) -> Any:
        nonlocal lines
        if event == "line":
            lines += 1
            if lines == k:
                signal.raise_signal(signal.SIGINT)
        return local

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        return local if frame.f_code.co_filename in _TRACED else None

    sys.settrace(tracer)
    try:
        drive()
    except KeyboardInterrupt:
        pass  # it may escape once the state is settled and the handler restored
    finally:
        sys.settrace(None)
    return lines


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="signals: main thread"
)
@pytest.mark.parametrize("how", ["step", "resume"])
def test_ctrl_c_at_any_line_of_a_blocking_drive_leaves_a_true_state(how: str) -> None:
    n_lines = _sigint_at_line(None, getattr(_tiny_run(), how))
    assert n_lines > 20
    for k in range(1, n_lines + 1):
        run = _tiny_run()
        _sigint_at_line(k, getattr(run, how))
        assert run.state in ("ready", "paused", "done"), (k, run.state, run.reason)
        if run.state != "done":
            run.resume()  # never "already training in the background"
        assert (run.state, run.result) == ("done", "finished"), (k, run.reason)


# -- one error family, one reporter (issue 9, point 9) ----------------------------------------


def test_a_callback_class_given_to_fit_is_refused_with_one_prefix() -> None:
    with pytest.raises(ConfigError) as info:
        make_spec().fit((X, Y), epochs=1, verbose=False, callbacks=[lw.Callback])
    assert str(info.value) == "callbacks: got the class Callback; pass an instance: Callback()."


def test_a_bad_step_target_or_breakpoint_is_a_config_error() -> None:
    run = _run()
    with pytest.raises(ConfigError, match=r"what='nope' is not an event.* Or use 'batch'"):
        run.step("nope")
    with pytest.raises(ConfigError, match=r"breakpoint='nope' is not an event"):
        run.breakpoints.add("nope")
    with pytest.raises(ConfigError, match=r"callbacks: got the class Callback"):
        run.add_callback(lw.Callback)


def test_library_messages_go_through_one_reporter(capsys: pytest.CaptureFixture[str]) -> None:
    class Best(lw.callbacks.KeepBestModel):
        pass

    run = _run(epochs=2, callbacks=[Best(monitor="train_loss")])
    run.ctx.verbose = True
    run.ctx.callbacks = [cb for cb in run.ctx.callbacks if type(cb).__name__ != "Progress"]
    run.resume()
    out = capsys.readouterr()
    assert "Restored the weights" not in out.out
    assert "[luzwidget] Restored the weights of epoch" in out.err
