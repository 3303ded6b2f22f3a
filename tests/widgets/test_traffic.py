"""Dashboard traffic: one message per tick at most, deltas only, bounded memory and rate.

A fast fake run (a real Context driven by a trivial loop, ~100k batches/s) stands in for
training, so the tests pin what crosses the wire whatever the batch rate.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections import deque
from typing import Any

import torch
from torch import nn

from luzwidget.control.breakpoints import Breakpoints
from luzwidget.control.features import Features
from luzwidget.core.context import Context
from luzwidget.core.events import Event
from luzwidget.widgets import Dashboard


class FastRun:
    """The Run surface the dashboard uses, over a loop that only fires batch-end events."""

    def __init__(self, n_batches: int = 100, max_epochs: int = 1000) -> None:
        model = nn.Linear(2, 1)
        self.ctx = Context(
            model=model,
            optimizers={"opt": torch.optim.SGD(model.parameters(), lr=0.1)},
            max_epochs=max_epochs,
            train_data=[None] * n_batches,
            verbose=False,
        )
        self.ctx.data = self.ctx.train_data
        self.ctx.training = True
        self.state = "ready"
        self.reason = ""
        self.event: Event | None = None
        self.events: deque[Event] = deque(maxlen=100)
        self.n_events = 0
        self.error = None
        self.error_traceback = ""
        self.interrupted = False
        self.notice = ""
        self.features = Features()  # no time travel, no insight: what the dashboard copes with
        self.breakpoints = Breakpoints(features=self.features)
        self.n_batches = n_batches
        self.batches = 0
        self._stop = False
        self._thread: threading.Thread | None = None

    def _fire(self, event: Event) -> None:
        self.ctx.call_callbacks(event)
        self.event = event
        self.n_events += 1
        self.events.append(event)

    def pump(self, n: int) -> None:
        """Run ``n`` training batches here, logging metrics at each epoch end."""
        ctx = self.ctx
        for _ in range(n):
            if self._stop:
                return
            self.batches += 1
            i = (self.batches - 1) % self.n_batches + 1
            if i == 1:
                ctx.epoch += 1
            ctx.iter = i
            ctx.loss = torch.tensor(1.0 / math.sqrt(self.batches))
            self._fire(Event.on_train_batch_end)
            if i == self.n_batches:
                ctx.log_metric("loss", 1.0 / ctx.epoch)
                self._fire(Event.on_epoch_end)

    def start(self, until: Any = None, n: int = 1) -> FastRun:
        self.state = "running"
        self._stop = False

        def drive() -> None:
            while not self._stop:
                self.pump(100)
                # Real batches spend most of their time in torch kernels, which release the
                # GIL; this pure-Python fake holds it, so let the kernel's loop in as they do.
                time.sleep(0)
            self.state = "paused"

        self._thread = threading.Thread(target=drive, daemon=True)
        self._thread.start()
        return self

    def pause(self) -> None:
        self._stop = True
        if self._thread is not None:
            self._thread.join()

    def stop(self) -> FastRun:
        self.pause()
        self.state = "done"
        return self

    def set_lr(self, lr: float, opt_name: str | None = None, keep_ratios: bool = False) -> None:
        for group in self.ctx.optimizers[opt_name or "opt"].param_groups:
            group["lr"] = lr

    def edit(self, field: str, value: Any) -> None:
        setattr(self.ctx, field, value)

    def add_callback(self, callback: Any) -> None:
        self.ctx.callbacks = [*self.ctx.callbacks, callback]

    def remove_callback(self, callback: Any) -> None:
        self.ctx.callbacks = [cb for cb in self.ctx.callbacks if cb is not callback]

    def add_listener(self, listener: Any) -> None:
        pass  # the tests tick by hand

    def remove_listener(self, listener: Any) -> None:
        pass


def _capture(dash: Dashboard) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    def send(msg: dict[str, Any], buffers: Any = None) -> None:
        json.dumps(msg, allow_nan=False)  # every message is valid JSON (no NaN)
        sent.append(msg)

    dash.send = send  # type: ignore[method-assign]
    return sent


def _size(msg: dict[str, Any]) -> int:
    return len(json.dumps(msg, allow_nan=False, separators=(",", ":")))


def test_nothing_is_sent_before_the_dashboard_is_shown() -> None:
    run = FastRun()
    dash = Dashboard(run)
    sent = _capture(dash)
    run.pump(50)
    assert dash.tick() is None
    assert sent == []
    dash.close()


def test_hello_gets_a_snapshot_then_only_deltas() -> None:
    run = FastRun()
    dash = Dashboard(run)
    sent = _capture(dash)
    run.pump(10)
    dash._handle_custom_msg({"cmd": "hello"}, [])
    snap = dash.tick()
    assert snap is not None
    assert snap["type"] == "snapshot"
    assert snap["stream"]["loss"]["x"] == list(range(1, 11))
    run.pump(5)
    delta = dash.tick()
    assert delta is not None
    assert delta["type"] == "update"
    assert delta["stream"]["loss"]["x"] == [11, 12, 13, 14, 15]  # only the new points
    assert dash.tick() is None  # nothing changed: nothing sent
    assert len(sent) == 2
    dash.close()


def test_one_message_per_tick_and_bytes_do_not_grow_over_10000_batches() -> None:
    run = FastRun(n_batches=100)
    dash = Dashboard(run)
    sent = _capture(dash)
    dash._handle_custom_msg({"cmd": "hello"}, [])
    dash.tick()
    run.state = "running"
    sizes = []
    for _ in range(1000):  # 10,000 batches, a tick every 10
        run.pump(10)
        before = len(sent)
        dash.tick()
        assert len(sent) - before <= 1
        sizes.append(_size(sent[-1]))
    early, late = max(sizes[10:100]), max(sizes[-100:])
    assert late <= early * 1.1, (early, late)
    assert max(sizes) < 4000
    series = dash._collector.series["loss"]
    assert len(series) <= series.capacity
    assert sum(len(m.get("stream", {}).get("loss", {}).get("x", [])) for m in sent) <= 10_000
    # a view rendered now (page reload) gets the bounded history, not 10,000 points
    dash._handle_custom_msg({"cmd": "hello"}, [])
    snap = dash.tick()
    assert snap["type"] == "snapshot"
    assert len(snap["stream"]["loss"]["x"]) <= 2000
    assert snap["stream"]["loss"]["x"][-1] > 9900
    assert len(snap["records"]) == 100  # one loss point per epoch
    dash.close()


def test_at_most_20_messages_a_second_at_any_batch_rate() -> None:
    async def main() -> tuple[int, int, float]:
        run = FastRun(n_batches=1000)
        dash = Dashboard(run, interval=0.05)
        sent = _capture(dash)
        dash._handle_custom_msg({"cmd": "hello"}, [])
        t0 = time.monotonic()
        run.start()
        await asyncio.sleep(2.0)
        run.pause()
        elapsed = time.monotonic() - t0
        n_sent = len(sent)
        for _ in range(50):  # the last ticks see "paused", then the publisher sleeps
            await asyncio.sleep(0.1)
            if not dash._publisher.active:
                break
        asleep = not dash._publisher.active
        dash.close()
        assert asleep, "the publisher kept ticking after the run paused"
        return n_sent, run.batches, elapsed

    n_messages, n_batches, elapsed = asyncio.run(main())
    assert n_batches / elapsed > 1000, f"fake run too slow: {n_batches / elapsed:.0f}/s"
    assert n_messages <= 20 * elapsed + 2, n_messages
    assert n_messages >= 3  # it did publish while running (the GIL is contended: no more)


def test_publisher_sleeps_when_idle_and_wakes_on_a_command() -> None:
    async def main() -> None:
        run = FastRun()
        dash = Dashboard(run)
        sent = _capture(dash)
        dash._handle_custom_msg({"cmd": "hello"}, [])
        await asyncio.sleep(0.4)
        assert not dash._publisher.active
        n = len(sent)
        dash._handle_custom_msg({"cmd": "edit", "field": "lr", "value": "0.5", "id": 7}, [])
        await asyncio.sleep(0.2)
        acks = [a for m in sent[n:] for a in m.get("acks", [])]
        expected = {"id": 7, "ok": True, "message": "lr set to 0.5"}
        assert acks == [expected]
        dash.close()

    asyncio.run(main())


def test_stream_memory_is_bounded_with_a_stalled_publisher() -> None:
    run = FastRun()
    dash = Dashboard(run)
    _capture(dash)
    run.pump(150_000)  # no tick at all: the feed's deque is bounded
    assert len(dash._feed.losses) <= 100_000
    dash._handle_custom_msg({"cmd": "hello"}, [])
    snap = dash.tick()
    assert len(snap["stream"]["loss"]["x"]) <= 2000
    assert snap["stream"]["loss"]["x"][-1] > 149_000  # the x axis stays the batch number
    dash.close()
