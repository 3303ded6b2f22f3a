"""What ``run.find()`` looks for: the conditions, and where each is decided.

Each :class:`Condition` says how it is found:

- **from the record** (exact, no search): the per-batch training loss the run records as it
  trains (:class:`~luzwidget.travel.points.LossLog`): a non-finite loss, a loss spike, the
  biggest spike, the loss crossing a value; and the epoch metrics in ``ctx.records`` (a
  metric crossing a value: the epoch is known, the run goes to its first batch);
- **by a replay** from the snapshots: the weights, the gradients and any predicate on the
  context are not recorded per batch, so the run replays deterministically and looks at
  every batch (:meth:`Condition.watch`). Non-finite weights stay non-finite once they are,
  so a binary search over the snapshots (their weights are stored: no replay to look at
  one) narrows the stretch to the one between the last finite and the first non-finite
  snapshot, and the loss record bounds it too; a predicate or non-finite gradients alone
  replay all the history kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from luzwidget.core.compiled import named_parameters
from luzwidget.core.events import Event
from luzwidget.core.exceptions import ConfigError

if TYPE_CHECKING:
    from luzwidget.core.context import Context

__all__ = ["NAMES", "Condition", "condition_of", "spike_ratios"]

E = Event
NAMES = (
    "nan",
    "nonfinite_loss",
    "nonfinite_gradients",
    "nonfinite_weights",
    "spike",
    "biggest_spike",
    "loss",
)
"""The conditions named by a string (and ``"<set>_<metric>"``, e.g. ``"valid_acc"``)."""

Predicate = Callable[["Context"], Any]


@dataclass
class Condition:
    """A condition ``find()`` looks for.

    Attributes
    ----------
    name : str
        How reasons name it (``"nan"``, ``"spike > 5x the median of 100"``...).
    recorded : callable or None
        ``recorded(losses, known) -> (batch number or None, value)``: decided exactly from
        the loss record (None: not in the record, so not there).
    metric : tuple or None
        ``(set, metric, above, below)``: decided from the epoch metrics.
    checks : frozenset
        For a replay: what :meth:`watch` looks at (``"loss"``, ``"gradients"``,
        ``"weights"``), or ``{"predicate"}``.
    predicate : callable or None
        The user's predicate on the context, and ``at``, the events it is asked at.
    """

    name: str
    recorded: Callable[[torch.Tensor, torch.Tensor], tuple[int | None, float]] | None = None
    metric: tuple[str, str, float | None, float | None] | None = None
    checks: frozenset[str] = frozenset()
    predicate: Predicate | None = None
    at: frozenset[Event] = frozenset({E.on_train_batch_after_loss})
    detail: str = ""

    def watch(self, ctx: Context) -> Callable[[Event], bool]:
        """What a replay asks at every event: whether the condition holds there (and
        ``detail`` says what held)."""
        checks = self.checks

        def holds(fired: Event) -> bool:
            if not fired.in_train_batch:
                return False
            if self.predicate is not None:
                return fired in self.at and bool(self.predicate(ctx))
            end = fired is E.on_train_batch_end  # a module's own step fires no inner event
            at_loss = fired is E.on_train_batch_after_loss or end
            if "loss" in checks and at_loss and not _finite(ctx.loss):
                self.detail = "non-finite loss"
                return True
            if "gradients" in checks and (fired is E.on_train_batch_before_step or end):
                bad = _first_nonfinite(ctx.model, grads=True)
                if bad is not None:
                    self.detail = f"non-finite gradient of {bad}"
                    return True
            if "weights" in checks and (fired is E.on_train_batch_after_step or end):
                bad = _first_nonfinite(ctx.model, grads=False)
                if bad is not None:
                    self.detail = f"non-finite weights of {bad}"
                    return True
            return False

        return holds


def condition_of(
    what: Any,
    *,
    k: Any = None,
    window: Any = None,
    above: Any = None,
    below: Any = None,
    at: Any = None,
) -> Condition:
    """The :class:`Condition` ``find(what, ...)`` names, its options checked.

    Raises
    ------
    ConfigError
        If ``what`` names no condition, or an option does not fit it.
    """
    if callable(what) and not isinstance(what, str):
        _refuse(what, k=k, window=window, above=above, below=below)
        return Condition(getattr(what, "__name__", repr(what)), checks=frozenset({"predicate"}),
                         predicate=what, at=_events(at))  # fmt: skip
    if not isinstance(what, str):
        raise ConfigError(
            f"find: condition must be a name ({', '.join(NAMES)}, or '<set>_<metric>' such as "
            f"'valid_acc') or a callable taking the context, got {type(what).__name__} {what!r}."
        )
    if at is not None:
        raise ConfigError(
            "find: at= is for a predicate (a callable); a named condition knows where."
        )
    if what in ("spike", "biggest_spike"):
        _refuse(what, above=above, below=below, **({"k": k} if what == "biggest_spike" else {}))
        return _spike(what, _positive(k, "k", 5.0), _count(window, "window", 100))
    _refuse(what, k=k, window=window)
    if what == "loss" or ("_" in what and what not in NAMES):
        return _crossing(what, above, below)
    _refuse(what, above=above, below=below)
    if what == "nonfinite_loss":
        return Condition(what, recorded=_first_nonfinite_loss)
    if what in ("nan", "nonfinite_gradients", "nonfinite_weights"):
        checks = ("loss", "gradients", "weights") if what == "nan" else (what.split("_")[1],)
        return Condition(what, checks=frozenset(checks))
    raise ConfigError(
        f"find: unknown condition {what!r}; expected one of {', '.join(NAMES)}, a "
        "'<set>_<metric>' of the records (e.g. 'valid_acc'), or a callable taking the context."
    )


def _refuse(what: Any, **options: Any) -> None:
    given = sorted(name for name, value in options.items() if value is not None)
    if given:
        shown = what if isinstance(what, str) else "a predicate"
        raise ConfigError(f"find: {given[0]}= does not apply to {shown}.")


def _positive(value: Any, name: str, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 1:
        raise ConfigError(f"find: {name} must be a number > 1 (times the median), got {value!r}.")
    return float(value)


def _count(value: Any, name: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        raise ConfigError(f"find: {name} must be an int >= 2 (batches), got {value!r}.")
    return value


def _events(at: Any) -> frozenset[Event]:
    if at is None:
        return frozenset({E.on_train_batch_after_loss})
    items = [at] if isinstance(at, str | Event) else list(at)
    events = frozenset(Event.parse(e, argument="at") for e in items)
    wrong = sorted(e.value for e in events if not e.in_train_batch)
    if wrong:
        raise ConfigError(
            f"find: at= must name training batch events (on_train_batch_*), got {wrong}."
        )
    return events


def _crossing(what: str, above: Any, below: Any) -> Condition:
    if (above is None) == (below is None):
        raise ConfigError(f"find: {what!r} crosses a value: give above= or below=, one of them.")
    for name, value in (("above", above), ("below", below)):
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ConfigError(f"find: {name} must be a finite number, got {value!r}.")
    side = f"above {above}" if above is not None else f"below {below}"
    if what == "loss":
        return Condition(f"loss {side}", recorded=_crossed(above, below))
    set_name, _, metric = what.partition("_")
    if set_name not in ("train", "valid") or not metric:
        raise ConfigError(
            f"find: {what!r} names no metric; write '<set>_<metric>' with set 'train' or "
            "'valid', e.g. 'valid_acc' or 'train_loss' (the loss of each batch is 'loss')."
        )
    hi = None if above is None else float(above)
    lo = None if below is None else float(below)
    return Condition(f"{what} {side}", metric=(set_name, metric, hi, lo))


def _spike(what: str, k: float, window: int) -> Condition:
    if what == "biggest_spike":
        name = f"the biggest spike (against the median of the {window} batches before)"

        def biggest(losses: torch.Tensor, known: torch.Tensor) -> tuple[int | None, float]:
            ratios = spike_ratios(losses, known, window)
            if not bool(torch.isfinite(ratios).any()):
                return None, math.nan
            best = int(torch.nan_to_num(ratios, nan=-math.inf).argmax())
            return best + 1, float(ratios[best])

        return Condition(name, recorded=biggest)

    def first(losses: torch.Tensor, known: torch.Tensor) -> tuple[int | None, float]:
        ratios = spike_ratios(losses, known, window)
        over = (ratios > k).nonzero()
        if not len(over):
            return None, math.nan
        at = int(over[0, 0])
        return at + 1, float(ratios[at])

    return Condition(f"a loss spike (over {k:g}x the median of the {window} batches before)",
                     recorded=first)  # fmt: skip


def spike_ratios(losses: torch.Tensor, known: torch.Tensor, window: int) -> torch.Tensor:
    """Each batch's loss over the median of the ``window`` batches before it (their finite
    known losses, at least ten of them); NaN where there is no such median, it is not
    positive, or the loss itself is not finite."""
    values = torch.where(known & torch.isfinite(losses), losses, math.nan).double()
    n = len(values)
    out = torch.full((n,), math.nan, dtype=torch.float64)
    padded = torch.cat([torch.full((window,), math.nan, dtype=torch.float64), values])
    for start in range(0, n, 65536):  # rows of `window` values: bounded memory
        stop = min(n, start + 65536)
        rows = padded[start : stop + window - 1].unfold(0, window, 1)[: stop - start]
        median = rows.nanmedian(dim=1).values
        enough = torch.isfinite(rows).sum(1) >= min(10, window)
        ok = enough & (median > 0) & torch.isfinite(values[start:stop])
        out[start:stop] = torch.where(ok, values[start:stop] / median, math.nan)
    return out


def _first_nonfinite_loss(losses: torch.Tensor, known: torch.Tensor) -> tuple[int | None, float]:
    bad = (known & ~torch.isfinite(losses)).nonzero()
    if not len(bad):
        return None, math.nan
    at = int(bad[0, 0])
    return at + 1, float(losses[at])


def _crossed(above: Any, below: Any) -> Callable[..., tuple[int | None, float]]:
    def first(losses: torch.Tensor, known: torch.Tensor) -> tuple[int | None, float]:
        hit = losses > above if above is not None else losses < below
        found = (hit & known).nonzero()
        if not len(found):
            return None, math.nan
        at = int(found[0, 0])
        return at + 1, float(losses[at])

    return first


def _finite(loss: Any) -> bool:
    if isinstance(loss, dict):
        return all(_finite(v) for v in loss.values())
    if isinstance(loss, torch.Tensor):
        return bool(torch.isfinite(loss).all())
    return loss is None or math.isfinite(float(loss))


def _first_nonfinite(model: Any, grads: bool) -> str | None:
    """The first parameter (in ``named_parameters()`` order) whose weight (or gradient)
    holds a NaN or infinite value; None when all are finite (one host sync)."""
    named: list[tuple[str, torch.Tensor]] = []
    for n, p in named_parameters(model):
        t = p.grad if grads else p
        if t is not None:
            named.append((n, t))
    if not named:
        return None
    with torch.no_grad():
        device = named[0][1].device
        flags = torch.stack([torch.isfinite(t).all().to(device) for _, t in named])
        if bool(flags.all()):
            return None
        return named[int((~flags).nonzero()[0, 0])][0]
