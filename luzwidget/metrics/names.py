"""Records names of metrics: names given by the user, unique suffixes, and ``MetricError``.

Each metric of a mode is logged under one name, so two metrics never overwrite each other:

- a name given with ``name=`` (the built-ins) or as a ``(name, metric)`` pair in
  ``metrics=`` is used as it is;
- any other metric is logged under its abbreviation (``"acc"``, ``"auc"``, ...); when that
  is already in use, under the first free one of ``"acc_2"``, ``"acc_3"``, ...

Metrics are named in order (those for both modes first, so they are named alike in training
and validation), after the loss (``"loss"``, and ``"loss_<opt>"`` with several optimizers).
A given name that is already in use is an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from luzwidget.core.exceptions import ConfigError, LuzwidgetError

__all__ = ["MetricError", "check_name", "unique_names"]


def check_name(value: object, argument: str = "name") -> str:
    """Return ``value`` if it can name a metric (a non-empty string); else raise ConfigError."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            f"{argument}: a metric's name must be a non-empty string, got {value!r}; for "
            "example BinaryAUROC(name='auc_logits') or ('auc_logits', torchmetrics_metric)."
        )
    return value


def _free(base: str, taken: Iterable[str]) -> str:
    """The first of ``base_2``, ``base_3``, ... not in ``taken``."""
    k = 2
    while f"{base}_{k}" in taken:
        k += 1
    return f"{base}_{k}"


def unique_names(
    entries: Sequence[tuple[str | None, str, str]], reserved: Iterable[str] = ("loss",)
) -> list[str]:
    """The records name of each metric, in order, from ``(given, abbreviation, class)``.

    Parameters
    ----------
    entries
        Per metric: the name the user gave (or None), its abbreviation and its class name
        (for error messages).
    reserved
        Names already in use (the loss's).

    Raises
    ------
    ConfigError
        If a given name is reserved or already in use.

    Examples
    --------
    >>> unique_names([(None, "acc", "A"), (None, "acc", "B"), ("x", "acc", "C")])
    ['acc', 'acc_2', 'x']
    """
    owners: dict[str, str] = dict.fromkeys(reserved, "the loss")
    names = []
    for given, abbrev, cls in entries:
        if given is None:
            name = abbrev if abbrev not in owners else _free(abbrev, owners)
        elif given in owners:
            raise ConfigError(
                f"metrics: the name {given!r} of {cls} is already used by {owners[given]}; "
                f"metrics are named in order, so give {cls} another name, e.g. "
                f"{_free(given, owners)!r}."
            )
        else:
            name = given
        owners[name] = cls
        names.append(name)
    return names


class MetricError(LuzwidgetError, RuntimeError):
    """A metric raised in ``update`` or ``compute``; names its class, abbreviation and records
    name. The original exception is ``__cause__`` (and ``cause``).
    """

    def __init__(
        self, metric: Any, abbrev: str, name: str, method: str, cause: BaseException
    ) -> None:
        self.metric = metric
        self.abbrev = abbrev
        self.name = name
        self.method = method
        self.cause = cause
        logged = "" if name == abbrev else f", logged as {name!r}"
        super().__init__(
            f"metric {type(metric).__name__} (abbreviation {abbrev!r}{logged}) raised "
            f"{type(cause).__name__} in {method}(): {cause}"
        )
