"""``setup()``: describe a model, its loss, optimizer and metrics; then ``fit()`` or ``run()``."""

from __future__ import annotations

import copy
import difflib
import functools
import inspect
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from traitlets import TraitError

from luzwidget.accelerator import Accelerator
from luzwidget.callbacks import Interrupt, Metrics, Profile, Progress, TrainValid
from luzwidget.callbacks.progress import in_notebook
from luzwidget.context import Context, check_callbacks
from luzwidget.data import as_loader, split_valid
from luzwidget.exceptions import ConfigError
from luzwidget.loop import fit_loop
from luzwidget.metrics.base import MetricSet, metric_set
from luzwidget.run import Run

if TYPE_CHECKING:
    from luzwidget.fitted import Fitted
    from luzwidget.lr_finder import LRFinderResult

__all__ = ["Setup", "setup"]

FIT_ARGS = (
    "data", "epochs", "valid_data", "callbacks", "accelerator", "verbose", "dataloader_options"
)


def setup(
    module: type[nn.Module] | nn.Module,
    loss: Any = None,
    optimizer: Any = None,
    metrics: Any = None,
    backward: Any = None,
) -> Setup:
    """Describe what to train, as luz's ``setup()``.

    Parameters
    ----------
    module
        An ``nn.Module`` class (built at each fit with :meth:`Setup.set_hparams`) or a
        built instance (trained in place).
    loss
        ``loss(pred, target)`` returning a scalar tensor, e.g. ``nn.CrossEntropyLoss()``.
        None: the module's own ``loss(self, pred, target)`` or ``step(self, ctx)``.
    optimizer
        An optimizer class (``torch.optim.Adam``), a factory ``f(params, **opt_hparams)``,
        or a built optimizer over the module's parameters (with a module instance). None:
        the module's ``set_optimizers(self, **opt_hparams)``.
    metrics
        Metrics for training and validation (a list, or :func:`metrics.metric_set`).
    backward
        ``backward(loss)``; default ``loss.backward()``.

    Examples
    --------
    >>> import torch, luzwidget as lw
    >>> spec = lw.setup(torch.nn.Linear, loss=torch.nn.MSELoss(), optimizer=torch.optim.SGD)
    >>> spec = spec.set_hparams(in_features=3, out_features=1).set_opt_hparams(lr=0.1)
    >>> fitted = spec.fit((torch.randn(64, 3), torch.randn(64, 1)), epochs=2, verbose=False)
    >>> len(fitted.records["metrics"]["train"])
    2
    """
    return Setup(module, loss, optimizer, metrics, backward)


class Setup:
    """A model description from :func:`setup`; ``fit()`` trains it, ``run()`` steps it."""

    def __init__(
        self, module: Any, loss: Any, optimizer: Any, metrics: Any, backward: Any
    ) -> None:
        self.module = _check_module(module)
        self.loss = _check_loss(loss)
        self.optimizer = _check_optimizer(optimizer)
        self.metrics: MetricSet = metric_set(metrics)
        if backward is not None and not callable(backward):
            raise ConfigError(f"backward must be callable(loss) or None, got {backward!r}.")
        self.backward = backward
        self.hparams: dict[str, Any] = {}
        self.opt_hparams: dict[str, Any] = {}

    def set_hparams(self, **hparams: Any) -> Setup:
        """Arguments the module class is built with; returns a new Setup."""
        if isinstance(self.module, nn.Module):
            raise ConfigError(
                "set_hparams() passes arguments to the module's constructor, but setup() got "
                f"a built {type(self.module).__name__} instance. Pass the class instead: "
                f"setup({type(self.module).__name__}, ...)."
            )
        new = copy.copy(self)
        new.hparams = {**self.hparams, **hparams}
        return new

    def set_opt_hparams(self, **opt_hparams: Any) -> Setup:
        """Arguments the optimizer is built with (e.g. ``lr``); returns a new Setup."""
        if isinstance(self.optimizer, torch.optim.Optimizer):
            raise ConfigError(
                "set_opt_hparams() passes arguments to the optimizer's constructor, but setup() "
                "got a built optimizer. Pass its class (e.g. optimizer=torch.optim.Adam) instead."
            )
        new = copy.copy(self)
        new.opt_hparams = {**self.opt_hparams, **opt_hparams}
        return new

    def fit(self, data: Any, epochs: Any = 10, **kwargs: Any) -> Fitted:
        """Train (blocking) and return the fitted model, as luz's ``fit()``.

        Parameters
        ----------
        data
            A DataLoader, a Dataset, a tuple ``(input, target)`` of tensors or arrays, a
            single tensor, or a list of ready batches.
        epochs
            Maximum number of epochs (int >= 0), or ``(min_epochs, max_epochs)``.
        valid_data
            Validation data (same kinds as ``data``), or a float in (0, 1): that fraction of
            ``data`` is held out at random.
        callbacks
            Callbacks added to the defaults (profile, train_valid, metrics, progress,
            interrupt).
        accelerator
            An :class:`Accelerator`; default: CUDA if available, else MPS, else CPU.
        verbose
            Show progress; None means "in an interactive session".
        dataloader_options
            ``DataLoader`` keyword arguments (default batch_size=32; training batches are
            shuffled and the last partial one dropped; validation is never shuffled).

        Raises
        ------
        CallbackError, StepError
            If a callback or the step fails; ``err.run`` is the paused run, which can
            still ``retry()`` or ``skip()`` once the cause is fixed.

        Notes
        -----
        Ctrl-C ends training as luz does (``on_interrupt``, then ``on_fit_end``) and returns
        what was trained so far; ``fitted.run.resume()`` continues exactly from there.
        """
        return finish_blocking(self.run(data, epochs, **kwargs), self)

    def run(self, data: Any, epochs: Any = 10, **kwargs: Any) -> Run:
        """Like :meth:`fit`, but return a :class:`Run` that has not started yet."""
        return build_run(self, data, epochs, kwargs)

    def lr_finder(
        self,
        data: Any,
        steps: int = 100,
        start_lr: float = 1e-7,
        end_lr: float = 1e-1,
        log_spaced: bool = True,
        **kwargs: Any,
    ) -> LRFinderResult:
        """Train a fresh copy for ``steps`` batches, raising the lr each batch (luz's
        ``lr_finder``); see :func:`luzwidget.lr_finder.lr_finder`. This Setup is not changed.

        Returns an object with ``.frame`` (columns lr, loss), ``.suggested_lr`` and
        ``.plot()`` (the smoothed loss on a log axis, the suggestion marked).
        """
        from luzwidget.lr_finder import lr_finder

        return lr_finder(self, data, steps, start_lr, end_lr, log_spaced, **kwargs)

    def __repr__(self) -> str:
        name = getattr(self.module, "__name__", type(self.module).__name__)
        return f"<Setup {name} hparams={self.hparams} opt_hparams={self.opt_hparams}>"


# -- building a run --------------------------------------------------------------------


def build_run(
    spec: Setup, data: Any, epochs: Any, kwargs: Mapping[str, Any], previous: Context | None = None
) -> Run:
    """Check the fit arguments, build model, optimizers, loaders and context, and a Run."""
    from luzwidget.fitted import Fitted

    options = _check_kwargs(kwargs)
    min_epochs, max_epochs = _check_epochs(epochs)
    loader_options = options.get("dataloader_options")
    valid_data = options.get("valid_data")
    if isinstance(valid_data, float | int) and not isinstance(valid_data, bool):
        data, valid_data = split_valid(data, valid_data)
    train = as_loader(data, training=True, options=loader_options)
    valid = None
    if valid_data is not None:
        valid = as_loader(valid_data, training=False, options=loader_options, argument="valid_data")
    accelerator = options.get("accelerator") or Accelerator()
    if not isinstance(accelerator, Accelerator):
        raise ConfigError(f"accelerator must be an Accelerator, got {accelerator!r}.")
    callbacks = _check_callbacks_arg(options.get("callbacks"))
    if previous is None:
        model = accelerator.prepare_model(_build_model(spec))
        optimizers = _build_optimizers(spec, model)
        epoch, records = 0, {}
    else:
        model = accelerator.prepare_model(previous.model)
        optimizers, epoch, records = previous.optimizers, previous.epoch, previous.records
    accelerator.prepare_optimizers(optimizers)
    ctx = Context(
        verbose=_verbose(options.get("verbose")),
        accelerator=accelerator,
        device=accelerator.device,
        model=model,
        optimizers=optimizers,
        train_data=accelerator.prepare_loader(train),
        valid_data=accelerator.prepare_loader(valid),
        epoch=epoch,
        records=records,
        loss_fn=_loss_fn(spec, model),
        backward=spec.backward or _default_backward,
        step_opt=_default_step_opt,
        hparams=dict(spec.hparams),
        opt_hparams=dict(spec.opt_hparams),
        callbacks=[Profile(), TrainValid(), Metrics(spec.metrics), Progress(), Interrupt(),
                   *callbacks],
    )
    step = _custom_step(model)
    if step is not None:
        ctx.step = functools.partial(step, ctx)
    ctx.max_epochs = epoch + max_epochs
    ctx.min_epochs = epoch + min_epochs
    return Run(ctx, fit_loop, finish=lambda run: Fitted(spec, run))


def finish_blocking(run: Run, spec: Setup) -> Fitted:
    """Drive ``run`` to its end here, the way ``fit()`` does; return the Fitted."""
    from luzwidget.events import Event
    from luzwidget.fitted import Fitted

    run.resume()
    while run.state == "paused" and not run.interrupted:
        print(f"[luzwidget] {run.reason}; fit() goes on (use run() to stop at breakpoints).",
              file=sys.stderr)
        run.resume()
    if run.state == "error":
        raise run.error  # type: ignore[misc]
    if run.state == "done":
        return run.result  # type: ignore[no-any-return]
    # Interrupted: luz's interrupt callback ends training; the run stays resumable.
    run.ctx.call_callbacks(Event.on_interrupt)
    run.ctx.call_callbacks(Event.on_fit_end)
    return Fitted(spec, run)


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


def _check_epochs(epochs: Any) -> tuple[int, int]:
    def is_int(x: Any) -> bool:
        return isinstance(x, int) and not isinstance(x, bool)

    if is_int(epochs):
        if epochs < 0:
            raise ConfigError(f"epochs={epochs}: the number of epochs must be >= 0.")
        return 0, epochs
    if isinstance(epochs, tuple | list) and len(epochs) == 2 and all(map(is_int, epochs)):
        low, high = epochs
        if not 0 <= low <= high:
            raise ConfigError(
                f"epochs={tuple(epochs)}: expected (min_epochs, max_epochs) with "
                "0 <= min_epochs <= max_epochs, e.g. epochs=(5, 20)."
            )
        return low, high
    raise ConfigError(
        f"epochs must be an int (max epochs) or a pair (min_epochs, max_epochs); got {epochs!r}."
    )


def _check_callbacks_arg(callbacks: Any) -> list[Any]:
    if callbacks is None:
        return []
    if not isinstance(callbacks, list | tuple):
        callbacks = [callbacks]
    try:
        check_callbacks(callbacks)  # misnamed methods, bad signatures: say so now
    except TraitError as exc:
        raise ConfigError(f"callbacks: {exc}") from None
    return list(callbacks)


def _verbose(verbose: Any) -> bool:
    if verbose is None:
        return in_notebook() or sys.stderr.isatty()
    if not isinstance(verbose, bool):
        raise ConfigError(f"verbose must be True, False or None, got {verbose!r}.")
    return verbose


def _check_module(module: Any) -> Any:
    if isinstance(module, nn.Module):
        return module
    if isinstance(module, type) and issubclass(module, nn.Module):
        return module
    raise ConfigError(
        f"module must be an nn.Module subclass (e.g. setup(Net, ...)) or a built instance "
        f"(setup(Net(), ...)); got {type(module).__name__}: {module!r:.60}."
    )


def _check_loss(loss: Any) -> Any:
    if loss is None:
        return None
    if isinstance(loss, type):
        raise ConfigError(
            f"loss: got the class {loss.__name__}; pass an instance, e.g. loss={loss.__name__}()."
        )
    if not callable(loss):
        raise ConfigError(
            f"loss must be callable as loss(pred, target), e.g. nn.CrossEntropyLoss(); got "
            f"{type(loss).__name__}: {loss!r:.60}."
        )
    return loss


def _check_optimizer(optimizer: Any) -> Any:
    if optimizer is None or isinstance(optimizer, torch.optim.Optimizer) or callable(optimizer):
        return optimizer
    raise ConfigError(
        "optimizer must be an optimizer class (e.g. torch.optim.Adam), a factory "
        "f(params, **opt_hparams), or a built optimizer; got "
        f"{type(optimizer).__name__}: {optimizer!r:.60}."
    )


def _build_model(spec: Setup) -> nn.Module:
    if isinstance(spec.module, nn.Module):
        return spec.module
    try:
        return spec.module(**spec.hparams)
    except TypeError as exc:
        raise ConfigError(
            f"building {spec.module.__name__}(**{spec.hparams}) failed: {exc}. Set the "
            "constructor's arguments with .set_hparams(...)."
        ) from exc


def _build_optimizers(spec: Setup, model: nn.Module) -> dict[str, torch.optim.Optimizer]:
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
        name = getattr(optimizer, "__name__", repr(optimizer))
        try:
            built = optimizer(model.parameters(), **spec.opt_hparams)
        except TypeError as exc:
            raise ConfigError(
                f"building the optimizer {name}(params, **{spec.opt_hparams}) failed: {exc}. "
                "Set its arguments with .set_opt_hparams(...)."
            ) from exc
        where = f"optimizer {name}"
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


def _loss_fn(spec: Setup, model: nn.Module) -> Any:
    if spec.loss is not None:
        return spec.loss
    own = getattr(model, "loss", None)
    if callable(own):
        return own
    if _custom_step(model) is None:
        raise ConfigError(
            "no loss: pass loss= to setup() (e.g. nn.CrossEntropyLoss()) or define "
            "loss(self, pred, target) or step(self, ctx) on the module."
        )
    return None


def _custom_step(model: nn.Module) -> Any:
    step = getattr(model, "step", None)
    if not callable(step):
        return None
    try:
        inspect.signature(step).bind(None)
    except TypeError:
        raise ConfigError(
            f"{type(model).__name__}.step must take the context: def step(self, ctx): ..."
        ) from None
    return step


def _default_backward(loss: torch.Tensor) -> None:
    loss.backward()


def _default_step_opt(opt: torch.optim.Optimizer) -> None:
    opt.step()
