"""Batches of any structure: what is input and target, how the model is called, how many
samples a batch holds, and what of a model's output is the prediction.

The rules, in one place (the user guide's "Batches of any structure" page says the same):

* **Split.** A tuple or list batch is ``(input, target, ...)``; a dict batch (Hugging Face)
  is its own input and its ``"labels"`` (or ``"label"``) is the target; any other object
  (a tensor, a PyG ``Batch``) is the input, with its ``.y`` as the target when it has one.
* **Call.** A tuple or list input is passed as positional arguments, ``model(*input)``; a
  dict input as keyword arguments, ``model(**input)``, keeping the keys that ``forward``
  names (all of them when ``forward`` takes only ``**kwargs``), as Hugging Face's Trainer
  does; anything else as the one argument, ``model(input)``.
* **Count.** A batch's number of samples is the leading dimension of its target's first
  tensor (of the input's, without a target); a list of per-sample dicts counts its items.
  ``len()`` of a dict or tuple is never a count.
* **Predict.** A Hugging Face ``ModelOutput`` stands for its ``logits`` where a prediction
  is compared or returned (``loss=``, metrics, ``predict()``); ``ctx.pred`` keeps the whole
  output. Its ``loss`` is the loss when ``setup()`` has no ``loss=``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import torch

__all__ = [
    "LABEL_KEYS",
    "call",
    "call_error",
    "count",
    "is_model_output",
    "left_out",
    "output_loss",
    "prediction",
    "split_batch",
    "takes_labels",
]

LABEL_KEYS = ("labels", "label")
"""The keys of a dict batch that hold the target, in the order they are looked for."""

Tensor = torch.Tensor


# -- split -------------------------------------------------------------------------------


def split_batch(batch: Any) -> tuple[Any, Any]:
    """``(input, target)`` of a batch, by the split rule of this module's docstring.

    Examples
    --------
    >>> split_batch((1, 2, 3))
    (1, 2)
    >>> split_batch({"input_ids": 1, "labels": 2})
    ({'input_ids': 1, 'labels': 2}, 2)
    """
    if isinstance(batch, tuple | list):
        n = len(batch)
        if n >= 2:
            return batch[0], batch[1]
        if n == 1:
            return batch[0], None
        return batch, None
    if isinstance(batch, Mapping):
        for key in LABEL_KEYS:
            if key in batch:
                return batch, batch[key]
        return batch, None
    if isinstance(batch, Tensor | str | bytes) or not hasattr(batch, "y"):
        return batch, None
    return batch, getattr(batch, "y", None)


# -- count -------------------------------------------------------------------------------


def count(*parts: Any) -> int:
    """Samples in a batch: the count of the first of ``parts`` that has one, else 1.

    Called as ``count(target, input)``: the leading dimension of the first tensor (of one
    dimension or more) found depth-first; a list or tuple of dicts (or other objects)
    is a list of samples and counts its items.

    Examples
    --------
    >>> count({"a": torch.zeros(5, 2), "b": torch.zeros(5)})
    5
    >>> count(None, (torch.zeros(3, 4), torch.zeros(3)))
    3
    """
    for part in parts:
        n = _count(part)
        if n is not None:
            return n
    return 1


def _count(x: Any) -> int | None:
    if isinstance(x, Tensor):
        return x.shape[0] if x.ndim else None
    if isinstance(x, tuple | list):
        if x and _is_sample(x[0]):
            return len(x)  # a list of samples (dicts, strings, numbers, graphs)
        for item in x:
            n = _count(item)
            if n is not None:
                return n
        return None
    if isinstance(x, Mapping):
        for item in x.values():
            n = _count(item)
            if n is not None:
                return n
        return None
    shape = getattr(x, "shape", None)  # a numpy array
    if isinstance(shape, tuple) and shape and isinstance(shape[0], int):
        return shape[0]
    return None


def _is_sample(item: Any) -> bool:
    """Whether ``item``, the first of a list, is one sample rather than a column."""
    return not isinstance(item, Tensor | tuple | list) and not hasattr(item, "shape")


# -- predictions -------------------------------------------------------------------------


def is_model_output(x: Any) -> bool:
    """Whether ``x`` is a Hugging Face ``ModelOutput`` (a mapping with ``to_tuple()``)."""
    return isinstance(x, Mapping) and callable(getattr(x, "to_tuple", None))


def prediction(pred: Any) -> Any:
    """What of the model's output is compared with the target: a ``ModelOutput``'s
    ``logits`` (when it has them), else ``pred`` itself."""
    if type(pred) is Tensor or not is_model_output(pred):
        return pred
    logits = pred.get("logits")
    return pred if logits is None else logits


def output_loss(pred: Any, target: Any) -> Any:
    """The loss the model computed itself (``pred.loss``): the loss function of a model
    set up without ``loss=`` whose ``forward`` takes ``labels`` (a Hugging Face model).

    Raises
    ------
    ValueError
        If the output holds no loss, naming what it holds and the fix.
    """
    loss = pred.get("loss") if isinstance(pred, Mapping) else getattr(pred, "loss", None)
    if loss is None:
        held = list(pred) if isinstance(pred, Mapping) else type(pred).__name__
        raise ValueError(
            f"no loss: setup() has no loss=, so the loss is the one the model returns "
            f"(output.loss), but its output holds {held}. A Hugging Face model computes it "
            "when the batch holds 'labels'; or pass loss= to setup() (e.g. "
            "nn.CrossEntropyLoss())."
        )
    return loss


# -- call --------------------------------------------------------------------------------

Plan = tuple[tuple[str, str], ...] | None
_PLANS: dict[tuple[Any, frozenset[str]], tuple[Plan, list[str]]] = {}


def call(fn: Callable[..., Any], x: Any) -> Any:
    """``fn`` called with input ``x`` by the call rule: ``fn(*x)`` for a tuple or list,
    ``fn(**x)`` for a dict (the keys ``forward`` names), else ``fn(x)``."""
    kind = type(x)
    if kind is tuple or kind is list:
        return fn(*x)
    if isinstance(x, Mapping):
        plan = _plan(fn, x)
        if plan is None:
            return fn(**x)
        return fn(**{param: x[key] for key, param in plan})
    if isinstance(x, tuple):  # a namedtuple
        return fn(*x)
    return fn(x)


def _plan(fn: Any, x: Mapping[str, Any]) -> Plan:
    """``(key, parameter)`` pairs to pass for a dict input, or None to pass every key;
    made once per function and set of keys."""
    return _planned(fn, x)[0]


def left_out(fn: Any, x: Mapping[str, Any]) -> str:
    """What to say about the keys of dict input ``x`` that ``fn`` does not take ("" if
    it takes them all); the loop says it on a loader's first batch."""
    left = _planned(fn, x)[1]
    if not left:
        return ""
    sig = _signature(fn)
    shown = "" if sig is None else _shown(sig)
    return (
        f"the batch's keys {left} are not parameters of {_name(fn)}{shown}, so they are "
        "not passed to it (ctx.batch keeps them)."
    )


def _planned(fn: Any, x: Mapping[str, Any]) -> tuple[Plan, list[str]]:
    cache_key = (_signature_owner(fn), frozenset(x))
    found = _PLANS.get(cache_key)
    if found is not None:
        return found
    sig = _signature(fn)
    plan: Plan = None
    left: list[str] = []
    if sig is not None:
        params = sig.parameters
        named = [
            n
            for n, p in params.items()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY)
        ]
        if named or not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            pairs = [(k, k) for k in x if k in named]
            if "labels" in named and "labels" not in x and "label" in x:
                pairs.append(("label", "labels"))  # as Hugging Face's collators rename it
            plan = tuple(pairs)
            left = [k for k in x if k not in {key for key, _ in pairs}]
    _PLANS[cache_key] = (plan, left)
    return plan, left


def _unwrapped(fn: Any) -> Any:
    """The user's module inside DDP or ``torch.compile`` wrappers (else ``fn``)."""
    for _ in range(4):
        inner = getattr(fn, "_orig_mod", None)  # torch.compile's OptimizedModule
        if inner is None and isinstance(fn, torch.nn.parallel.DistributedDataParallel):
            inner = fn.module
        if inner is None:
            return fn
        fn = inner
    return fn


def _signature_owner(fn: Any) -> Any:
    """A stable key for ``fn``'s signature: its module's class, or the function."""
    fn = _unwrapped(fn)
    if isinstance(fn, torch.nn.Module):
        return type(fn)
    return getattr(fn, "__func__", fn)


def _signature(fn: Any) -> inspect.Signature | None:
    fn = _unwrapped(fn)
    target = fn.forward if isinstance(fn, torch.nn.Module) else fn
    try:
        return inspect.signature(target)
    except (TypeError, ValueError):
        return None


def _name(fn: Any) -> str:
    fn = _unwrapped(fn)
    if isinstance(fn, torch.nn.Module):
        return f"{type(fn).__name__}.forward"
    return getattr(fn, "__qualname__", repr(fn))


def _shown(sig: inspect.Signature) -> str:
    """``(input_ids, attention_mask, *, labels=None, **kwargs)``: names, no annotations."""
    parts, star = [], False
    for name, p in sig.parameters.items():
        if p.kind == p.VAR_POSITIONAL:
            parts.append(f"*{name}")
            star = True
        elif p.kind == p.VAR_KEYWORD:
            parts.append(f"**{name}")
        else:
            if p.kind == p.KEYWORD_ONLY and not star:
                parts.append("*")
                star = True
            parts.append(name if p.default is p.empty else f"{name}=...")
    return f"({', '.join(parts)})"


def describe(x: Any) -> str:
    """A short description of a batch part's structure, e.g. ``tuple of 2 tensors``."""
    if isinstance(x, Tensor):
        return f"a tensor of shape {tuple(x.shape)}"
    if isinstance(x, Mapping):
        return f"a dict with keys {list(x)}"
    if isinstance(x, tuple | list):
        return f"a {type(x).__name__} of {len(x)} ({', '.join(type(v).__name__ for v in x)})"
    return f"a {type(x).__name__}"


def call_error(fn: Any, x: Any, exc: TypeError) -> TypeError | None:
    """If ``exc`` came from calling ``fn`` with input ``x`` against its signature, a
    TypeError that names both and the fix; None if the signature fits (the TypeError came
    from inside ``forward``)."""
    sig = _signature(fn)
    if sig is None:
        return None
    sequence = isinstance(x, tuple | list)
    try:
        if sequence:
            sig.bind(*x)
            return None
        if isinstance(x, Mapping):
            plan = _plan(fn, x)
            sig.bind(**(dict(x) if plan is None else {p: x[k] for k, p in plan}))
            return None
        sig.bind(x)
        return None
    except TypeError as mismatch:
        why = str(mismatch)
    name, shown = _name(fn), _shown(sig)
    if isinstance(x, Mapping):
        rule = "a dict input is passed as keyword arguments, by name"
        fix = "name forward's parameters after the batch's keys (or the keys after them)"
    elif sequence:
        rule = "a tuple or list input is passed as positional arguments, model(*input)"
        fix = (
            f"give forward one parameter per element (forward(self, {_params(len(x))})), "
            "or wrap the input in a 1-tuple, ((input,), target), to pass it as one argument"
        )
    else:
        rule = "an input that is not a tuple, list or dict is passed as one argument"
        fix = (
            "give the data as ((a, b), target) to pass several arguments, or a dict to pass "
            "keyword arguments"
        )
    return TypeError(
        f"{name}{shown} cannot be called with the batch's input, {describe(x)}: {rule} "
        f"({why}). To fix it, {fix}."
    )


def _params(n: int) -> str:
    return ", ".join(f"x{i}" for i in range(1, n + 1)) if n else "..."


def takes_labels(module: Any) -> bool:
    """Whether ``module``'s ``forward`` takes ``labels`` (or ``**kwargs``): a model that
    may compute its own loss (Hugging Face's do, from a batch's ``"labels"``)."""
    sig = _signature(module)
    if sig is None:
        return False
    return any(name == "labels" or p.kind == p.VAR_KEYWORD for name, p in sig.parameters.items())
