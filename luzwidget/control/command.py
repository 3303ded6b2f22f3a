"""What a command of the table is: its parameters, what it answers, and ``status``.

See :mod:`luzwidget.control.commands` for the table itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from luzwidget.control.run import Run

__all__ = ["Answer", "Command", "Param", "frame_of", "status"]

_REQUIRED: Any = object()


@dataclass(frozen=True)
class Param:
    """One parameter of a command: its name, its parser, its default (none: required)."""

    name: str
    parse: Callable[[Any, str], Any]
    default: Any = _REQUIRED

    @property
    def required(self) -> bool:
        """Whether a call must give it."""
        return self.default is _REQUIRED


@dataclass(frozen=True)
class Answer:
    """What a command answers: ``message`` for a person, ``value`` (JSON) for a caller."""

    message: str
    value: Any = None


@dataclass(frozen=True)
class Command:
    """A Run API call as the table holds it.

    Attributes
    ----------
    name : str
        The call's name (a Run API method's, mostly).
    params : tuple of Param
        What it takes, in order.
    apply : callable
        ``apply(run, **parsed) -> Answer``.
    doc : str
        One line: what it does (the attached proxy's method docstring).
    remote : bool
        Whether an attached notebook may call it (a branch, a new run in the training
        process, is made from its dashboard only).
    returns : bool
        Whether the proxy's method returns the answer's value (queries) or None.
    """

    name: str
    params: tuple[Param, ...]
    apply: Callable[..., Answer]
    doc: str
    remote: bool = True
    returns: bool = False


def status(run: Run) -> dict[str, Any]:
    """Where the run is: state, reason, event, epoch, batch, limits, error, learning rates."""
    ctx, error = run.ctx, run.error
    return {
        "state": str(run.state),
        "reason": run.reason,
        "event": run.event.value if run.event is not None else None,
        "n_events": run.n_events,
        "epoch": ctx.epoch,
        "iter": ctx.iter,
        "max_epochs": ctx.max_epochs,
        "min_epochs": ctx.min_epochs,
        "interrupted": run.interrupted,
        "notice": run.notice,
        "error": None if error is None else f"{type(error).__name__}: {error}",
        "error_traceback": run.error_traceback,
        "lr": {
            name: float(opt.param_groups[0]["lr"]) if opt.param_groups else None
            for name, opt in (ctx.optimizers or {}).items()
        },
    }


def frame_of(frame: Any) -> dict[str, Any]:
    """A DataFrame as JSON: ``{"columns": [...], "data": [[...], ...]}``."""
    split = frame.to_dict(orient="split")
    return {"columns": list(split["columns"]), "data": split["data"]}
