"""The composition root: the one place that builds a Run and installs its features, and
drives a blocking run to its end: from a Setup and fit()'s arguments, for predict/evaluate,
for a loaded model.

``module``, ``fitted``, ``lr_finder`` and ``saving`` build through here. Every run of a fit
gets time travel (automatic snapshots for interactive runs) and insight; under several
processes, lockstep; with a ``Serve`` callback, serving (see :mod:`luzwidget.control.features`).
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from luzwidget.callbacks import Interrupt, Metrics, Profile, Progress, TrainValid
from luzwidget.callbacks.progress import in_notebook
from luzwidget.callbacks.serve import Serve, serve_from_env
from luzwidget.control.run import Run
from luzwidget.core.accelerator import Accelerator
from luzwidget.core.accumulate import check_accumulate
from luzwidget.core.batches import output_loss, takes_labels
from luzwidget.core.build import custom_step, make_context
from luzwidget.core.checks import build_module, build_optimizer, check_callbacks_arg, check_epochs
from luzwidget.core.context import Context
from luzwidget.core.data import as_loader, split_valid
from luzwidget.core.distributed import unwrap
from luzwidget.core.engine import Engine, engine_of
from luzwidget.core.events import Event
from luzwidget.core.exceptions import ConfigError
from luzwidget.core.loop import Loop, fit_loop, interrupt_loop
from luzwidget.core.pieces import default_backward, default_step_opt
from luzwidget.core.report import report
from luzwidget.core.states import RunState
from luzwidget.insight import feature as insight
from luzwidget.parallel.lockstep import install as install_lockstep
from luzwidget.travel import feature as travel

if TYPE_CHECKING:
    from luzwidget.module import Setup

__all__ = [
    "FIT_ARGS",
    "build_run",
    "drive",
    "drive_to_end",
    "finished_run",
    "loop_of",
    "side_context",
]

FIT_ARGS = (
    "data",
    "epochs",
    "valid_data",
    "callbacks",
    "accelerator",
    "verbose",
    "dataloader_options",
    "accumulate",
    "layer_history",
)


# -- contexts --------------------------------------------------------------------------


def side_context(
    parent: Context, loader: Any, callbacks: Any, verbose: bool | None, defaults: list[Any]
) -> Context:
    """A context for ``predict`` / ``evaluate`` on ``loader``, with the model of ``parent``.

    Under DDP each rank predicts (evaluates) on the whole of ``loader`` with the user's
    module: no shard, no collective."""
    accelerator = parent.accelerator
    placed = accelerator.prepare_loader(loader, shard=False) if accelerator else loader
    return make_context(
        unwrap(parent.model),
        accelerator,
        [*defaults, *check_callbacks_arg(callbacks)],
        verbose=verbose_flag(verbose),
        device=parent.device,
        valid_data=placed,
        optimizers=dict(parent.optimizers),  # their names name the losses (never stepped)
        hparams=dict(parent.hparams),
    )


def fit_callbacks(spec: Setup, callbacks: Any = None) -> list[Any]:
    """The callbacks of a fit: luz's defaults, then ``callbacks`` (the ``fit()`` argument)."""
    defaults = [Profile(), TrainValid(), Metrics(spec.metrics), Progress(), Interrupt()]
    return serve_from_env([*defaults, *check_callbacks_arg(callbacks)])  # LUZWIDGET_SERVE


def loop_text(callbacks: list[Any]) -> str:
    """What ``run.show_loop()`` prints for a run of a fit with ``callbacks`` (and what its
    features add, the sentinel); builds no model."""
    return Engine(Context(callbacks=[*callbacks, *insight.preview()])).loop_text()


def loop_of(make: Callable[..., Loop], *args: Any) -> Callable[[Context], Loop]:
    """``make(ctx, engine, *args)`` as a Run's ``make_loop(ctx)``."""
    return lambda ctx: make(ctx, engine_of(ctx), *args)


# -- runs ------------------------------------------------------------------------------


def build_run(
    spec: Setup,
    data: Any,
    epochs: Any,
    kwargs: Mapping[str, Any],
    previous: Context | None = None,
    finish: Callable[[Run], Any] | None = None,
    snapshots: bool = False,
) -> Run:
    """Check the fit arguments, build model, optimizers, loaders and context, and a Run
    whose ``result`` is ``finish(run)`` once done; with ``snapshots``, one that keeps
    automatic snapshots at epoch ends (interactive runs: a blocking fit keeps none)."""
    options = _check_kwargs(kwargs)
    min_epochs, max_epochs = check_epochs(epochs)
    accumulate = check_accumulate(options.get("accumulate", 1))
    train, valid = _loaders(data, options, empty_ok=max_epochs == 0)
    accelerator = options.get("accelerator") or Accelerator()
    if not isinstance(accelerator, Accelerator):
        raise ConfigError(f"accelerator must be an Accelerator, got {accelerator!r}.")
    callbacks = fit_callbacks(spec, options.get("callbacks"))
    model, optimizers, epoch, records = _trained_so_far(spec, accelerator, previous)
    ctx = make_context(
        model,
        accelerator,
        callbacks,
        verbose=verbose_flag(options.get("verbose")),
        optimizers=optimizers,
        train_data=accelerator.prepare_loader(train),
        valid_data=accelerator.prepare_loader(valid, "valid_data"),
        epoch=epoch,
        records=records,
        loss_fn=loss_fn_of(spec, unwrap(model)),
        backward=spec.backward or default_backward,
        step_opt=default_step_opt,
        hparams=dict(spec.hparams),
        opt_hparams=dict(spec.opt_hparams),
    )
    ctx.max_epochs = epoch + max_epochs
    ctx.min_epochs = epoch + min_epochs
    ctx.accumulate = accumulate
    run = Run(ctx, loop_of(fit_loop), finish=finish)
    equip(run, automatic=snapshots)
    _track_layers(run, options.get("layer_history", False))
    if accelerator.world is not None:
        install_lockstep(run, accelerator.world)  # several processes: one run, in step
    serves = [cb for cb in callbacks if isinstance(cb, Serve)]
    if serves:
        from luzwidget.remote.serving import install as install_serving

        for serve in serves:
            install_serving(run, serve)  # rank 0 serves from on_fit_begin
    return run


def _track_layers(run: Run, value: Any) -> None:
    """``fit(layer_history=...)``: True records at the default rate, a number of seconds at
    that rate (0: every batch), False or None not at all (see ``run.track_layers``)."""
    if value is None or value is False:
        return
    if value is True:
        run.track_layers()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        run.track_layers(every_s=value)
    else:
        raise ConfigError(
            "layer_history must be True, False or a number of seconds between samples "
            f"(0: every batch), got {value!r}."
        )


def equip(run: Run, automatic: bool = True) -> None:
    """Install what every run of a fit has: time travel (``automatic``: its own snapshots
    at epoch ends and pauses; a blocking fit keeps none) and insight. A branch of ``run``
    is equipped the same way (``run.features.equip``)."""
    travel.install(run, automatic=automatic)
    insight.install(run)
    run.features.equip = equip


def _trained_so_far(
    spec: Setup, accelerator: Accelerator, previous: Context | None
) -> tuple[nn.Module, dict[str, torch.optim.Optimizer], int, dict[str, Any]]:
    """Model, optimizers, epoch and records to start from: new ones, or ``previous``'s."""
    if previous is None:
        model = build_model(spec)
        optimizers, epoch, records = build_optimizers(spec, model), 0, {}
        model = accelerator.prepare_model(model)
    else:
        model = accelerator.prepare_model(previous.model)
        optimizers, epoch, records = previous.optimizers, previous.epoch, previous.records
    accelerator.prepare_optimizers(optimizers)
    return model, optimizers, epoch, records


def finished_run(
    spec: Setup,
    model: nn.Module,
    optimizers: dict[str, torch.optim.Optimizer],
    records: dict[str, Any],
    epoch: int,
    accelerator: Accelerator | None,
    finish: Callable[[Run], Any],
) -> Run:
    """A done run of ``model`` after ``epoch`` epochs (a loaded model), as after fit()."""
    accelerator = accelerator or Accelerator()
    model = accelerator.prepare_model(model)
    accelerator.prepare_optimizers(optimizers)
    ctx = make_context(
        model,
        accelerator,
        [],
        optimizers=optimizers,
        records=records,
        loss_fn=loss_fn_of(spec, unwrap(model), strict=False),
        backward=spec.backward or default_backward,
        step_opt=default_step_opt,
        hparams=dict(spec.hparams),
        opt_hparams=dict(spec.opt_hparams),
    )
    ctx.max_epochs = ctx.epoch = epoch
    run = Run.finished(ctx, finish)
    equip(run, automatic=False)
    return run


# -- driving ---------------------------------------------------------------------------


def drive_to_end(run: Run, interrupted: Callable[[Run], Any] | None = None) -> Any:
    """Drive ``run`` to its end here, the way ``fit()`` does; return its ``result``.

    In a notebook with verbose on, progress and plots are shown live. A pause asked for
    (a breakpoint, ``ctx.pause()``) is reported and driven past. After Ctrl-C the fit ends
    as luz's does, through :func:`~luzwidget.core.loop.interrupt_loop` (``on_interrupt``, then
    ``on_fit_end``), the run stays resumable, and ``interrupted(run)`` is returned.

    Raises
    ------
    LuzwidgetError
        What stopped the run on an error (``err.run`` is the paused run).
    """
    _show_live(run)
    run.resume()
    while run.state in (RunState.PAUSED, RunState.ERROR) and not run.interrupted:
        serving = run.features.serving  # served (callbacks.Serve): a notebook steers
        if serving is None or not serving.hold():
            break
    while run.state == RunState.PAUSED and not run.interrupted:
        report(f"{run.reason}; fit() goes on (use run() to stop at breakpoints).")
        run.resume()
    if run.state == RunState.PAUSED:  # interrupted: luz's interrupt callback ends training
        run.drive_first(interrupt_loop(run.ctx, engine_of(run.ctx)), Event.on_fit_end)
    if run.state == RunState.ERROR:
        raise run.error  # type: ignore[misc]
    if run.state == RunState.DONE:
        return run.result
    return interrupted(run) if interrupted is not None else None


def drive(run: Run) -> None:
    """Drive a short run (predict, evaluate) here until it stops; raise its error."""
    run.resume()
    if run.state == RunState.ERROR:
        raise run.error  # type: ignore[misc]


def _show_live(run: Run) -> None:
    """In a notebook with verbose on, show progress and live plots while fit() blocks.

    A blocking cell handles no widget message, so the controls would be dead: only the
    progress and plots parts are shown (the loop itself pushes their updates).
    """
    if not run.ctx.verbose or not in_notebook():
        return
    from IPython.display import display

    display(run.dashboard(parts=("progress", "plots")))
    for callback in run.ctx.callbacks:
        if isinstance(callback, Progress):
            callback.bars = False  # the dashboard shows them; keep the epoch summaries


# -- checks and builders ---------------------------------------------------------------


def _loaders(data: Any, options: Mapping[str, Any], empty_ok: bool = False) -> tuple[Any, Any]:
    loader_options = options.get("dataloader_options")
    valid_data = options.get("valid_data")
    if isinstance(valid_data, float | int) and not isinstance(valid_data, bool):
        data, valid_data = split_valid(data, valid_data)
    train = as_loader(data, training=True, options=loader_options, empty_ok=empty_ok)
    valid = None
    if valid_data is not None:
        valid = as_loader(
            valid_data,
            training=False,
            options=loader_options,
            argument="valid_data",
            empty_ok=empty_ok,
        )
    return train, valid


def _check_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    unknown = [k for k in kwargs if k not in FIT_ARGS]
    if unknown:
        name = unknown[0]
        close = difflib.get_close_matches(name, FIT_ARGS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"fit() got an unknown argument {name!r}.{hint} Valid arguments: {', '.join(FIT_ARGS)}."
        )
    return dict(kwargs)


def verbose_flag(verbose: Any) -> bool:
    if verbose is None:
        return in_notebook() or sys.stderr.isatty()
    if not isinstance(verbose, bool):
        raise ConfigError(f"verbose must be True, False or None, got {verbose!r}.")
    return verbose


def build_model(spec: Setup) -> nn.Module:
    if isinstance(spec.module, nn.Module):
        return spec.module
    return build_module(spec.module, spec.hparams)  # a class or a factory; errors name hparams


def build_optimizers(spec: Setup, model: nn.Module) -> dict[str, torch.optim.Optimizer]:
    optimizer = spec.optimizer
    if optimizer is None:
        make = getattr(model, "set_optimizers", None)
        if make is None:
            raise ConfigError(
                "no optimizer: pass optimizer= to setup() (e.g. torch.optim.Adam) or define "
                "set_optimizers(self, **opt_hparams) on the module."
            )
        built: Any = make(**spec.opt_hparams)
        where = f"{type(model).__name__}.set_optimizers()"
    elif isinstance(optimizer, torch.optim.Optimizer):
        _check_owned(optimizer, model)
        built, where = optimizer, "optimizer"
    else:
        built = build_optimizer(optimizer, model.parameters(), spec.opt_hparams)
        where = f"optimizer {getattr(optimizer, '__name__', repr(optimizer))}"
    optimizers = dict(built) if isinstance(built, Mapping) else {"opt": built}
    for key, opt in optimizers.items():
        if not isinstance(opt, torch.optim.Optimizer):
            raise ConfigError(
                f"{where} gave {type(opt).__name__} for {key!r}; expected a torch.optim.Optimizer "
                "(or a dict of them by name)."
            )
    return optimizers


def _check_owned(optimizer: torch.optim.Optimizer, model: nn.Module) -> None:
    own = {id(p) for p in model.parameters()}
    foreign = sum(id(p) not in own for g in optimizer.param_groups for p in g["params"])
    if foreign:
        raise ConfigError(
            f"the optimizer holds {foreign} parameter(s) that are not the module's; build it "
            "from this module's parameters, e.g. torch.optim.Adam(model.parameters())."
        )


def loss_fn_of(spec: Setup, model: nn.Module, strict: bool = True) -> Any:
    """The loss function: ``loss=``, the module's ``loss`` method, or (a module whose
    ``forward`` takes ``labels``, as Hugging Face's do) the loss its output holds; None
    for a module with its own ``step``. ``strict``: refuse a module with none of these."""
    if spec.loss is not None:
        return spec.loss
    own = getattr(model, "loss", None)
    if callable(own) and not isinstance(own, torch.Tensor):
        return own
    if custom_step(model) is not None:
        return None
    if takes_labels(model):
        return output_loss
    if strict:
        raise ConfigError(
            "no loss: pass loss= to setup() (e.g. nn.CrossEntropyLoss()), define "
            "loss(self, pred, target) or step(self, ctx) on the module, or return the loss "
            "from forward(self, ..., labels) as output.loss (as Hugging Face models do)."
        )
    return None
