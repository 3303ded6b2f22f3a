"""The loops: exact event order, several optimizers, custom steps, control flow, handlers."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import luzwidget as lw
from luzwidget import Event
from luzwidget.callbacks import Interrupt, Metrics, Profile, Progress, TrainValid
from luzwidget.core.callback import Callback, is_run_bound
from luzwidget.insight.sentinel import Sentinel
from luzwidget.travel.snapshots import TakeSnapshots
from tests.helpers import (
    MLP,
    E,
    Recorder,
    SilentStep,
    batches,
    fit_events,
    make_data,
    make_spec,
    snapshot,
    state_equal,
    valid_events,
)

OPTS = {"batch_size": 16}


def _fit(epochs: int = 2, valid: bool = True, n: int = 32, **kwargs: Any) -> tuple[Any, Recorder]:
    x, y = make_data(n)
    rec = kwargs.pop("rec", None) or Recorder()
    spec = kwargs.pop("spec", None) or make_spec()
    fitted = spec.fit(
        (x, y),
        epochs=epochs,
        valid_data=(x[:16], y[:16]) if valid else None,
        callbacks=[rec, *kwargs.pop("callbacks", [])],
        verbose=False,
        dataloader_options=OPTS,
        **kwargs,
    )
    return fitted, rec


# -- exact event order ------------------------------------------------------------------------


def test_one_epoch_without_validation_written_out() -> None:
    _, rec = _fit(epochs=1, valid=False, n=16)
    assert rec.calls == [
        (0, 0, E.on_fit_begin),
        (1, 0, E.on_epoch_begin),
        (1, 0, E.on_train_begin),
        (1, 1, E.on_train_batch_begin),
        (1, 1, E.on_train_batch_after_pred),
        (1, 1, E.on_train_batch_after_loss),
        (1, 1, E.on_train_batch_before_backward),
        (1, 1, E.on_train_batch_before_step),
        (1, 1, E.on_train_batch_after_step),
        (1, 1, E.on_train_batch_end),
        (1, 1, E.on_train_end),
        (1, 1, E.on_epoch_end),
        (1, 1, E.on_fit_end),
    ]


@pytest.mark.parametrize("epochs", [1, 2])
@pytest.mark.parametrize("valid", [False, True])
def test_fit_event_order(epochs: int, valid: bool) -> None:
    _, rec = _fit(epochs=epochs, valid=valid)
    assert rec.calls == fit_events(epochs, n_train=2, n_valid=1 if valid else 0)


def test_zero_epochs_fires_only_fit_begin_and_end() -> None:
    fitted, rec = _fit(epochs=0)
    assert rec.events == [E.on_fit_begin, E.on_fit_end]
    assert fitted.ctx.epoch == 0


def test_validation_with_several_batches_resets_iter() -> None:
    x, y = make_data(32)
    rec = Recorder()
    make_spec().fit(
        (x, y),
        epochs=1,
        valid_data=(x, y),
        callbacks=[rec],
        verbose=False,
        dataloader_options={"batch_size": 8},
    )
    assert rec.calls == fit_events(1, n_train=4, n_valid=4)


def test_evaluate_fires_only_valid_events() -> None:
    fitted, _ = _fit(epochs=1, valid=False)
    rec = Recorder()
    x, y = make_data(48, seed=3)
    fitted.evaluate((x, y), callbacks=[rec], dataloader_options=OPTS)
    assert rec.calls == valid_events(1, 3, last_train_iter=0)
    assert not any(rec.grad_enabled)
    assert not any(rec.training)


def test_predict_fires_only_predict_events() -> None:
    fitted, _ = _fit(epochs=1, valid=False)
    rec = Recorder()
    x, _ = make_data(40, seed=3)
    fitted.predict(x, callbacks=[rec], dataloader_options=OPTS)
    assert rec.calls == [
        (0, 0, E.on_predict_begin),
        (0, 1, E.on_predict_batch_begin),
        (0, 1, E.on_predict_batch_end),
        (0, 2, E.on_predict_batch_begin),
        (0, 2, E.on_predict_batch_end),
        (0, 3, E.on_predict_batch_begin),
        (0, 3, E.on_predict_batch_end),
        (0, 3, E.on_predict_end),
    ]


# -- callbacks: order, defaults, grad mode ------------------------------------------------------


def test_defaults_come_first_sorted_by_weight_then_user_callbacks() -> None:
    class Late(Callback):
        weight = 10

    class Early(Callback):
        weight = -1000

    user, late, early = Recorder(), Late(), Early()
    fitted, _ = _fit(epochs=1, rec=user, callbacks=[late, early])
    kinds = [type(cb) for cb in fitted.ctx.callbacks if not is_run_bound(cb)]
    expected = [Early, Profile, TrainValid, Metrics, Interrupt, Progress, Recorder, Late]
    assert kinds == expected  # a blocking fit keeps no automatic snapshots (only the sentinel)
    assert [type(cb) for cb in fitted.ctx.callbacks if is_run_bound(cb)] == [Sentinel]
    run = make_spec().run((torch.zeros(64, 4), torch.zeros(64, 1)), epochs=1)
    (takes,) = [cb for cb in run.ctx.callbacks if isinstance(cb, TakeSnapshots)]
    assert all(cb.weight <= takes.weight for cb in run.ctx.callbacks)  # after every other


def test_user_callbacks_see_what_the_defaults_did_for_the_same_event() -> None:
    seen: list[Any] = []

    class Reader(Callback):
        def on_train_end(self, ctx: lw.Context) -> None:
            seen.append(("train", ctx.get_metric("loss", "train")))

        def on_valid_begin(self, ctx: lw.Context) -> None:
            seen.append(("valid_mode", ctx.model.training, ctx.training))

    _fit(epochs=1, callbacks=[Reader()])
    assert seen[0][0] == "train"
    assert isinstance(seen[0][1], float)
    assert seen[1] == ("valid_mode", False, False)


def test_every_callback_runs_under_no_grad_and_grad_mode_is_restored() -> None:
    _, rec = _fit(epochs=1)
    assert rec.grad_enabled
    assert not any(rec.grad_enabled)
    assert torch.is_grad_enabled()


def test_train_and_eval_modes() -> None:
    modes: list[tuple[Event, bool, bool]] = []

    class Modes(Recorder):
        def record(self, ctx: lw.Context, event: Event) -> None:
            modes.append((event, ctx.model.training, ctx.training))

    _fit(epochs=1, rec=Modes())
    for event, model_training, ctx_training in modes:
        if event.value.startswith("on_train_batch") or event is E.on_train_end:
            assert (model_training, ctx_training) == (True, True), event
        if event.value.startswith("on_valid"):
            assert (model_training, ctx_training) == (False, False), event


def test_forward_runs_with_grad_in_training_and_without_in_validation() -> None:
    class Probe(MLP):
        def __init__(self) -> None:
            super().__init__()
            self.modes: list[tuple[bool, bool]] = []

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.modes.append((self.training, torch.is_grad_enabled()))
            return super().forward(x)

    fitted, _ = _fit(epochs=1, spec=make_spec(Probe))
    assert fitted.model.modes == [(True, True), (True, True), (False, False)]


def test_default_step_is_bit_identical_to_a_hand_written_loop() -> None:
    x, y = make_data(48)
    data = batches(x, y, 16)
    torch.manual_seed(1)
    fitted = make_spec().fit(data, epochs=2, verbose=False)
    torch.manual_seed(1)
    model = MLP()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(2):
        for xb, yb in data:
            opt.zero_grad()
            nn.functional.mse_loss(model(xb), yb).backward()
            opt.step()
    assert state_equal(snapshot(fitted.model), snapshot(model))


# -- several optimizers -----------------------------------------------------------------------


class TwoParts(nn.Module):
    """Two linear parts, each with its own optimizer (set_optimizers returns a dict)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 1)
        self.b = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x) * self.b(x) + self.b(x)

    def set_optimizers(self, lr: float = 0.05) -> dict[str, torch.optim.Optimizer]:
        return {
            "a": torch.optim.SGD(self.a.parameters(), lr=lr),
            "b": torch.optim.SGD(self.b.parameters(), lr=lr),
        }


def _two_part_spec() -> lw.Setup:
    return lw.setup(TwoParts, loss=nn.MSELoss()).set_opt_hparams(lr=0.05)


def test_several_optimizers_event_order_and_opt_nm() -> None:
    rec = Recorder()
    x, y = make_data(32)
    fitted = _two_part_spec().fit(
        (x, y),
        epochs=2,
        valid_data=(x[:16], y[:16]),
        callbacks=[rec],
        verbose=False,
        dataloader_options=OPTS,
    )
    assert rec.calls == fit_events(2, n_train=2, n_valid=1, n_opts=2)
    inner = [
        (e, nm)
        for (_, _, e), nm in zip(rec.calls, rec.opt_nm, strict=True)
        if e.value.startswith("on_train_batch_")
        and e not in (E.on_train_batch_begin, E.on_train_batch_end)
    ]
    assert [nm for _, nm in inner[:10]] == ["a"] * 5 + ["b"] * 5
    valid_inner = [
        nm
        for (_, _, e), nm in zip(rec.calls, rec.opt_nm, strict=True)
        if e in (E.on_valid_batch_after_pred, E.on_valid_batch_after_loss)
    ]
    assert valid_inner[:4] == ["a", "a", "b", "b"]
    assert set(fitted.ctx.loss) == {"a", "b"}
    train = fitted.records["metrics"]["train"][0]
    assert set(train) == {"loss", "loss_a", "loss_b"}
    assert train["loss"] == pytest.approx(train["loss_a"] + train["loss_b"])


def test_several_optimizers_ctx_opt_is_the_current_optimizer() -> None:
    seen: list[bool] = []

    class Check(Callback):
        def on_train_batch_before_step(self, ctx: lw.Context) -> None:
            seen.append(ctx.opt is ctx.optimizers[ctx.opt_nm] and ctx.opt_name == ctx.opt_nm)
            seen.append(isinstance(ctx.loss, dict) and ctx.opt_nm in ctx.loss)

    x, y = make_data(32)
    _two_part_spec().fit(
        (x, y), epochs=1, callbacks=[Check()], verbose=False, dataloader_options=OPTS
    )
    assert seen == [True] * 8


def test_several_optimizers_gradients_are_only_from_the_current_loss() -> None:
    """At before_step, every parameter's grad is exactly d(current loss)/d(param):
    nothing accumulated from the other optimizer's backward (luz only zeroed its own)."""
    checked: list[str] = []

    class Grads(Callback):
        def on_train_batch_before_step(self, ctx: lw.Context) -> None:
            params = list(ctx.model.parameters())
            with torch.enable_grad():
                loss = ctx.loss_fn(ctx.model(ctx.input), ctx.target)
                expected = torch.autograd.grad(loss, params)
            for p, g in zip(params, expected, strict=True):
                assert torch.equal(p.grad, g), ctx.opt_nm
            checked.append(ctx.opt_nm)

    x, y = make_data(32)
    _two_part_spec().fit(
        (x, y), epochs=1, callbacks=[Grads()], verbose=False, dataloader_options=OPTS
    )
    assert checked == ["a", "b", "a", "b"]


def test_several_optimizers_match_a_hand_written_loop() -> None:
    x, y = make_data(32)
    data = batches(x, y, 16)
    torch.manual_seed(2)
    fitted = _two_part_spec().fit(data, epochs=2, verbose=False)
    torch.manual_seed(2)
    model = TwoParts()
    opts = model.set_optimizers(lr=0.05)
    for _ in range(2):
        for xb, yb in data:
            for opt in opts.values():
                for o in opts.values():
                    o.zero_grad()
                nn.functional.mse_loss(model(xb), yb).backward()
                opt.step()
    assert state_equal(snapshot(fitted.model), snapshot(model))


# -- custom step ------------------------------------------------------------------------------


class ChattyStep(SilentStep):
    """A custom step that fires after_pred and after_loss itself."""

    def step(self, ctx: lw.Context) -> None:
        self.grad_modes.append(torch.is_grad_enabled())
        ctx.pred = self(ctx.input)
        mode = "train" if ctx.training else "valid"
        ctx.call_callbacks(f"on_{mode}_batch_after_pred")
        loss = nn.functional.mse_loss(ctx.pred, ctx.target)
        ctx.loss = loss.detach()
        ctx.call_callbacks(f"on_{mode}_batch_after_loss")
        if ctx.training:
            opt = ctx.optimizers["opt"]
            opt.zero_grad()
            loss.backward()
            opt.step()

    def __init__(self) -> None:
        super().__init__()
        self.grad_modes: list[bool] = []


def test_custom_step_without_call_callbacks_fires_no_inner_events() -> None:
    fitted, rec = _fit(
        epochs=1, spec=lw.setup(SilentStep, optimizer=torch.optim.SGD).set_opt_hparams(lr=0.05)
    )
    assert rec.calls == [
        (0, 0, E.on_fit_begin),
        (1, 0, E.on_epoch_begin),
        (1, 0, E.on_train_begin),
        (1, 1, E.on_train_batch_begin),
        (1, 1, E.on_train_batch_end),
        (1, 2, E.on_train_batch_begin),
        (1, 2, E.on_train_batch_end),
        (1, 2, E.on_train_end),
        (1, 2, E.on_valid_begin),
        (1, 1, E.on_valid_batch_begin),
        (1, 1, E.on_valid_batch_end),
        (1, 1, E.on_valid_end),
        (1, 1, E.on_epoch_end),
        (1, 1, E.on_fit_end),
    ]
    assert isinstance(fitted.records["metrics"]["train"][0]["loss"], float)


def test_custom_step_inner_events_fire_only_when_it_calls_them() -> None:
    fitted, rec = _fit(
        epochs=1, spec=lw.setup(ChattyStep, optimizer=torch.optim.SGD).set_opt_hparams(lr=0.05)
    )
    batch = [
        E.on_train_batch_begin,
        E.on_train_batch_after_pred,
        E.on_train_batch_after_loss,
        E.on_train_batch_end,
    ]
    valid = [
        E.on_valid_batch_begin,
        E.on_valid_batch_after_pred,
        E.on_valid_batch_after_loss,
        E.on_valid_batch_end,
    ]
    assert rec.events == [
        E.on_fit_begin,
        E.on_epoch_begin,
        E.on_train_begin,
        *batch,
        *batch,
        E.on_train_end,
        E.on_valid_begin,
        *valid,
        E.on_valid_end,
        E.on_epoch_end,
        E.on_fit_end,
    ]
    assert fitted.model.grad_modes == [True, True, False]
    assert not any(rec.grad_enabled)


def test_custom_step_matches_the_default_step() -> None:
    x, y = make_data(32)
    data = batches(x, y, 16)
    torch.manual_seed(3)
    custom = lw.setup(SilentStep, optimizer=torch.optim.SGD).set_opt_hparams(lr=0.05)
    a = custom.fit(data, epochs=2, verbose=False)
    torch.manual_seed(3)
    b = make_spec().fit(data, epochs=2, verbose=False)
    assert state_equal(snapshot(a.model), snapshot(b.model))


# -- control flow -----------------------------------------------------------------------------


def _raiser(event: Event, exc: BaseException, when: Any = None) -> Callback:
    def method(self: Any, ctx: lw.Context) -> None:
        if when is None or when(ctx):
            raise exc

    return type(f"Raise_{event.value}", (Callback,), {event.value: method})()


def test_stop_fit_ends_training_but_fit_end_runs() -> None:
    stop = _raiser(E.on_train_batch_end, lw.StopFit("enough"))
    fitted, rec = _fit(epochs=3, callbacks=[stop])
    assert rec.calls == [*fit_events(1, 2)[:10], (1, 1, E.on_fit_end)]
    assert fitted.run.state == "done"
    assert fitted.ctx.epoch == 1


def test_early_stop_fires_on_early_stopping_then_fit_end() -> None:
    stop = _raiser(E.on_epoch_end, lw.EarlyStop(), when=lambda ctx: ctx.epoch == 2)
    fitted, rec = _fit(epochs=5, valid=False, callbacks=[stop])
    assert rec.calls == [*fit_events(2, 2)[:-1], (2, 2, E.on_early_stopping), (2, 2, E.on_fit_end)]
    assert fitted.ctx.epoch == 2


def test_early_stop_is_ignored_before_min_epochs() -> None:
    stop = _raiser(E.on_epoch_end, lw.EarlyStop())
    fitted, rec = _fit(epochs=(3, 6), valid=False, callbacks=[stop])
    assert rec.count(E.on_epoch_end) == 3
    assert rec.count(E.on_early_stopping) == 1
    assert rec.events[-2:] == [E.on_early_stopping, E.on_fit_end]
    assert fitted.ctx.epoch == 3
    assert len(fitted.records["metrics"]["train"]) == 3


def test_plain_stop_fit_does_not_fire_on_early_stopping() -> None:
    stop = _raiser(E.on_epoch_end, lw.StopFit())
    _, rec = _fit(epochs=(3, 6), valid=False, callbacks=[stop])
    assert rec.count(E.on_early_stopping) == 0
    assert rec.count(E.on_epoch_end) == 1


def test_stop_epoch_skips_the_rest_of_the_epoch_but_epoch_end_runs() -> None:
    stop = _raiser(E.on_train_batch_end, lw.StopEpoch(), when=lambda ctx: ctx.epoch == 1)
    fitted, rec = _fit(epochs=2, callbacks=[stop])
    full = fit_events(2, n_train=2, n_valid=1)
    first_batch = full[:10]
    epoch2 = [c for c in full if c[0] == 2]
    assert rec.calls == [*first_batch, (1, 1, E.on_epoch_end), *epoch2]
    # epoch 1 logged no train metrics (on_train_end was skipped), epoch 2 did
    assert fitted.records["metrics"]["train"][0] == {}
    assert "loss" in fitted.records["metrics"]["train"][1]


def test_stop_epoch_during_validation() -> None:
    stop = _raiser(E.on_valid_batch_begin, lw.StopEpoch())
    _, rec = _fit(epochs=2, callbacks=[stop])
    assert rec.count(E.on_valid_begin) == 2
    assert rec.count(E.on_valid_end) == 0
    assert rec.count(E.on_epoch_end) == 2
    assert rec.events[-1] is E.on_fit_end


# -- handlers ---------------------------------------------------------------------------------


class Calls(list):  # type: ignore[type-arg]
    def __call__(self, ctx: lw.Context, exc: BaseException) -> None:
        self.append((ctx.epoch, ctx.iter, type(exc).__name__, str(exc)))


def test_handlers_end_the_fit_and_fit_end_runs() -> None:
    handler = Calls()
    boom = _raiser(E.on_train_batch_end, ValueError("bad"))
    x, y = make_data(32)
    rec = Recorder()
    run = make_spec().run(
        (x, y), epochs=3, callbacks=[rec, boom], verbose=False, dataloader_options=OPTS
    )
    run.ctx.handlers = {ValueError: handler}
    run.resume()
    assert run.state == "done"
    assert handler == [(1, 1, "ValueError", "bad")]
    assert rec.events[-2:] == [E.on_train_batch_end, E.on_fit_end]
    assert isinstance(run.result, lw.Fitted)


def test_epoch_handlers_end_the_epoch_and_training_goes_on() -> None:
    handler = Calls()
    boom = _raiser(E.on_train_batch_end, KeyError("k"), when=lambda c: c.epoch == 1)
    x, y = make_data(32)
    rec = Recorder()
    run = make_spec().run(
        (x, y), epochs=2, callbacks=[rec, boom], verbose=False, dataloader_options=OPTS
    )
    run.ctx.epoch_handlers = {LookupError: handler}
    run.ctx.handlers = {LookupError: lambda ctx, exc: pytest.fail("handlers must not run")}
    run.resume()
    assert run.state == "done"
    assert handler == [(1, 1, "KeyError", "'k'")]
    assert rec.count(E.on_epoch_end) == 2
    assert rec.count(E.on_train_batch_end) == 3
    assert run.ctx.epoch == 2


def test_epoch_handlers_do_not_cover_fit_begin_but_handlers_do() -> None:
    boom = _raiser(E.on_fit_begin, ValueError("early"))
    x, y = make_data(32)
    rec = Recorder()
    run = make_spec().run((x, y), epochs=2, callbacks=[boom, rec], verbose=False)
    run.ctx.epoch_handlers = {ValueError: lambda ctx, exc: pytest.fail("not an epoch event")}
    handler = Calls()
    run.ctx.handlers = {ValueError: handler}
    run.resume()
    assert run.state == "done"
    assert handler == [(0, 0, "ValueError", "early")]
    assert rec.events == [E.on_fit_end]


def test_handlers_catch_errors_of_the_step() -> None:
    class Bad(MLP):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise ArithmeticError("forward broke")

    handler = Calls()
    x, y = make_data(32)
    run = make_spec(Bad).run((x, y), epochs=2, verbose=False, dataloader_options=OPTS)
    run.ctx.handlers = {ArithmeticError: handler}
    run.resume()
    assert run.state == "done"
    assert handler == [(1, 1, "ArithmeticError", "forward broke")]


def test_handlers_catch_errors_of_the_data() -> None:
    class Flaky(torch.utils.data.Dataset):  # type: ignore[type-arg]
        def __len__(self) -> int:
            return 32

        def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
            if i == 20:
                raise OSError("disk gone")
            return torch.ones(4), torch.ones(1)

    handler = Calls()
    loader = torch.utils.data.DataLoader(Flaky(), batch_size=16)
    run = make_spec().run(loader, epochs=2, verbose=False)
    run.ctx.handlers = {OSError: handler}
    run.resume()
    assert run.state == "done", run.error
    assert handler == [(1, 1, "OSError", "disk gone")]


def test_unmatched_exception_is_not_handled() -> None:
    boom = _raiser(E.on_train_batch_end, ValueError("bad"))
    x, y = make_data(32)
    run = make_spec().run((x, y), epochs=2, callbacks=[boom], verbose=False)
    run.ctx.handlers = {KeyError: lambda ctx, exc: pytest.fail("wrong class")}
    run.resume()
    assert run.state == "error"
    assert isinstance(run.error, lw.CallbackError)


# -- grad mode while paused -------------------------------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        E.on_train_batch_after_pred,
        E.on_train_batch_before_step,
        E.on_valid_batch_after_pred,
        E.on_valid_batch_after_loss,
        E.on_train_batch_begin,
    ],
)
def test_grad_mode_is_never_left_changed_while_paused(event: Event) -> None:
    x, y = make_data(32)
    run = make_spec().run((x, y), epochs=1, valid_data=(x, y), verbose=False)
    assert run.step(event) is event
    assert run.state == "paused"
    assert torch.is_grad_enabled()
    with torch.no_grad():
        run.step()
        assert not torch.is_grad_enabled()
    assert torch.is_grad_enabled()


def test_paused_inside_the_step_leaves_gradients_to_inspect() -> None:
    x, y = make_data(32)
    run = make_spec().run((x, y), epochs=1, verbose=False)
    run.step(E.on_train_batch_before_step)
    grads = [p.grad for p in run.ctx.model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert run.ctx.loss_grad.requires_grad
    assert not run.ctx.loss.requires_grad


def test_training_works_when_driven_under_no_grad() -> None:
    x, y = make_data(32)
    with torch.no_grad():
        fitted = make_spec().fit((x, y), epochs=1, verbose=False)
    assert fitted.run.state == "done"
