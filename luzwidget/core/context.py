"""The context shared by the loop, callbacks, the model's methods and metrics.

Data only: the fields, their validation and the records. What calls the callbacks, the
faults and the loop's flags are the context's :class:`~luzwidget.core.engine.Engine`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch
from traitlets import All, HasTraits, TraitError, validate
from traitlets.utils.bunch import Bunch

from luzwidget.core.dispatch import check_callbacks
from luzwidget.core.events import Event
from luzwidget.core.exceptions import ConfigError
from luzwidget.core.records import Records
from luzwidget.core.traits import Any_, Bool, Dict, Instance, Int, List, Live
from luzwidget.core.values import quote

if TYPE_CHECKING:
    from luzwidget.core.engine import Engine

__all__ = ["MAX_EPOCHS", "Context", "Live", "check_callbacks", "epochs_in_range"]

MAX_EPOCHS = 2**63 - 1
"""The most epochs a run may be given (``sys.maxsize``: "until something stops it"); a
larger number would overflow where it meets a float (the dashboard's progress) or a tensor."""


class Context(HasTraits):
    """Everything the loop knows, as observable traits (luz's ``ctx``).

    ``ctx.observe(fn, "loss")`` works for every field. Per-batch fields (``batch``,
    ``input``, ``target``, ``pred``, ``loss``, ``loss_grad``, ``iter``, ``opt``, ``opt_nm``)
    are :class:`Live` traits, cheap to set. Editable fields validate on every assignment.
    Unknown attributes are refused: keep scratch data in ``ctx.buffers``.
    """

    verbose = Bool(False, help="Show progress (bool, default False).")
    accelerator = Any_(None, allow_none=True, help="The Accelerator in use.")
    device = Any_(None, allow_none=True, help="torch.device the model lives on.")
    rank = Int(0, help="This process's rank under torch.distributed (0 in one process).")
    world_size = Int(1, help="How many processes train together (1 in one process).")
    model = Instance(torch.nn.Module, allow_none=True, help="The nn.Module trained.")
    optimizers = Dict(help="Optimizers by name; a single one is {'opt': optimizer}.")
    data = Any_(None, allow_none=True, help="The loader in use now.")
    train_data = Any_(None, allow_none=True, help="Training loader.")
    valid_data = Any_(None, allow_none=True, help="Validation loader or None.")
    min_epochs = Int(0, help="Minimum number of epochs (int >= 0, <= max_epochs).")
    max_epochs = Int(
        10, help="Last epoch to run (int >= min_epochs and >= epoch, <= MAX_EPOCHS = 2**63 - 1)."
    )
    epoch = Int(0, help="Current epoch, 1-based; 0 before the first.")
    iter = Live(0, help="Batch index within the current loop, 1-based; 0 before the first (int).")
    training = Bool(False, help="True in the training loop, False in validation/predict.")
    callbacks = List(help="Callbacks, sorted by weight (defaults first).")
    step = Any_(None, allow_none=True, help="Callable doing one step, or None.")
    batch = Live(help="The current batch as the loader yields it.")
    input = Live(help="batch[0]: what the model is called with.")
    target = Live(help="batch[1], or None when the batch has no target.")
    pred = Live(help="The model's output for the current batch.")
    loss_fn = Any_(None, allow_none=True, help="callable(pred, target) -> loss.")
    loss = Live(help="Detached loss; a dict by optimizer name when there are several.")
    loss_grad = Live(help="The undetached loss that backward() uses.")
    backward = Any_(None, allow_none=True, help="callable(loss); default loss.backward().")
    opt = Live(help="The optimizer of the current inner step.")
    opt_nm = Live(help="Name of the current optimizer (luz's code calls it opt_name).")
    step_opt = Any_(None, allow_none=True, help="callable(opt); default opt.step().")
    accumulate = Int(
        1,
        help="Training batches per optimizer step (int >= 1, default 1): their gradients add "
        "up, each loss divided by the group's size (fit(..., accumulate=k)).",
    )
    autocast = Any_(
        None,
        allow_none=True,
        help="None, or a context-manager factory entered around the forward and the loss "
        "(e.g. MixedPrecision sets a torch.autocast).",
    )
    metrics = Dict(help="Live metric objects: {'train': [...], 'valid': [...]}.")
    records = Dict(help="Logged values: records[what][set][index-1]; change via log().")
    handlers = Dict(help="{exception class: handler(ctx, exc)} around the whole fit.")
    epoch_handlers = Dict(help="{exception class: handler(ctx, exc)} around each epoch.")
    buffers = Dict(help="Scratch space for callbacks.")
    hparams = Dict(help="Arguments the module was built with.")
    opt_hparams = Dict(help="Arguments the optimizers were built with (e.g. lr).")

    def __init__(self, **kwargs: Any) -> None:
        # The engine driving this context (made by luzwidget.core.engine.engine_of): it keeps the
        # dispatch table in step with ``callbacks`` and serves call_callbacks() and pause().
        self._engine: Engine | None = None
        super().__init__(**kwargs)
        # Every field has a stored value from now on, so the engine can read _trait_values.
        for name in _TRAITS:
            if name in _LIVE:
                self._trait_values.setdefault(name, _LIVE[name])
            else:
                getattr(self, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _LIVE:  # the per-batch fields: Live.set, inlined (hot path)
            values = self._trait_values
            old = values.get(name, _LIVE[name])
            values[name] = value
            notifiers = self._trait_notifiers
            if notifiers and old is not value and (name in notifiers or All in notifiers):
                self._notify_trait(name, old, value)
            return
        if name[0] != "_" and name not in _SETTABLE:
            raise AttributeError(
                f"Context has no field {name!r}; keep your own data in ctx.buffers[{name!r}]. "
                f"Fields: {', '.join(sorted(_FIELDS))}."
            )
        object.__setattr__(self, name, value)

    # -- luz's alias ---------------------------------------------------------------------
    @property
    def opt_name(self) -> Any:
        """Alias of ``opt_nm`` (the name luz's code uses)."""
        return self.opt_nm

    @opt_name.setter
    def opt_name(self, value: Any) -> None:
        self.opt_nm = value

    @property
    def indices(self) -> torch.Tensor | None:
        """The dataset indices of the current batch (int64), or None where the loader cannot
        tell them (an IterableDataset, ``num_workers > 0``, ready batches).

        Exact for any sampler or shuffle, after a retry and a rewind; indices of the
        dataset under any ``Subset`` (``X[ctx.indices]`` is the batch's input after
        ``fit((X, y), valid_data=0.2)``). Read when asked: it costs the loop nothing. See
        :mod:`luzwidget.core.indices`.
        """
        from luzwidget.core.indices import batch_indices

        engine = self._engine
        return None if engine is None else batch_indices(engine.source)

    # -- validation ----------------------------------------------------------------------
    @validate("min_epochs")
    def _check_min_epochs(self, proposal: Bunch) -> int:
        value: int = proposal["value"]
        if value < 0 or value > self.max_epochs:
            raise TraitError(
                f"min_epochs={quote(value)} is invalid: expected an integer between 0 and "
                f"max_epochs={self.max_epochs}. Raise max_epochs first."
            )
        return value

    @validate("max_epochs")
    def _check_max_epochs(self, proposal: Bunch) -> int:
        value: int = proposal["value"]
        floor = max(self.min_epochs, self.epoch, 0)
        if not floor <= value <= MAX_EPOCHS:
            raise TraitError(
                f"max_epochs={quote(value)} is invalid: expected an integer >= {floor} "
                f"(min_epochs={self.min_epochs}, current epoch={self.epoch}) and <= "
                f"{MAX_EPOCHS} (2**63 - 1)."
            )
        return value

    @validate("accumulate")
    def _check_accumulate(self, proposal: Bunch) -> int:
        value = proposal["value"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise TraitError(
                f"accumulate={value!r} is invalid: expected an int >= 1 (training batches per "
                "optimizer step); it applies from the next epoch."
            )
        return value

    @validate("loss_fn", "step", "backward", "step_opt", "autocast")
    def _check_callable(self, proposal: Bunch) -> Any:
        value = proposal["value"]
        if value is not None and not callable(value):
            name = proposal["trait"].name
            raise TraitError(f"{name} must be callable, got {type(value).__name__}: {value!r}.")
        return value

    @validate("callbacks")
    def _check_callbacks(self, proposal: Bunch) -> list[Any]:
        try:
            value = check_callbacks(proposal["value"])
        except ConfigError as exc:  # a trait's validator refuses with TraitError
            raise TraitError(str(exc)) from None
        if self._engine is not None:
            self._engine.set_callbacks(value)
        for cb in value:
            if hasattr(cb, "set_ctx"):
                cb.set_ctx(self)
        return value

    # -- callbacks -----------------------------------------------------------------------
    def call_callbacks(self, event: Event | str) -> None:
        """Call every callback's ``on_<event>(ctx)``, under ``torch.no_grad()``.

        Raises
        ------
        CallbackError
            If a callback raises; names the callback class, the event, epoch and batch.
        """
        self._driver().call(Event.parse(event))

    def pause(self, reason: str = "paused by a callback") -> None:
        """Ask the run to pause at the next event boundary (from a callback or anywhere).

        Raises
        ------
        RunStateError
            If no run drives this context (a bare ``Context()``).
        """
        self._driver().pause(reason)

    def _driver(self) -> Engine:
        from luzwidget.core.engine import engine_of  # the engine sits above the context

        return engine_of(self)

    # -- records -------------------------------------------------------------------------
    def log(
        self, what: str, set: str, value: Any, index: int | None = None, append: bool = True
    ) -> None:
        """Record ``value`` at ``records[what][set][index - 1]`` (index 1-based; default: next).

        With ``append`` and dict values, the dict is merged into what is there. Observers of
        ``records`` get a change whose ``added`` holds ``(what, set, index, value)``.
        """
        entries = self.records.setdefault(what, {}).setdefault(set, [])
        if index is None:
            index = len(entries) + 1
        if index < 1:
            raise ValueError(f"index must be >= 1 (1-based, as in luz), got {index}.")
        while len(entries) < index:
            entries.append({} if isinstance(value, dict) else None)
        current = entries[index - 1]
        if append and isinstance(value, dict) and isinstance(current, dict):
            current.update(value)
        else:
            entries[index - 1] = value
        added = Bunch(what=what, set=set, index=index, value=value)
        self.notify_change(
            Bunch(
                name="records",
                type="change",
                owner=self,
                old=self.records,
                new=self.records,
                added=added,
            )
        )

    def log_metric(self, name: str, value: Any) -> None:
        """Log a metric for the current epoch in "train" or "valid" (from ``training``)."""
        self.log("metrics", "train" if self.training else "valid", {name: value}, self.epoch)

    @property
    def history(self) -> Records:
        """A read-only :class:`~luzwidget.core.records.Records` view over ``records`` (no copy).

        ``ctx.history.metrics("valid")``, ``.value("loss", "train", 2)``, ``.rows()``,
        ``.monitors()``; ``ctx.records`` stays the dict that ``log()`` changes.
        """
        return Records(self.records)

    def get_log(self, what: str, set: str, index: int | None = None) -> Any:
        """``records[what][set]``, or its entry ``index`` (1-based)."""
        entries = self.records.get(what, {}).get(set, [])
        return entries if index is None else entries[index - 1]

    def get_metrics(self, set: str, epoch: int | None = None) -> dict[str, Any]:
        """Metrics of ``set`` ("train"/"valid") for ``epoch`` (default: the last logged).

        ``{}`` while nothing is logged in ``set``; see :meth:`Records.metrics`.
        """
        history = self.history
        return history.metrics(set, epoch) if history.epochs(set) else {}

    def get_metric(self, name: str, set: str, epoch: int | None = None) -> Any:
        """One metric value, e.g. ``ctx.get_metric("loss", "valid")``."""
        history = self.history
        if history.epochs(set):
            return history.value(name, set, epoch)
        raise KeyError(f"no {set} metric {name!r}: nothing is logged in {set!r} yet.")

    # -- edits from the user -------------------------------------------------------------
    def check_edit(self, name: str, value: Any) -> Any:
        """Validate ``value`` for field ``name`` without assigning it; return the coerced value.

        Raises
        ------
        TraitError
            With a message saying what is expected.
        """
        if name not in _FIELDS:
            raise AttributeError(f"Context has no field {name!r}.")
        trait = self.traits()[name]
        return trait._validate(self, value)

    def __repr__(self) -> str:
        model = type(self.model).__name__ if self.model is not None else None
        return (
            f"<Context model={model} epoch={self.epoch}/{self.max_epochs} iter={self.iter} "
            f"training={self.training}>"
        )


def optimizer_names(ctx: Context, names: Iterable[str] | None, owner: str) -> list[str]:
    """The optimizers ``names`` picks (all of them when None or empty), checked.

    Raises
    ------
    ConfigError
        Naming ``owner``, the unknown name and the optimizers there are.
    """
    chosen = list(names or ctx.optimizers)
    unknown = [n for n in chosen if n not in ctx.optimizers]
    if unknown:
        raise ConfigError(
            f"{owner}: opt_name {unknown[0]!r} is not an optimizer of this run; they are: "
            f"{', '.join(map(repr, ctx.optimizers))}."
        )
    return chosen


def finite_positive(value: Any, argument: str) -> float:
    """Return ``value`` as a float if it is a finite number > 0; else raise ConfigError
    (an argument such as ``set_lr``'s ``lr``: no trait, so no TraitError). An int too
    large for a float (``10**400``) is refused as infinite."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(
            f"{argument} must be a finite positive number, got {type(value).__name__} "
            f"{quote(value)}."
        )
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number) or number <= 0:
        raise ConfigError(f"{argument} must be a finite positive number, got {quote(value)}.")
    return number


def epochs_in_range(value: Any, argument: str, floor: int = 0) -> int:
    """Return ``value`` if it is an int from ``floor`` to :data:`MAX_EPOCHS`; else raise
    ConfigError naming ``argument``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{argument} must be an int, got {type(value).__name__} {quote(value)}.")
    if not floor <= value <= MAX_EPOCHS:
        raise ConfigError(
            f"{argument} must be an int from {floor} to {MAX_EPOCHS}, got {quote(value)}."
        )
    return value


_TRAITS = tuple(Context.class_trait_names())
_FIELDS = frozenset(_TRAITS) | {"opt_name"}
# traitlets itself shadows notify_change while it holds notifications in __init__.
_SETTABLE = _FIELDS | {"notify_change"}
_LIVE = {n: t.default_value for n, t in Context.class_traits().items() if isinstance(t, Live)}
