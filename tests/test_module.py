"""setup() / fit(): what is accepted, clear errors for bad input, nothing lost on a failure."""

from __future__ import annotations

import doctest
from typing import Any

import pytest
import torch
from torch import nn

import luzwidget as lw
import luzwidget.module
from luzwidget import ConfigError, DataError, Event
from luzwidget.core.callback import Callback, is_run_bound
from tests.helpers import MLP, E, batches, make_data, make_spec, snapshot, state_equal

OPTS = {"batch_size": 16}


# -- what setup() and fit() accept --------------------------------------------------------------


def test_setup_fit_returns_a_fitted_with_records_and_hparams() -> None:
    x, y = make_data(32)
    spec = make_spec(hidden=6)
    fitted = spec.fit((x, y), epochs=2, verbose=False)
    assert isinstance(fitted, lw.Fitted)
    assert fitted.hparams == {"hidden": 6}
    assert fitted.opt_hparams == {"lr": 0.05}
    assert fitted.model.net[0].out_features == 6
    assert len(fitted.records["metrics"]["train"]) == 2
    assert fitted.run.state == "done"
    assert fitted.ctx.hparams == {"hidden": 6}


def test_set_hparams_and_set_opt_hparams_return_new_setups() -> None:
    spec = make_spec()
    a = spec.set_hparams(hidden=3)
    b = a.set_opt_hparams(momentum=0.9)
    assert spec.hparams == {}
    assert a.hparams == {"hidden": 3}
    assert a.opt_hparams == {"lr": 0.05}
    assert b.opt_hparams == {"lr": 0.05, "momentum": 0.9}
    assert "hidden" in repr(a)


def test_a_module_instance_is_trained_in_place() -> None:
    x, y = make_data(32)
    net = MLP()
    before = snapshot(net)
    fitted = (
        lw.setup(net, loss=nn.MSELoss(), optimizer=torch.optim.SGD)
        .set_opt_hparams(lr=0.05)
        .fit((x, y), epochs=1, verbose=False)
    )
    assert fitted.model is net
    assert not state_equal(before, snapshot(net))


def test_a_built_optimizer_over_the_module_is_used_as_is() -> None:
    x, y = make_data(32)
    net = MLP()
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    fitted = lw.setup(net, loss=nn.MSELoss(), optimizer=opt).fit((x, y), epochs=1, verbose=False)
    assert fitted.optimizers == {"opt": opt}
    assert all(opt.state[p]["step"] == 1 for p in net.parameters())


def test_an_optimizer_factory_gets_the_opt_hparams() -> None:
    got: dict[str, Any] = {}

    def factory(params: Any, lr: float, momentum: float = 0.0) -> torch.optim.Optimizer:
        got.update(lr=lr, momentum=momentum)
        return torch.optim.SGD(params, lr=lr, momentum=momentum)

    x, y = make_data(32)
    lw.setup(MLP, loss=nn.MSELoss(), optimizer=factory).set_opt_hparams(lr=0.01, momentum=0.5).fit(
        (x, y), epochs=1, verbose=False
    )
    assert got == {"lr": 0.01, "momentum": 0.5}


def test_the_module_loss_method_is_used_when_no_loss_is_given() -> None:
    class WithLoss(MLP):
        def loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            self.called = True
            return nn.functional.l1_loss(pred, target)

    x, y = make_data(32)
    fitted = (
        lw.setup(WithLoss, optimizer=torch.optim.SGD)
        .set_opt_hparams(lr=0.01)
        .fit((x, y), epochs=1, verbose=False)
    )
    assert fitted.model.called


def test_set_optimizers_gets_the_opt_hparams() -> None:
    class WithOpt(MLP):
        def set_optimizers(self, lr: float) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=lr)

    x, y = make_data(32)
    fitted = (
        lw.setup(WithOpt, loss=nn.MSELoss())
        .set_opt_hparams(lr=0.02)
        .fit((x, y), epochs=1, verbose=False)
    )
    assert list(fitted.optimizers) == ["opt"]
    assert fitted.optimizers["opt"].param_groups[0]["lr"] == 0.02


def test_epochs_pair_sets_min_and_max() -> None:
    x, y = make_data(32)
    run = make_spec().run((x, y), epochs=(2, 4), verbose=False)
    assert (run.ctx.min_epochs, run.ctx.max_epochs) == (2, 4)


@pytest.mark.parametrize("verbose", [True, False])
def test_verbose_is_stored(verbose: bool) -> None:
    x, y = make_data(32)
    assert make_spec().run((x, y), verbose=verbose).ctx.verbose is verbose


def test_verbose_none_means_not_interactive_under_pytest() -> None:
    x, y = make_data(32)
    assert make_spec().run((x, y), verbose=None).ctx.verbose is False


def test_a_single_callback_need_not_be_in_a_list() -> None:
    x, y = make_data(32)

    class Mine(Callback):
        pass

    run = make_spec().run((x, y), callbacks=Mine(), verbose=False)
    mine = [cb for cb in run.ctx.callbacks if not is_run_bound(cb)]  # not luzwidget's own
    assert isinstance(mine[-1], Mine)


# -- bad input: clear errors, naming the argument and the fix ------------------------------------


@pytest.mark.parametrize("module", [5, "MLP", object, [MLP]])
def test_module_must_be_a_module_class_factory_or_instance(module: Any) -> None:
    with pytest.raises(
        ConfigError,
        match=r"module must be an nn\.Module subclass \(e\.g\. setup\(Net, \.\.\.\)\), a "
        r"function returning a module \(setup\(make_net, \.\.\.\)\) or a built instance",
    ):
        lw.setup(module, loss=nn.MSELoss(), optimizer=torch.optim.SGD)


def test_a_factory_function_is_a_module_built_with_the_hparams_at_each_fit() -> None:
    def make_mlp(hidden: int = 8) -> nn.Module:
        return MLP(hidden=hidden)

    x, y = make_data(64)
    spec = lw.setup(make_mlp, loss=nn.MSELoss(), optimizer=torch.optim.SGD).set_hparams(hidden=3)
    fitted = spec.set_opt_hparams(lr=0.1).fit((x, y), epochs=1, verbose=False)
    assert isinstance(fitted.model, MLP)
    assert fitted.model.net[0].out_features == 3
    again = spec.set_opt_hparams(lr=0.1).fit((x, y), epochs=1, verbose=False)
    assert again.model is not fitted.model  # built anew, as a class is
    with pytest.raises(ConfigError, match=r"relu\(\*\*\{\}\) failed: TypeError"):
        lw.setup(nn.functional.relu, loss=nn.MSELoss(), optimizer=torch.optim.SGD).fit(
            (x, y), verbose=False
        )
    with pytest.raises(ConfigError, match=r"returned Tensor, not an nn\.Module\. A factory"):
        lw.setup(lambda: torch.zeros(1), loss=nn.MSELoss(), optimizer=torch.optim.SGD).fit(
            (x, y), verbose=False
        )


@pytest.mark.parametrize("loss", [5, "mse", [nn.MSELoss()]])
def test_loss_must_be_callable(loss: Any) -> None:
    with pytest.raises(
        ConfigError,
        match=r"loss must be callable as loss\(pred, target\), "
        r"e\.g\. nn\.CrossEntropyLoss\(\); got",
    ):
        lw.setup(MLP, loss=loss, optimizer=torch.optim.SGD)


def test_loss_class_instead_of_instance() -> None:
    with pytest.raises(
        ConfigError,
        match=r"loss: got the class MSELoss; pass an instance, "
        r"e\.g\. loss=MSELoss\(\)",
    ):
        lw.setup(MLP, loss=nn.MSELoss, optimizer=torch.optim.SGD)


@pytest.mark.parametrize("optimizer", ["adam", 0.01, {"lr": 0.1}])
def test_optimizer_must_be_a_class_factory_or_instance(optimizer: Any) -> None:
    with pytest.raises(
        ConfigError,
        match=r"optimizer must be an optimizer class \(e\.g\. "
        r"torch\.optim\.Adam\), a factory f\(params, \*\*opt_hparams\), or a "
        r"built optimizer; got",
    ):
        lw.setup(MLP, loss=nn.MSELoss(), optimizer=optimizer)


def test_built_optimizer_over_other_parameters_is_refused() -> None:
    other = torch.optim.SGD(MLP().parameters(), lr=0.1)
    x, y = make_data(32)
    with pytest.raises(
        ConfigError,
        match=r"the optimizer holds 4 parameter\(s\) that are not "
        r"the module's; build it from this module's parameters",
    ):
        lw.setup(MLP(), loss=nn.MSELoss(), optimizer=other).fit((x, y), verbose=False)


def test_optimizer_factory_returning_garbage() -> None:
    x, y = make_data(32)
    with pytest.raises(
        ConfigError,
        match=r"gave str for 'opt'; expected a torch\.optim\."
        r"Optimizer \(or a dict of them by name\)",
    ):
        lw.setup(MLP, loss=nn.MSELoss(), optimizer=lambda params: "sgd").fit((x, y))


def test_missing_optimizer_and_loss_say_where_to_put_them() -> None:
    x, y = make_data(32)
    with pytest.raises(
        ConfigError,
        match=r"no optimizer: pass optimizer= to setup\(\).*"
        r"set_optimizers\(self, \*\*opt_hparams\)",
    ):
        lw.setup(MLP, loss=nn.MSELoss()).fit((x, y))
    with pytest.raises(
        ConfigError,
        match=r"no loss: pass loss= to setup\(\).*"
        r"loss\(self, pred, target\) or step\(self, ctx\)",
    ):
        lw.setup(MLP, optimizer=torch.optim.SGD).set_opt_hparams(lr=0.1).fit((x, y))


def test_wrong_hparams_name_set_hparams() -> None:
    x, y = make_data(32)
    with pytest.raises(
        ConfigError,
        match=r"building MLP\(\*\*\{'hiden': 3\}\) failed: .*"
        r"\.set_hparams\(\.\.\.\)",
    ):
        make_spec(hiden=3).fit((x, y))
    with pytest.raises(
        ConfigError,
        match=r"building the optimizer SGD\(params, .*"
        r"\.set_opt_hparams\(\.\.\.\)",
    ):
        lw.setup(MLP, loss=nn.MSELoss(), optimizer=torch.optim.SGD).set_opt_hparams(
            lr=0.1, betas=(0.9, 0.9)
        ).fit((x, y))


def test_a_constructor_error_names_the_hparams_and_keeps_the_cause() -> None:
    x, y = make_data(32)
    with pytest.raises(
        ConfigError, match=r"building MLP\(\*\*\{'hidden': -3\}\) failed: RuntimeError: .*"
    ) as err:
        make_spec(hidden=-3).fit((x, y), verbose=False)
    assert isinstance(err.value.__cause__, RuntimeError)


@pytest.mark.parametrize(
    ("optimizer", "opt_hparams"),
    [(torch.optim.SGD, {"lr": -1}), (torch.optim.Adam, {"lr": 0.1, "betas": (2, 0.9)})],
)
def test_an_optimizer_value_error_names_the_opt_hparams(
    optimizer: Any, opt_hparams: dict[str, Any]
) -> None:
    x, y = make_data(32)
    spec = lw.setup(MLP, loss=nn.MSELoss(), optimizer=optimizer).set_opt_hparams(**opt_hparams)
    with pytest.raises(
        ConfigError, match=rf"building the optimizer {optimizer.__name__}\(params, .*ValueError"
    ) as err:
        spec.fit((x, y), verbose=False)
    assert isinstance(err.value.__cause__, ValueError)


@pytest.mark.parametrize("lr", [float("inf"), float("nan"), -float("inf")])
def test_a_non_finite_lr_is_refused_at_once(lr: float) -> None:
    spec = lw.setup(MLP, loss=nn.MSELoss(), optimizer=torch.optim.SGD)
    with pytest.raises(ConfigError, match=r"set_opt_hparams\(lr=.*\): the learning rate must be"):
        spec.set_opt_hparams(lr=lr)


def test_a_target_that_broadcasts_against_the_prediction_is_refused_once() -> None:
    x, y = make_data(64)
    spec = make_spec()
    with pytest.raises(lw.StepError, match=r"shape \(32, 1\) and the target \(32,\)") as err:
        spec.fit((x, y.squeeze(1)), epochs=1, verbose=False)
    assert "squeeze" in str(err.value.__cause__)
    run = err.value.run  # the run stays resumable; the check is not repeated per batch
    with pytest.warns(UserWarning, match="target size"):  # torch's own warning, from then on
        run.skip()
    assert run.state == "done"


def test_set_hparams_on_an_instance_and_set_opt_hparams_on_a_built_optimizer() -> None:
    net = MLP()
    with pytest.raises(
        ConfigError,
        match=r"got a built MLP instance\. Pass the class instead: "
        r"setup\(MLP, \.\.\.\)",
    ):
        lw.setup(net, loss=nn.MSELoss(), optimizer=torch.optim.SGD).set_hparams(hidden=3)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    with pytest.raises(ConfigError, match=r"got a built optimizer\. Pass its class"):
        lw.setup(net, loss=nn.MSELoss(), optimizer=opt).set_opt_hparams(lr=0.2)


def test_custom_step_with_the_wrong_signature() -> None:
    class BadStep(MLP):
        def step(self) -> None:
            pass

    x, y = make_data(32)
    with pytest.raises(
        ConfigError,
        match=r"BadStep\.step must take the context: "
        r"def step\(self, ctx\)",
    ):
        lw.setup(BadStep, optimizer=torch.optim.SGD).set_opt_hparams(lr=0.1).fit((x, y))


@pytest.mark.parametrize("data", [5, 2.5, None, "data.csv", {"x": 1}])
def test_data_must_be_iterable_data(data: Any) -> None:
    with pytest.raises(
        DataError,
        match=r"data must be a DataLoader, a Dataset \(torch's, or any with __getitem__ and "
        r"__len__, e\.g\. a Hugging Face datasets\.Dataset\), a tuple "
        r"\(input, target\) of tensors or numpy arrays.*; got",
    ):
        make_spec().fit(data, verbose=False)


@pytest.mark.parametrize("epochs", [-1, (3, 2), (-1, 2), "3", 2.0, (1, 2, 3), True])
def test_epochs_must_be_a_count_or_min_max(epochs: Any) -> None:
    x, y = make_data(32)
    with pytest.raises(ConfigError, match=r"epochs"):
        make_spec().fit((x, y), epochs=epochs, verbose=False)


def test_epochs_messages_say_how_to_fix() -> None:
    x, y = make_data(32)
    with pytest.raises(ConfigError, match=r"epochs=-1: the number of epochs must be >= 0"):
        make_spec().fit((x, y), epochs=-1)
    with pytest.raises(
        ConfigError,
        match=r"epochs=\(3, 2\): expected \(min_epochs, max_epochs\)"
        r" with 0 <= min_epochs <= max_epochs, e\.g\. epochs=\(5, 20\)",
    ):
        make_spec().fit((x, y), epochs=(3, 2))


@pytest.mark.parametrize("fraction", [0.0, 1.0, 1.5, -0.2, 1, 0])
def test_valid_data_fraction_must_be_in_0_1(fraction: float) -> None:
    x, y = make_data(32)
    with pytest.raises(
        ConfigError,
        match=rf"valid_data={fraction!r}: a number is the fraction "
        r"of data held out .* strictly between 0 and 1, e\.g\. valid_data=0\.2",
    ):
        make_spec().fit((x, y), valid_data=fraction)


def test_dataloader_options_with_a_ready_dataloader() -> None:
    x, y = make_data(32)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    with pytest.raises(
        ConfigError,
        match=r"dataloader_options=\{'batch_size': 4\} cannot be "
        r"applied to data, which is already a DataLoader",
    ):
        make_spec().fit(loader, dataloader_options={"batch_size": 4})
    with pytest.raises(ConfigError, match=r"cannot be applied to valid_data"):
        make_spec().fit((x, y), valid_data=loader, dataloader_options={"batch_size": 4})


def test_unknown_keyword_to_fit_lists_the_valid_ones() -> None:
    x, y = make_data(32)
    with pytest.raises(
        ConfigError,
        match=r"fit\(\) got an unknown argument 'epoch'\. Did you "
        r"mean 'epochs'\? Valid arguments: data, epochs, valid_data, callbacks, "
        r"accelerator, verbose, dataloader_options, accumulate, layer_history\.",
    ):
        make_spec().fit((x, y), epoch=3)
    with pytest.raises(ConfigError, match=r"unknown argument 'lr'\. Valid arguments"):
        make_spec().run((x, y), lr=0.1)


def test_bad_verbose_and_accelerator() -> None:
    x, y = make_data(32)
    with pytest.raises(ConfigError, match=r"verbose must be True, False or None, got 'yes'"):
        make_spec().fit((x, y), verbose="yes")
    with pytest.raises(ConfigError, match=r"accelerator must be an Accelerator, got 'cuda'"):
        make_spec().fit((x, y), accelerator="cuda")


def test_metric_without_update_or_compute() -> None:
    class NotAMetric:
        def update(self, pred: Any, target: Any) -> None:
            pass

    with pytest.raises(
        ConfigError,
        match=r"metrics: .* is not a metric: it has no compute\(\) "
        r"method of its own\. A metric needs update\(pred, target\) and compute\(\)",
    ):
        lw.setup(MLP, loss=nn.MSELoss(), optimizer=torch.optim.SGD, metrics=[NotAMetric()])
    with pytest.raises(ConfigError, match=r"no update\(\) or compute\(\)"):
        lw.setup(MLP, loss=nn.MSELoss(), optimizer=torch.optim.SGD, metrics=[object()])


def test_misnamed_callback_method_in_fit_is_a_config_error() -> None:
    class Typo(Callback):
        def on_epoch_ends(self, ctx: lw.Context) -> None:
            pass

    x, y = make_data(32)
    with pytest.raises(
        ConfigError,
        match=r"Typo\.on_epoch_ends is not an event, so it would "
        r"never be called\. Valid method names: .*on_epoch_end",
    ):
        make_spec().fit((x, y), callbacks=[Typo()])


# -- runtime failures: a clear error, and the weights of the last completed step -----------------


def _reference(spec: lw.Setup, data: Any, steps: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Weights after ``steps`` completed optimizer steps (0: the initial weights)."""
    torch.manual_seed(seed)
    run = spec.run(data, epochs=1, verbose=False, dataloader_options=OPTS)
    if steps:
        run.step(E.on_train_batch_after_step, n=steps)
    else:
        run.step(E.on_fit_begin)
    return snapshot(run.ctx.model)


def _failing_fit(
    spec: lw.Setup, data: Any, error: type, match: str, seed: int = 0, **kwargs: Any
) -> lw.Run:
    torch.manual_seed(seed)
    with pytest.raises(error, match=match) as info:
        spec.fit(data, epochs=1, verbose=False, dataloader_options=OPTS, **kwargs)
    run = info.value.run
    assert isinstance(run, lw.Run)
    assert run.state == "error"
    assert run.error is info.value
    return run


def test_loss_that_is_not_a_scalar() -> None:
    x, y = make_data(48)
    spec = make_spec(loss=nn.MSELoss(reduction="none"))
    run = _failing_fit(
        spec,
        (x, y),
        lw.StepError,
        r"loss_fn\(pred, target\) failed before on_train_batch_after_loss "
        r"\(epoch 1, batch 1\): ValueError: the loss must be a scalar tensor, but "
        r"loss_fn returned \(16, 1\)\. Reduce it \(e\.g\. reduction='mean'",
    )
    assert state_equal(snapshot(run.ctx.model), _reference(spec, (x, y), 0))


@pytest.mark.filterwarnings("ignore:Using a target size")
def test_output_shape_that_does_not_fit_the_loss_names_event_batch_and_shapes() -> None:
    x, y = make_data(48, out=2)
    spec = make_spec(out=3)
    _failing_fit(
        spec,
        (x, y),
        lw.StepError,
        r"(?s)loss_fn\(pred, target\) failed before on_train_batch_after_loss "
        r"\(epoch 1, batch 1\): RuntimeError: .*size of tensor.*\n"
        r"input: tensor of shape \(16, 4\), float32, on cpu; "
        r"pred: tensor of shape \(16, 3\), float32, on cpu; "
        r"target: tensor of shape \(16, 2\), float32, on cpu",
    )


@pytest.mark.filterwarnings("ignore:Using a target size")
def test_shape_error_at_a_later_batch_keeps_the_weights_of_the_last_step() -> None:
    x, y = make_data(64, out=2)
    data = batches(x, y, 16)
    data[2] = (data[2][0], torch.zeros(16, 3))  # batch 3's target does not fit
    spec = make_spec(out=2)
    torch.manual_seed(0)
    with pytest.raises(
        lw.StepError,
        match=r"(?s)failed before on_train_batch_after_loss "
        r"\(epoch 1, batch 3\).*pred: tensor of shape \(16, 2\).*target: tensor "
        r"of shape \(16, 3\)",
    ) as info:
        spec.fit(data, epochs=1, verbose=False)
    run = info.value.run
    torch.manual_seed(0)
    ref = spec.run(data, epochs=1, verbose=False)
    ref.step(E.on_train_batch_end, n=2)
    assert state_equal(snapshot(run.ctx.model), snapshot(ref.ctx.model))
    # the context is intact for inspection
    assert run.ctx.iter == 3
    assert tuple(run.ctx.target.shape) == (16, 3)


def test_batches_without_target_when_the_loss_needs_one() -> None:
    x, _ = make_data(48)
    spec = make_spec()
    run = _failing_fit(
        spec,
        x,
        lw.StepError,
        r"(?s)loss_fn\(pred, target\) failed before on_train_batch_after_loss "
        r"\(epoch 1, batch 1\).*target: None \(the batch has no target: the "
        r"loader must yield \(input, target\) pairs\)",
    )
    assert state_equal(snapshot(run.ctx.model), _reference(spec, x, 0))


@pytest.mark.parametrize(
    ("event", "completed"),
    [
        (E.on_train_batch_begin, 2),
        (E.on_train_batch_after_loss, 2),
        (E.on_train_batch_before_step, 2),
        (E.on_train_batch_after_step, 3),
        (E.on_train_batch_end, 3),
    ],
)
def test_callback_that_raises_names_class_event_epoch_batch(event: Event, completed: int) -> None:
    def method(self: Any, ctx: lw.Context) -> None:
        if ctx.iter == 3:
            raise RuntimeError("callback bug")

    cb = type("Faulty", (Callback,), {event.value: method})()
    x, y = make_data(80)
    spec = make_spec()
    run = _failing_fit(
        spec,
        (x, y),
        lw.CallbackError,
        rf"Callback Faulty\.{event.value} raised RuntimeError: callback bug "
        r"\(epoch 1, batch 3\)",
        callbacks=[cb],
    )
    assert run.error.callback is cb
    assert state_equal(snapshot(run.ctx.model), _reference(spec, (x, y), completed))


def test_forward_that_raises_keeps_the_weights_of_the_last_step() -> None:
    class Breaks(MLP):
        calls = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            Breaks.calls += 1
            if Breaks.calls == 3:
                raise FloatingPointError("overflow")
            return super().forward(x)

    x, y = make_data(80)
    spec = make_spec(Breaks)
    run = _failing_fit(
        spec,
        (x, y),
        lw.StepError,
        r"(?s)model\(input\) failed before "
        r"on_train_batch_after_pred \(epoch 1, batch 3\): FloatingPointError: "
        r"overflow\ninput: tensor of shape \(16, 4\).*target: tensor",
    )
    Breaks.calls = -100
    assert state_equal(snapshot(run.ctx.model), _reference(spec, (x, y), 2))


def test_failed_fit_can_be_retried_from_the_error() -> None:
    flag = {"broken": True}

    class Once(Callback):
        def on_train_batch_end(self, ctx: lw.Context) -> None:
            if flag["broken"] and ctx.iter == 2:
                raise RuntimeError("once")

    x, y = make_data(64)
    torch.manual_seed(0)
    with pytest.raises(lw.CallbackError) as info:
        make_spec().fit(
            (x, y), epochs=2, callbacks=[Once()], verbose=False, dataloader_options=OPTS
        )
    flag["broken"] = False
    run = info.value.run
    run.retry()
    assert run.state == "done"
    torch.manual_seed(0)
    clean = make_spec().fit((x, y), epochs=2, verbose=False, dataloader_options=OPTS)
    assert state_equal(snapshot(run.result.model), snapshot(clean.model))


# -- lw.show_loop ------------------------------------------------------------------------------

LOOP_OF_A_FIT = """\
on_fit_begin                           Profile, EarlyStopping, Sentinel
  on_epoch_begin                       Profile, Progress
    on_train_begin                     Profile, TrainValid, Metrics, Progress, Sentinel
      on_train_batch_begin             -
        on_train_batch_after_pred      Sentinel
        on_train_batch_after_loss      -
        on_train_batch_before_backward Sentinel
        on_train_batch_before_step     -
        on_train_batch_after_step      -
      on_train_batch_end               Metrics, Progress
    on_train_end                       Profile, Metrics, Progress
    on_valid_begin                     Profile, TrainValid, Metrics, Progress
      on_valid_batch_begin             -
        on_valid_batch_after_pred      Sentinel
        on_valid_batch_after_loss      -
      on_valid_batch_end               Metrics, Progress
    on_valid_end                       Profile, Metrics, Progress
  on_epoch_end                         Profile, EarlyStopping
on_early_stopping                      EarlyStopping
on_interrupt                           Interrupt
on_fit_end                             Profile, Progress
on_predict_begin                       Progress
  on_predict_batch_begin               -
  on_predict_batch_end                 Progress
on_predict_end                         Progress
"""


class _NeverBuilt(nn.Module):
    def __init__(self) -> None:
        raise AssertionError("show_loop built the model")


def test_show_loop_of_a_setup_is_the_loop_fit_would_run_without_building_anything(
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = lw.setup(_NeverBuilt, loss=nn.MSELoss(), optimizer=torch.optim.SGD)
    lw.show_loop(spec, callbacks=[lw.callbacks.EarlyStopping(patience=2)])
    assert capsys.readouterr().out == LOOP_OF_A_FIT


def test_show_loop_of_a_setup_matches_the_run_fit_builds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = make_spec()
    lw.show_loop(spec, callbacks=[lw.callbacks.EarlyStopping(patience=2)])
    from_setup = capsys.readouterr().out
    es = lw.callbacks.EarlyStopping(patience=2)
    run = spec.fit(make_data(32), epochs=0, verbose=False, callbacks=[es]).run  # fit's own
    lw.show_loop(run)
    assert capsys.readouterr().out == from_setup == LOOP_OF_A_FIT


def test_show_loop_refuses_what_is_neither_a_run_nor_a_setup() -> None:
    fitted = make_spec().fit(make_data(32), epochs=1, verbose=False)
    with pytest.raises(ConfigError, match=r"a Run or a Setup .*got Fitted; .*fitted\.run"):
        lw.show_loop(fitted)
    with pytest.raises(ConfigError, match=r"callbacks= is for a Setup"):
        lw.show_loop(fitted.run, callbacks=[])


def test_the_docstring_examples_run() -> None:
    result = doctest.testmod(luzwidget.module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
