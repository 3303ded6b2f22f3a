"""``setup()``: describe a model, its loss, optimizer and metrics; then ``fit()`` or ``run()``."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from luzwidget.control.run import Run
from luzwidget.core.checks import check_opt_hparams
from luzwidget.core.compiled import original
from luzwidget.core.exceptions import ConfigError
from luzwidget.fitted import Fitted
from luzwidget.lr_finder import lr_finder
from luzwidget.metrics.base import MetricSet, metric_set
from luzwidget.session import build_run, drive_to_end, fit_callbacks, loop_text

if TYPE_CHECKING:
    from luzwidget.lr_finder import LRFinderResult

__all__ = ["Setup", "setup", "show_loop"]


def setup(
    module: type[nn.Module] | nn.Module | Callable[..., nn.Module],
    loss: Any = None,
    optimizer: Any = None,
    metrics: Any = None,
    backward: Any = None,
) -> Setup:
    """Describe what to train, as luz's ``setup()``.

    Parameters
    ----------
    module
        An ``nn.Module`` class, or a function returning a module (e.g.
        ``torchvision.models.resnet18``), built at each fit with the arguments of
        :meth:`Setup.set_hparams`; or a built instance (trained in place).
    loss
        ``loss(pred, target)`` returning a scalar tensor, e.g. ``nn.CrossEntropyLoss()``.
        None: the module's own ``loss(self, pred, target)`` or ``step(self, ctx)``, or,
        for a module whose ``forward`` takes ``labels`` (Hugging Face models), the
        ``loss`` its output holds.
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

    def __init__(self, module: Any, loss: Any, optimizer: Any, metrics: Any, backward: Any) -> None:
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
            name = type(original(self.module)).__name__  # not torch.compile's wrapper
            raise ConfigError(
                "set_hparams() passes arguments to the module's constructor, but setup() got "
                f"a built {name} instance. Pass the class instead: setup({name}, ...)."
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
        check_opt_hparams(opt_hparams)  # lr inf / nan: refused now, as run.set_lr does
        new = copy.copy(self)
        new.opt_hparams = {**self.opt_hparams, **opt_hparams}
        return new

    def fit(self, data: Any, epochs: Any = 10, **kwargs: Any) -> Fitted:
        """Train (blocking) and return the fitted model, as luz's ``fit()``.

        Parameters
        ----------
        data
            A DataLoader, a Dataset (torch's, or a Hugging Face ``datasets.Dataset``), a
            tuple ``(input, target)`` of tensors or arrays (each part may be a tuple or
            dict of them: ``((a, b), y)``), a dict of tensors, a single tensor, or a list
            of ready batches. A batch's parts may be tensors, tuples, dicts or objects
            with ``.to()``; a tuple input is passed to ``forward`` as positional
            arguments, a dict input as keyword arguments (see the guide's "Batches").
        epochs
            Maximum number of epochs (int >= 0), or ``(min_epochs, max_epochs)``.

        Other Parameters
        ----------------
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
            shuffled and the last partial one dropped, unless it is the only one;
            validation is never shuffled), e.g. ``{"collate_fn": ...}``. In-memory data
            is batched by index, with the DataLoader's very batches; an option only a
            DataLoader has (``num_workers``, ``collate_fn``, ``sampler``) builds a
            DataLoader instead.
        accumulate
            Training batches per optimizer step (default 1): their gradients add up, each
            loss divided by the group's size; the last group of an epoch may be shorter.
        layer_history
            Record ``run.layer_history()`` while training (default False): True, a
            sampled batch every 0.5 s; a number, every that many seconds (0: every batch).
            ``fitted.run.layer_history()`` then has it (see the guide's "Layers over time").

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
        if _launches(kwargs):
            raise ConfigError(
                "fit(accelerator=Accelerator(processes=...)): launched workers are steered "
                "from here, so use run() instead: run = spec.run(data, epochs, accelerator=...); "
                "run.start(); run.wait()."
            )
        finish = functools.partial(Fitted, self)
        run = build_run(self, data, epochs, kwargs, finish=finish)  # no snapshots: blocking
        fitted: Fitted = drive_to_end(run, finish)
        return fitted

    def run(self, data: Any, epochs: Any = 10, **kwargs: Any) -> Run:
        """Like :meth:`fit`, but return a :class:`Run` that has not started yet.

        The run keeps automatic snapshots at epoch ends (``run.snapshots``, ``run.rewind``,
        ``run.branch``; ``run.snapshot_store.every = None`` turns them off).

        With ``accelerator=Accelerator(processes=N)`` (outside a worker), N worker
        processes are launched and a :class:`~luzwidget.launch.Launched` proxy, with the
        same API and ``dashboard()``, is returned instead (see :mod:`luzwidget.launch`).
        """
        if _launches(kwargs):
            from luzwidget.launch import launch

            return launch(  # type: ignore[return-value]  # a proxy with the Run API
                self, data, epochs, kwargs, kwargs["accelerator"].processes
            )
        finish = functools.partial(Fitted, self)
        return build_run(self, data, epochs, kwargs, finish=finish, snapshots=True)

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
        return lr_finder(self, data, steps, start_lr, end_lr, log_spaced, **kwargs)

    def __repr__(self) -> str:
        name = getattr(self.module, "__name__", type(original(self.module)).__name__)
        return f"<Setup {name} hparams={self.hparams} opt_hparams={self.opt_hparams}>"


def show_loop(x: Run | Setup, callbacks: Any = None) -> None:
    """Print each event in loop order with the callbacks that run there, in order (as
    fastai's ``show_training_loop``).

    Parameters
    ----------
    x
        A :class:`~luzwidget.Run` (its callbacks now, as ``run.show_loop()``), or a
        :class:`Setup`: the loop ``fit(..., callbacks=callbacks)`` would run, built without
        a model, data or training.
    callbacks
        With a Setup: the callbacks ``fit()`` would get besides luz's defaults.

    Examples
    --------
    >>> import torch, luzwidget as lw
    >>> spec = lw.setup(torch.nn.Linear(2, 1), loss=torch.nn.MSELoss(), optimizer=torch.optim.SGD)
    >>> lw.show_loop(spec)  # doctest: +ELLIPSIS
    on_fit_begin                           Profile, Sentinel
      on_epoch_begin                       Profile, Progress
    ...
    on_interrupt                           Interrupt
    ...
    """
    if isinstance(x, Run):
        if callbacks is not None:
            raise ConfigError("show_loop: callbacks= is for a Setup; a Run shows its own.")
        x.show_loop()
    elif isinstance(x, Setup):
        print(loop_text(fit_callbacks(x, callbacks)))
    else:
        raise ConfigError(
            f"show_loop takes a Run or a Setup (lw.setup(...)), got {type(x).__name__}; "
            "for what fit() returned, pass fitted.run."
        )


def _launches(kwargs: dict[str, Any]) -> bool:
    from luzwidget.core.accelerator import Accelerator

    accelerator = kwargs.get("accelerator")
    return isinstance(accelerator, Accelerator) and accelerator.launches


def _check_module(module: Any) -> Any:
    if isinstance(module, nn.Module):
        return module
    if isinstance(module, type) and issubclass(module, nn.Module):
        return module
    if callable(module) and not isinstance(module, type):
        return module  # a factory, e.g. torchvision.models.resnet18; checked when built
    raise ConfigError(
        f"module must be an nn.Module subclass (e.g. setup(Net, ...)), a function returning "
        f"a module (setup(make_net, ...)) or a built instance (setup(Net(), ...)); got "
        f"{type(module).__name__}: {module!r:.60}."
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
