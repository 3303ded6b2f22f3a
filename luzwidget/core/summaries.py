"""One-line summaries of context fields for the dashboard's inspector."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

from luzwidget.core.records import MONITORED_SETS, Records
from luzwidget.core.values import as_scalar

__all__ = ["FIELD_ORDER", "fmt_number", "summarize", "tensor_summary"]

FIELD_ORDER = (
    "epoch",
    "max_epochs",
    "min_epochs",
    "iter",
    "training",
    "opt_nm",
    "batch",
    "input",
    "target",
    "pred",
    "loss",
    "loss_grad",
    "model",
    "optimizers",
    "opt",
    "loss_fn",
    "metrics",
    "records",
    "data",
    "train_data",
    "valid_data",
    "device",
    "accelerator",
    "verbose",
    "callbacks",
    "step",
    "backward",
    "step_opt",
    "handlers",
    "epoch_handlers",
    "buffers",
    "hparams",
    "opt_hparams",
)
"""Inspector rows, in display order (the per-batch fields first)."""

STATS_MAX_NUMEL = 4_000_000
"""Tensors above this many elements show shape and dtype only (no mean/std pass)."""

_MAX_LEN = 160


def fmt_number(value: Any) -> str:
    """A compact, human number: ``0.3124``, ``1.2e-05``, ``12,345``, ``NaN``."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    try:
        f = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    if f != 0 and (abs(f) < 1e-3 or abs(f) >= 1e5):
        return f"{f:.3g}"
    return f"{f:.4g}"


def _shape(t: torch.Tensor) -> str:
    return f"{str(t.dtype).removeprefix('torch.')}[{', '.join(map(str, t.shape))}]"


def tensor_summary(t: torch.Tensor, stats: bool = True) -> str:
    """``float32[32, 10] cpu · mean 0.012 · std 0.98 · NaN 0 · inf 0`` (one host sync)."""
    head = f"{_shape(t)} {t.device}" + (" grad" if t.requires_grad else "")
    if not stats or t.numel() == 0 or t.numel() > STATS_MAX_NUMEL or t.is_sparse:
        return head
    x = t.detach()
    if x.is_complex():
        x = x.abs()
    if x.dtype == torch.bool:
        return f"{head} · true {int(x.sum())}"
    if t.numel() == 1:
        return f"{head} · {fmt_number(as_scalar(x))}"
    x = x.float()
    finite = torch.isfinite(x)
    n_finite = finite.sum()
    safe = torch.where(finite, x, torch.zeros((), dtype=x.dtype, device=x.device))
    mean = safe.sum() / n_finite.clamp(min=1)
    var = (torch.where(finite, safe - mean, torch.zeros((), device=x.device)) ** 2).sum()
    std = (var / (n_finite - 1).clamp(min=1)).sqrt()
    nan = torch.isnan(x).sum()
    values = torch.stack([mean, std, nan.float(), (x.numel() - n_finite - nan).float()]).tolist()
    m, s, n_nan, n_inf = values
    if n_nan + n_inf == x.numel():  # no finite value: a mean of nothing says nothing
        kind = "NaN" if n_inf == 0 else "inf" if n_nan == 0 else "NaN/inf"
        return f"{head} · all {kind} ({x.numel():,})"
    text = f"{head} · mean {fmt_number(m)} · std {fmt_number(s)}"
    if n_nan or n_inf:
        text += f" · NaN {int(n_nan)} · inf {int(n_inf)}"
    return text


def _module(m: torch.nn.Module, _: bool) -> str:
    n = sum(p.numel() for p in m.parameters())
    if n == 0:  # a loss or an activation: its repr says it all
        return _repr(m)
    n_train = sum(p.numel() for p in m.parameters() if p.requires_grad)
    extra = "" if n_train == n else f" ({n_train:,} trainable)"
    mode = "train" if m.training else "eval"
    return f"{type(m).__name__} · {n:,} params{extra} · {mode} mode"


def optimizer_summary(opt: torch.optim.Optimizer) -> str:
    """``SGD lr=0.1 momentum=0.9`` plus the group count when there are several.

    The hyperparameters are the first group's, except ``lr`` when the groups' differ: then
    every group's, ``lr=0.1,0.01``.
    """
    groups = opt.param_groups
    g = groups[0] if groups else {}
    keys = [k for k in ("lr", "momentum", "weight_decay", "betas") if k in g]
    hp = " ".join(f"{k}={_hp(g[k])}" for k in keys if g[k] not in (0, 0.0) or k == "lr")
    lrs = [_hp(group.get("lr")) for group in groups]
    if len(set(lrs)) > 1:
        hp = hp.replace(f"lr={lrs[0]}", f"lr={','.join(lrs)}", 1)
    more = f" ({len(groups)} groups)" if len(groups) > 1 else ""
    return f"{type(opt).__name__} {hp}{more}".strip()


def _hp(value: Any) -> str:
    if isinstance(value, tuple | list):
        return "(" + ", ".join(fmt_number(v) for v in value) + ")"
    return fmt_number(as_scalar(value))


def _loader(d: Any, _: bool) -> str:
    try:
        n = f"{len(d):,} batches"
    except TypeError:
        n = "unknown length"
    bs = getattr(d, "batch_size", None)
    extra = f" · batch_size {bs}" if bs is not None else ""
    return f"{type(d).__name__} · {n}{extra}"


def _records(r: Mapping[str, Any]) -> str:
    history = Records(r)
    parts = []
    for set_name in MONITORED_SETS:
        epoch, values = history.last(set_name)
        if values:
            last = ", ".join(f"{k} {fmt_number(v)}" for k, v in values.items())
            parts.append(f"{set_name}[{epoch}]: {last}")
    others = [k for k in r if k != "metrics"]
    if others:
        parts.append("also " + ", ".join(others))
    return " · ".join(parts) or "{}"


def _mapping(d: Mapping[Any, Any], stats: bool, depth: int = 0) -> str:
    if not d:
        return "{}"
    if depth:
        return f"dict[{len(d)}]"
    items = [f"{k}: {_short(v, stats, depth + 1)}" for k, v in list(d.items())[:6]]
    more = f", … +{len(d) - 6}" if len(d) > 6 else ""
    return "{" + ", ".join(items) + more + "}"


def _sequence(s: list[Any] | tuple[Any, ...], stats: bool, depth: int = 0) -> str:
    kind = type(s).__name__
    if depth or not s:
        return f"{kind}[{len(s)}]"
    items = [_short(v, stats, depth + 1) for v in s[:4]]
    more = f", … +{len(s) - 4}" if len(s) > 4 else ""
    return f"{kind}[{len(s)}]: " + ", ".join(items) + more


def _short(v: Any, stats: bool, depth: int) -> str:
    if isinstance(v, torch.Tensor):
        return tensor_summary(v, stats=stats and depth <= 1)
    if isinstance(v, Mapping):
        return _mapping(v, stats, depth)
    if isinstance(v, list | tuple):
        return _sequence(v, stats, depth)
    if isinstance(v, torch.optim.Optimizer):
        return optimizer_summary(v)
    if isinstance(v, torch.nn.Module):
        return type(v).__name__
    return _scalar(v)


def _scalar(v: Any) -> str:
    v = as_scalar(v)  # a numpy number (np.float32 is no float) reads as one
    if v is None or isinstance(v, bool | str):
        return repr(v) if isinstance(v, str) else str(v)
    if isinstance(v, int | float):
        return fmt_number(v)
    if isinstance(v, torch.device | torch.dtype):
        return str(v)
    if callable(v) and hasattr(v, "__qualname__"):
        return v.__qualname__ if isinstance(v, type) else f"{v.__qualname__}()"
    return _repr(v)


def _repr(v: Any) -> str:
    """``repr(v)`` when it is short and informative, else the class name."""
    try:
        text = repr(v)
    except Exception:
        return type(v).__name__
    if text.startswith("<") or len(text) > 100 or "\n" in text:
        return type(v).__name__
    return text


def _callbacks(cbs: list[Any], _: bool) -> str:
    names = [type(cb).__name__ for cb in cbs]
    return f"{len(names)}: " + ", ".join(names)


def _metrics(m: Mapping[str, Any], _: bool) -> str:
    parts = [f"{k}: " + ", ".join(type(x).__name__ for x in v) for k, v in m.items() if v]
    return " · ".join(parts) or "{}"


_SPECIAL: dict[str, Callable[[Any, bool], str]] = {
    "callbacks": _callbacks,
    "metrics": _metrics,
    "records": lambda r, _: _records(r),
    "data": _loader,
    "train_data": _loader,
    "valid_data": _loader,
}


def summarize(name: str, value: Any, stats: bool = True) -> str:
    """One line describing ``value`` (the ctx field ``name``), at most ~160 characters.

    Parameters
    ----------
    name : str
        The field name (some fields have their own layout, e.g. ``records``).
    value : Any
        The field's value.
    stats : bool, default True
        Compute tensor statistics (mean, std, NaN/inf counts); False shows shape only.
    """
    try:
        if value is None:
            text = "None"
        elif name in _SPECIAL and value is not None:
            text = _SPECIAL[name](value, stats)
        elif isinstance(value, torch.nn.Module):
            text = _module(value, stats)
        elif isinstance(value, torch.optim.Optimizer):
            text = optimizer_summary(value)
        else:
            text = _short(value, stats, 0)
    except Exception as exc:  # a summary must never break the dashboard
        text = f"<{type(value).__name__}: summary failed: {type(exc).__name__}>"
    return text if len(text) <= _MAX_LEN else text[: _MAX_LEN - 1] + "…"


class WeightWatch:
    """Gradient norm and weight change of a model between two looks (for stepping).

    Keeps a copy of the parameters (only for models up to ``max_params`` parameters), so
    the inspector can show how much ``step()`` moved the weights. A look that finds the
    weights unchanged shows the last change again (the last step's Δw stays until the next
    step moves the weights), not "Δw 0".
    """

    def __init__(self, max_params: int = 5_000_000) -> None:
        self.max_params = max_params
        self._prev: list[torch.Tensor] | None = None
        self._model_id = 0
        self._last_dw: float | None = None

    def look(self, model: torch.nn.Module | None) -> str:
        """`` · ‖grad‖ 0.53 · Δw 1.2e-3`` (empty when there is nothing to say)."""
        if model is None:
            return ""
        params = list(model.parameters())
        if not params:
            return ""
        with torch.no_grad():
            grads = [p.grad.detach().float().norm() for p in params if p.grad is not None]
            small = sum(p.numel() for p in params) <= self.max_params
            prev = self._prev if self._model_id == id(model) else None
            parts = [torch.stack(grads).norm()] if grads else []
            if small and prev is not None and len(prev) == len(params):
                deltas = [
                    (p.detach().float() - q).norm() for p, q in zip(params, prev, strict=True)
                ]
                parts.append(torch.stack(deltas).norm())
            values = torch.stack([v.cpu() for v in parts]).tolist() if parts else []
            self._prev = [p.detach().float().clone() for p in params] if small else None
            if prev is None:  # another model, or too big to copy: no last change known
                self._last_dw = None
            self._model_id = id(model)
        text = ""
        if grads:
            text += f" · ‖grad‖ {fmt_number(values.pop(0))}"
        if values and values[0] != 0:  # the weights moved since the last look
            self._last_dw = values[0]
        if self._last_dw is not None:
            text += f" · Δw {fmt_number(self._last_dw)}"
        return text
