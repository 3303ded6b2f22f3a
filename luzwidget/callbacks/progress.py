"""Progress output: tqdm in a terminal, a light HTML line in Jupyter, nothing when quiet."""

from __future__ import annotations

import html
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from luzwidget.core.callback import Callback
from luzwidget.core.data import loader_len
from luzwidget.core.values import loss_text

if TYPE_CHECKING:
    from luzwidget.core.context import Context

__all__ = ["Progress", "format_metrics", "in_notebook"]

_REFRESH_S = 0.2


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where HTML output is rendered)."""
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return type(shell).__name__ == "ZMQInteractiveShell"


def _shown(ctx: Context) -> bool:
    """Verbose, on rank 0 (under torch.distributed), and driven in the foreground: a
    background run (``run.start()``) reports through its dashboard; its output would land
    in whatever cell happens to run."""
    return (
        bool(ctx.verbose)
        and ctx.rank == 0
        and threading.current_thread() is threading.main_thread()
    )


def format_metrics(values: dict[str, Any]) -> str:
    """``{"loss": 0.31, "acc": 0.9}`` -> ``"Loss: 0.3100 - Acc: 0.9000"`` (luz's layout)."""
    parts = []
    for name, value in values.items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        parts.append(f"{name[:1].upper()}{name[1:]}: {shown}")
    return " - ".join(parts)


class Progress(Callback):
    """Show epoch, batch progress with loss, rate and ETA, then the epoch's metrics.

    Silent unless ``ctx.verbose``, and in a background run (``run.start()``: watch its
    dashboard instead). In a terminal it uses tqdm; in Jupyter it updates one HTML line
    at most every 0.2 s (no widget library needed). Per batch it costs one
    attribute check and a clock read; the loss is read (a host sync) only on refresh.
    """

    weight = -60

    def __init__(self) -> None:
        self.bars = True  # per-batch bars; False keeps only the epoch lines (a dashboard shows)
        self._bar: Any = None
        self._next = 0.0
        self._mode = "train"

    def on_epoch_begin(self, ctx: Context) -> None:
        if _shown(ctx):
            self._write(f"Epoch {ctx.epoch}/{ctx.max_epochs}")

    def on_train_begin(self, ctx: Context) -> None:
        self._open(ctx, "Train")

    def on_valid_begin(self, ctx: Context) -> None:
        self._open(ctx, "Valid")

    def on_train_batch_end(self, ctx: Context) -> None:
        if self._bar is not None:
            self._bar.advance(ctx)

    on_valid_batch_end = on_train_batch_end
    on_predict_batch_end = on_train_batch_end

    def on_predict_begin(self, ctx: Context) -> None:
        self._open(ctx, "Predict")

    def on_predict_end(self, ctx: Context) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def on_train_end(self, ctx: Context) -> None:
        self._close(ctx, "train")

    def on_valid_end(self, ctx: Context) -> None:
        self._close(ctx, "valid")

    def on_fit_end(self, ctx: Context) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _open(self, ctx: Context, label: str) -> None:
        if not self.bars or not _shown(ctx):
            return
        total = loader_len(ctx.data)  # None: an IterableDataset, a generator
        self._bar = _HtmlBar(label, total) if in_notebook() else _TqdmBar(label, total)

    def _close(self, ctx: Context, mode: str) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if _shown(ctx):
            values = ctx.get_metrics(mode, ctx.epoch) if ctx.epoch else ctx.get_metrics(mode)
            if values:
                self._write(f"{mode.capitalize()} metrics: {format_metrics(values)}")

    @staticmethod
    def _write(text: str) -> None:
        if in_notebook():
            print(text, flush=True)
        else:
            from tqdm import tqdm

            tqdm.write(text, file=sys.stderr)


class _TqdmBar:
    def __init__(self, label: str, total: int | None) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=label, leave=False, file=sys.stderr, dynamic_ncols=True)
        self.next = 0.0
        self.pending = 0

    def advance(self, ctx: Context) -> None:
        self.pending += 1
        now = time.monotonic()
        if now >= self.next:
            self.next = now + _REFRESH_S
            self.bar.set_postfix_str(loss_text(ctx.loss), refresh=False)
            self.bar.update(self.pending)
            self.pending = 0

    def close(self) -> None:
        self.bar.update(self.pending)
        self.bar.close()


class _HtmlBar:
    def __init__(self, label: str, total: int | None) -> None:
        from IPython.display import HTML, display

        self.HTML: Callable[[str], Any] = HTML
        self.label, self.total, self.n = label, total, 0
        self.start = time.monotonic()
        self.next = 0.0
        self.handle = display(HTML(self._html("")), display_id=True)

    def _html(self, loss: str) -> str:
        elapsed = time.monotonic() - self.start
        rate = self.n / elapsed if elapsed > 0 else 0.0
        total = self.total
        eta = f", ETA {max(total - self.n, 0) / rate:.0f}s" if rate and total else ""
        # Without a length the bar is indeterminate (no value) and the count has no "/total".
        value = f'value="{self.n}" max="{total}" ' if total is not None else ""
        bar = f'<progress {value}style="width:200px"></progress>'
        count = f"{self.n}/{total}" if total is not None else f"{self.n}"
        text = f"{self.label} {count} [{rate:.1f} batch/s{eta}] {loss}"
        return f'<div class="luzwidget-progress">{bar} <code>{html.escape(text)}</code></div>'

    def advance(self, ctx: Context) -> None:
        self.n += 1
        now = time.monotonic()
        if now >= self.next:
            self.next = now + _REFRESH_S
            self.handle.update(self.HTML(self._html(loss_text(ctx.loss))))

    def close(self) -> None:
        self.handle.update(self.HTML(self._html("")))
