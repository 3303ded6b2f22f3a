"""The Batch part (``parts/batch.js``): the current batch as images, labels, predictions, each
sample's index in the dataset and (at a pause) its loss, and a confusion matrix per epoch;
only while the panel is open.

At a pause the per-sample losses are computed (``run.sample_losses()``, without gradients)
and, when the batch holds more samples than are drawn, the ones drawn are those with the
highest loss; the panel sorts them by loss. The indices are ``ctx.indices``.

While the panel is closed nothing is read and :class:`EpochConfusion` is not in the run.
Opened, the batch is read at every pause or step and, while the run trains, at most every
:data:`~luzwidget.widgets.inspector.INSPECT_EVERY_S` seconds; the confusion callback adds, for
classification, a few small operations per batch on the device (an argmax, a clamp and a
``scatter_add_`` into the pass's preallocated counts; no host sync: a CUDA ``bincount``
would read the largest value back to the host at every batch).
"""

from __future__ import annotations

import base64
import math
import time
from typing import TYPE_CHECKING, Any

import torch

from luzwidget.core.events import Event
from luzwidget.core.states import RunState
from luzwidget.core.summaries import fmt_number
from luzwidget.insight.stats import first_tensor
from luzwidget.insight.trackers import Armed, tracker
from luzwidget.widgets.inspector import INSPECT_EVERY_S, OnDemandPart

if TYPE_CHECKING:
    from luzwidget.control.run import Run
    from luzwidget.core.context import Context

__all__ = ["MAX_IMAGE_BYTES", "MAX_ITEMS", "BatchPanel", "EpochConfusion", "image_layout"]

MAX_ITEMS = 32
"""Items of the batch drawn at most."""

MAX_IMAGE_BYTES = 48_000
"""Pixels sent per message at most (uint8 values): fewer items for larger images."""

MAX_SIDE = 128
"""Images taller or wider than this are not drawn."""


def image_layout(
    item_shape: tuple[int, ...], image_shape: tuple[int, ...] | None = None
) -> tuple[int, int, int, bool] | None:
    """``(channels, height, width, channels_last)`` of one input item, or None (no image).

    ``HxW``; ``CxHxW`` or ``HxWxC`` with 1 or 3 channels; a flat item whose size is a square
    (64 -> 8x8) or three squares (RGB); ``image_shape`` ((H, W) or (C, H, W)) overrides.
    """
    numel = math.prod(item_shape)
    if image_shape is not None:
        c, h, w = (1, *image_shape) if len(image_shape) == 2 else image_shape
        return (c, h, w, False) if c * h * w == numel else None
    if len(item_shape) == 2:
        return 1, item_shape[0], item_shape[1], False
    if len(item_shape) == 3:
        if item_shape[0] in (1, 3):
            return item_shape[0], item_shape[1], item_shape[2], False
        if item_shape[2] in (1, 3):
            return item_shape[2], item_shape[0], item_shape[1], True
        return None
    if len(item_shape) == 1:
        for c in (1, 3):
            side = math.isqrt(numel // c)
            if side >= 4 and c * side * side == numel:
                return c, side, side, False
    return None


def _pixels(x: torch.Tensor, layout: tuple[int, int, int, bool], n: int) -> bytes:
    """``n`` items as uint8 (C, H, W) each, every item scaled to 0..255 (non-finite: 0)."""
    c, h, w, last = layout
    with torch.no_grad():
        items = x[:n].detach().float().cpu()
        items = items.reshape(n, h, w, c).permute(0, 3, 1, 2) if last else items.reshape(n, c, h, w)
        flat = items.reshape(n, -1)
        finite = torch.isfinite(flat)
        lo = torch.where(finite, flat, math.inf).amin(1, keepdim=True)
        hi = torch.where(finite, flat, -math.inf).amax(1, keepdim=True)
        span = (hi - lo).clamp(min=1e-12)
        scaled = torch.where(finite, (flat - lo) / span * 255, 0.0).nan_to_num(0.0)
        return bytes(scaled.clamp(0, 255).round().to(torch.uint8).reshape(-1).tolist())


def _leading(value: Any, n: int) -> torch.Tensor | None:
    """``value`` if it is a tensor holding at least ``n`` items, else None."""
    ok = isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape[0] >= n
    return value[:n].detach() if ok else None


def _firsts(t: torch.Tensor | None, n: int) -> list[float] | None:
    return None if t is None else t.reshape(n, -1)[:, 0].float().cpu().tolist()


def _labels(pred: Any, target: Any, n: int) -> tuple[str, list[dict[str, Any]]]:
    """``(kind, items)``: per item its target ``t``, prediction ``p`` and ``wrong``.

    Scores ``(N, C)`` are a classification (the class is the argmax), anything else a value.
    """
    p, t = _leading(first_tensor(pred), n), _leading(target, n)
    with torch.no_grad():
        if p is not None and p.ndim == 2 and p.shape[1] > 1:
            finite = torch.isfinite(p).all(1).cpu().tolist()
            classes = [
                c if ok else "NaN" for c, ok in zip(p.argmax(1).cpu().tolist(), finite, strict=True)
            ]
            true = None
            if t is not None:
                true = (t.argmax(1) if t.ndim == 2 else t.reshape(n, -1)[:, 0].long()).tolist()
            return "class", [
                {
                    "t": None if true is None else str(true[i]),
                    "p": str(classes[i]),
                    "wrong": true is not None and true[i] != classes[i],
                }
                for i in range(n)
            ]
        values, truth = _firsts(p, n), _firsts(t, n)
    return "value", [
        {
            "t": None if truth is None else fmt_number(truth[i]),
            "p": None if values is None else fmt_number(values[i]),
            "wrong": False,
        }
        for i in range(n)
    ]


def _chosen(losses: torch.Tensor | None, total: int, n: int) -> torch.Tensor:
    """The rows drawn: the first ``n``, or (losses known, more rows than drawn) the ``n``
    with the highest loss, in batch order."""
    if losses is None or n >= total:
        return torch.arange(min(n, total))
    ranked = torch.nan_to_num(losses, nan=math.inf).argsort(descending=True)
    return ranked[:n].sort().values


def _rows(value: Any, rows: torch.Tensor, total: int | None = None) -> Any:
    """``value``'s ``rows`` when it is a tensor of the batch's rows, else ``value``."""
    if not isinstance(value, torch.Tensor) or value.ndim == 0:
        return value
    if total is not None and value.shape[0] != total:
        return value
    return value.index_select(0, rows.to(value.device))


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


class EpochConfusion(Armed):
    """Counts (true, predicted) class pairs over each epoch's training and validation passes.

    Attributes
    ----------
    done : dict
        ``set -> (epoch, counts as an (n, n) tensor)`` of the last pass that ended.
    """

    weight = 1_000

    def __init__(self, run: Any) -> None:
        super().__init__(run)
        self.done: dict[str, tuple[int, torch.Tensor]] = {}
        self._counts: torch.Tensor | None = None
        self._ones: torch.Tensor | None = None  # one per item of the batch, kept
        self._bad = False

    def on_train_begin(self, ctx: Context) -> None:
        """A pass begins: count from zero."""
        self._counts, self._bad = None, False

    on_valid_begin = on_train_begin

    def on_train_batch_end(self, ctx: Context) -> None:
        """Add this batch's pairs into the pass's counts, in place (no host sync)."""
        pred, target = first_tensor(ctx.pred), ctx.target
        if self._bad or pred is None or not isinstance(target, torch.Tensor):
            return
        if pred.ndim != 2 or pred.shape[1] < 2 or target.shape[:1] != pred.shape[:1]:
            self._bad = True
            return
        n, k = pred.shape
        # Detached or integer tensors only (no graph, no no_grad() needed); in place where
        # the tensor is ours: clamp, argmax and scatter_add_ are the per-batch work.
        true = target.detach().argmax(1) if target.ndim == 2 else target.reshape(-1).long()
        pairs = true.clamp(0, k - 1).mul_(k).add_(pred.detach().argmax(1))
        counts, ones = self._counts, self._ones
        if counts is None or counts.shape != (k * k,) or counts.device != pairs.device:
            counts = self._counts = torch.zeros(k * k, dtype=torch.long, device=pairs.device)
        if ones is None or ones.shape != (n,) or ones.device != pairs.device:
            ones = self._ones = torch.ones(n, dtype=torch.long, device=pairs.device)
        counts.scatter_add_(0, pairs, ones)

    on_valid_batch_end = on_train_batch_end

    def on_train_end(self, ctx: Context) -> None:
        """A pass ended: its matrix is the epoch's."""
        if self._counts is not None and not self._bad:
            k = math.isqrt(self._counts.numel())
            self.done["train" if ctx.training else "valid"] = (ctx.epoch, self._counts.view(k, k))
        self._counts = None

    on_valid_end = on_train_end


class BatchPanel(OnDemandPart):
    """Builds the ``batch`` part: images, labels and predictions, confusion matrices.

    Parameters
    ----------
    run : Run
        The run shown.
    image_shape : tuple of int, optional
        ``(H, W)`` or ``(C, H, W)`` of one input item (default: guessed from its shape).
    """

    name = "batch"

    def __init__(self, run: Run, image_shape: tuple[int, ...] | None = None) -> None:
        if image_shape is not None and (
            len(image_shape) not in (2, 3)
            or not all(isinstance(s, int) and s > 0 for s in image_shape)
        ):
            raise ValueError(
                f"image_shape: expected (H, W) or (C, H, W) of positive ints, got {image_shape!r}."
            )
        super().__init__(run)
        self.image_shape = image_shape

    def _subscribe(self) -> None:  # the confusion matrices are counted from now on
        tracker(self.run, EpochConfusion).subscribe()

    def _unsubscribe(self) -> None:
        tracker(self.run, EpochConfusion).unsubscribe()

    def _build(self, state: str) -> dict[str, Any] | None:
        now = time.monotonic()
        if state == RunState.RUNNING:
            if now - self._t < INSPECT_EVERY_S:
                return None
        elif self.run.n_events == self._n and self.sent is not None and self.sent.get("open"):
            return self._with_confusion(self.sent)
        self._t, self._n = now, self.run.n_events
        return self._with_confusion({"open": True, **self._batch(state)})

    def _batch(self, state: str) -> dict[str, Any]:
        ctx = self.run.ctx
        x = first_tensor(ctx.input)
        if x is None or x.ndim < 2 or x.shape[0] == 0:
            return {"image": None, "note": "no input batch yet", "kind": None, "items": []}
        total = x.shape[0]
        layout = image_layout(tuple(x.shape[1:]), self.image_shape)
        c, h, w = (0, 0, 0) if layout is None else layout[:3]
        n = min(MAX_ITEMS, total)
        note = ""
        if layout is None or h > MAX_SIDE or w > MAX_SIDE:
            layout, note = None, f"inputs of shape {list(x.shape[1:])} are not drawn as images"
        else:
            n = max(1, min(n, MAX_IMAGE_BYTES // (c * h * w)))
        losses = self._losses(state, total)
        chosen = _chosen(losses, total, n)
        if n < total and losses is not None:
            note = f"{note + '; ' if note else ''}the {n} of {total} samples with the highest loss"
        image = None
        if layout is not None:
            data = base64.b64encode(_pixels(_rows(x, chosen), layout, n)).decode("ascii")
            image = {"n": n, "c": c, "h": h, "w": w, "data": data}
        # At a batch's first event ctx.pred is still the previous batch's: not shown.
        fresh = self.run.event not in (Event.on_train_batch_begin, Event.on_valid_batch_begin)
        pred = first_tensor(ctx.pred) if fresh else None
        kind, items = _labels(_rows(pred, chosen, total), _rows(ctx.target, chosen, total), n)
        indices = ctx.indices
        for k, item in enumerate(items):
            row = int(chosen[k])
            item["i"] = int(indices[row]) if indices is not None and row < len(indices) else None
            item["loss"] = None if losses is None else _finite(float(losses[row]))
        return {"image": image, "note": note, "kind": kind, "items": items,
                "losses": losses is not None}  # fmt: skip

    def _losses(self, state: str, total: int) -> torch.Tensor | None:
        """The per-sample losses at a pause (None while training, or where there are none)."""
        if state != RunState.PAUSED:
            return None
        try:
            losses = self.run.sample_losses()
        except Exception:  # a loss that cannot be split per sample: the panel goes without
            return None
        return losses if losses is not None and len(losses) == total else None

    def _with_confusion(self, part: dict[str, Any]) -> dict[str, Any]:
        done = dict(tracker(self.run, EpochConfusion).done)
        matrices = {
            set_name: {"epoch": epoch, "counts": counts.cpu().tolist()}
            for set_name, (epoch, counts) in sorted(done.items())
        }
        return {**part, "confusion": matrices}
