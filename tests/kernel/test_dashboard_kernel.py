"""The dashboard in a real kernel, driven by comm messages exactly as the browser sends them.

The first line of defence for what the browser tests check slowly: what crosses the wire
while a fast run trains (a bounded rate, deltas whose size does not grow with the run) and
every control (start, pause, step, edits, resume, retry after an error) as custom messages
of js/src/store.js (``model.send({...cmd, id})``), answered in the next update's ``acks``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest
from kernel_harness import IopubMsg, Kernel, KernelError, traffic

pytestmark = pytest.mark.kernel

SETUP = """
import time, torch
from torch import nn
import luzwidget as lw

torch.set_num_threads(1)

class Tiny(nn.Module):
    '''One weight: the loop's own cost dominates, so batches come as fast as they can.'''

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return x * self.w

class Boom(lw.Callback):
    '''Fails at batch 5 of epoch 2 while armed (the user "fixes" it by disarming).'''

    armed = False

    def on_train_batch_end(self, ctx):
        if self.armed and ctx.epoch == 2 and ctx.iter == 5:
            raise RuntimeError("boom at batch 5")

N_BATCHES = 2000
x = torch.randn(N_BATCHES)
batches = list(zip(x.split(1), (2 * x).split(1)))  # ready batches of one sample

def make_run(epochs=1000, callbacks=None):
    spec = lw.setup(Tiny, loss=nn.MSELoss(), optimizer=torch.optim.SGD)
    return spec.set_opt_hparams(lr=1e-3).run(
        batches, epochs=epochs, verbose=False, callbacks=callbacks
    )

def position():
    '''(epoch, global training batch number, time): for batch rates measured in the kernel.'''
    return [run.ctx.epoch, (run.ctx.epoch - 1) * N_BATCHES + (run.ctx.iter or 0), time.monotonic()]
"""

SHOW = """
run = make_run({args})
dash = run.dashboard()
display(dash)
print(dash.model_id)
"""

_ids = itertools.count(1)


class Browser:
    """The dashboard's comm seen from the browser: commands out, snapshot/updates in."""

    def __init__(self, kernel: Kernel, comm_id: str) -> None:
        self.kernel, self.comm_id = kernel, comm_id
        self.mark = kernel.mark()

    def messages(self, since: int = 0) -> list[IopubMsg]:
        """Kernel -> browser custom messages of the dashboard (from iopub index ``since``)."""
        return self.kernel.comm_msgs(self.comm_id, method="custom", since=since)

    def wait(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 30) -> dict[str, Any]:
        """First dashboard message since the last command that passes ``pred``."""
        data = self.kernel.wait_comm_msg(
            self.comm_id,
            lambda d: d.get("method") == "custom" and pred(d["content"]),
            timeout=timeout,
            since=self.mark,
        )
        return dict(data["content"])

    def send(self, cmd: dict[str, Any], wait: bool = True) -> int:
        """``store.command(cmd)``: send with a fresh id (waits for the kernel to handle it)."""
        ident = next(_ids)
        self.mark = self.kernel.mark()
        self.kernel.send_custom(self.comm_id, {**cmd, "id": ident}, wait=wait)
        return ident

    def ack(self, ident: int, timeout: float = 30) -> dict[str, Any]:
        """The kernel's answer to command ``ident`` (it rides on the next update)."""
        msg = self.wait(lambda c: any(a["id"] == ident for a in c.get("acks", [])), timeout)
        return next(a for a in msg["acks"] if a["id"] == ident)

    def command(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Send ``cmd`` and return its ack."""
        return self.ack(self.send(cmd))

    def latest(self, part: str) -> Any:
        """What a view shows of ``part`` now: its value in the last message that held it."""
        for m in reversed(self.messages()):
            content = m.content["data"]["content"]
            if part in content:
                return content[part]
        raise AssertionError(f"no message held {part!r}")

    def wait_state(self, state: str, timeout: float = 30) -> dict[str, Any]:
        """Wait until the status a view shows says ``state``; return that status.

        Updates hold the status only when it changed, so this reads the last one sent; call
        it after the command's ack arrived (the state is then at or after the command).
        """
        deadline = time.monotonic() + timeout
        while True:
            since = self.kernel.mark()
            status = self.latest("status")
            if status["state"] == state:
                return dict(status)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"the dashboard shows {status['state']!r}, not {state!r}")
            with contextlib.suppress(KernelError):  # wait for the next message, then look again
                self.kernel.wait_iopub(
                    lambda m: m.msg_type == "comm_msg" and m.content["comm_id"] == self.comm_id,
                    remaining,
                    since,
                )

    def hello(self) -> dict[str, Any]:
        """What a newly rendered view sends from ``initialize``; returns the snapshot."""
        self.mark = self.kernel.mark()
        self.kernel.send_custom(self.comm_id, {"cmd": "hello"})
        return self.wait(lambda c: c["type"] == "snapshot")


def show(kernel: Kernel, args: str = "") -> Browser:
    """Create a run, display its dashboard in a cell, and say hello as a fresh view does."""
    kernel.execute(SETUP)
    mark = kernel.mark()
    comm_id = kernel.execute(SHOW.format(args=args)).stdout.strip()
    opened = kernel.wait_comm_open(comm_id)
    assert opened["data"]["state"]["_esm"], "the dashboard ships its front end"
    browser = Browser(kernel, comm_id)
    browser.mark = mark
    browser.wait(lambda c: c["type"] == "snapshot")  # displaying it sends one at once
    return browser


def _payload(m: IopubMsg) -> int:
    """Bytes of the message's JSON content (what the dashboard chose to send)."""
    return len(json.dumps(m.content["data"]["content"], separators=(",", ":")))


def _comm_msgs(kernel: Kernel, start: int, end: int) -> list[IopubMsg]:
    """Every kernel -> browser ``comm_msg`` recorded between marks ``start`` and ``end``."""
    return [m for m in kernel.iopub(since=start)[: end - start] if m.msg_type == "comm_msg"]


def test_a_fast_run_sends_a_bounded_rate_of_deltas_that_do_not_grow(kernel: Kernel) -> None:
    browser = show(kernel)
    snapshot = browser.hello()
    hello_bytes = _payload(browser.messages(browser.mark)[0])
    assert snapshot["status"]["state"] == "ready"
    assert (snapshot["stream"], snapshot["records"]) == ({}, [])

    start = kernel.mark()
    kernel.execute("run.start()")
    first = kernel.eval("position()")
    # Train for a few seconds of the kernel's clock, and until enough updates have come to
    # compare the early ones with the late ones.
    deadline = time.monotonic() + 60
    while True:
        time.sleep(0.25)  # polling interval, not a synchronisation
        last = kernel.eval("position()")
        n_updates = len(browser.messages(start))
        if last[2] - first[2] >= 4 and n_updates >= 30:
            break
        assert time.monotonic() < deadline, f"only {n_updates} updates in 60 s"
    end = kernel.mark()
    kernel.execute("run.stop(); run.wait(30)")
    assert kernel.eval("run.state") == "done"

    batch_rate = (last[1] - first[1]) / (last[2] - first[2])
    all_comms = _comm_msgs(kernel, start, end)
    ours = [m for m in all_comms if m.content["comm_id"] == browser.comm_id]
    updates = [m.content["data"]["content"] for m in ours]
    assert all(u["type"] == "update" for u in updates)
    # Plots get only new points: the stream's x keeps increasing, no epoch is sent twice.
    xs = [x for u in updates for x in u.get("stream", {}).get("loss", {}).get("x", [])]
    assert len(xs) > 100
    assert all(a < b for a, b in itertools.pairwise(xs))
    epochs = [tuple(r[:3]) for u in updates for r in u.get("records", [])]
    assert len(epochs) >= 5
    assert len(set(epochs)) == len(epochs), epochs
    stats, total = traffic(ours), traffic(all_comms)
    # Sizes from the second update on: the first one also carries the inspector's rows.
    sizes = [_payload(m) for m in ours[1:]]
    early, late = statistics.mean(sizes[:10]), statistics.mean(sizes[-10:])
    last_late = browser.hello()  # a view opened now gets a bounded snapshot too
    late_hello_bytes = _payload(browser.messages(browser.mark)[0])
    assert last_late["status"]["state"] == "done"
    print(
        f"\nfast run: {batch_rate:,.0f} batches/s over {last[2] - first[2]:.1f} s "
        f"({last[1] - first[1]:,} batches); dashboard comm: {stats.count} messages in "
        f"{stats.seconds:.1f} s = {stats.per_second:.1f}/s (all comms {total.per_second:.1f}/s); "
        f"JSON bytes per update: early {early:,.0f}, late {late:,.0f}, max {max(sizes):,} "
        f"({statistics.mean(m.nbytes for m in ours):,.0f} B per message on the wire); "
        f"snapshot on hello: {hello_bytes:,} B before the run, {late_hello_bytes:,} B after"
    )
    # The throttle is exercised once batches come far faster than the 20 messages/s cap; the
    # rate itself depends on the machine (4-9k/s here), so ask only for 50x the cap.
    assert batch_rate >= 1000, f"too slow ({batch_rate:,.0f} batches/s) to test the throttle"
    assert stats.count >= 30
    assert stats.per_second <= 20, stats
    assert total.per_second <= 20, total  # the plotly library widget sends nothing meanwhile
    assert late <= 1.2 * early, (sizes[:10], sizes[-10:])
    assert max(sizes) < 50_000
    assert late_hello_bytes < 250_000  # history is downsampled: bounded, whatever the run length


def _next_batch(pos: list[Any]) -> list[Any]:
    """Where stepping one batch from ``[epoch, training, iter]`` lands (no validation data)."""
    epoch, training, it = pos
    return [epoch, training, it + 1] if it < 2000 else [epoch + 1, training, 1]


def test_controls_and_edits_as_the_browser_sends_them(kernel: Kernel) -> None:
    browser = show(kernel)
    snapshot = browser.hello()
    buttons = snapshot["status"]["buttons"]
    assert (buttons["start"], buttons["pause"]) == (True, False)
    opt = snapshot["config"]["optimizers"][0]["name"]
    lr = f"run.ctx.optimizers[{opt!r}].param_groups[0]['lr']"

    ack = browser.command({"cmd": "start"})
    assert (ack["ok"], ack["message"]) == (True, "started"), ack
    assert kernel.eval("run.state") == "running"
    browser.wait_state("running")
    deadline = time.monotonic() + 60
    while kernel.eval("run.ctx.epoch") < 3:  # max_epochs below the epoch needs epoch >= 2
        assert time.monotonic() < deadline, "the run did not reach epoch 3"
        time.sleep(0.05)

    t0 = time.monotonic()
    ident = browser.send({"cmd": "pause"})
    assert browser.ack(ident)["ok"]
    paused = browser.wait_state("paused")
    pause_ms = (time.monotonic() - t0) * 1e3
    assert kernel.eval("run.state") == "paused"
    assert (paused["buttons"]["step_batch"], paused["buttons"]["pause"]) == (True, False)
    assert paused["start_label"] == "Resume"

    # A pause lands anywhere inside a batch; the first step completes that batch.
    t0 = time.monotonic()
    ack = browser.command({"cmd": "step", "what": "batch"})
    assert ack["ok"], ack
    stepped = browser.wait_state("paused")
    step_ms = (time.monotonic() - t0) * 1e3
    assert stepped["event"] == "on_train_batch_end"
    where = kernel.eval("[run.ctx.epoch, run.ctx.training, run.ctx.iter]")
    assert browser.command({"cmd": "step", "what": "batch"})["ok"]
    browser.wait_state("paused")
    assert kernel.eval("[run.ctx.epoch, run.ctx.training, run.ctx.iter]") == _next_batch(where)
    assert kernel.eval("run.event.value") == "on_train_batch_end"

    t0 = time.monotonic()
    ack = browser.command({"cmd": "edit", "field": "lr", "opt": opt, "value": "0.01"})
    edit_ms = (time.monotonic() - t0) * 1e3
    assert ack == {"id": ack["id"], "ok": True, "message": f"lr of {opt} set to 0.01"}, ack
    assert kernel.eval(lr) == 0.01
    config = browser.latest("config")  # the form shows the new value
    assert config["optimizers"] == [{"name": opt, "lr": "0.01"}]

    ack = browser.command({"cmd": "edit", "field": "lr", "opt": opt, "value": "abc"})
    assert set(ack) == {"id", "ok", "message"}  # values come in the config part, never in an ack
    assert not ack["ok"], ack
    assert browser.latest("config")["optimizers"] == [{"name": opt, "lr": "0.01"}]  # snaps back
    assert "'abc' is not a number" in ack["message"], ack
    refused_abc = ack
    assert kernel.eval(lr) == 0.01
    for bad in ("-1", "nan", "1e999", "__import__('os')", ""):
        refused = browser.command({"cmd": "edit", "field": "lr", "opt": opt, "value": bad})
        assert not refused["ok"], (bad, refused)
    assert kernel.eval(lr) == 0.01

    epoch, max_epochs = kernel.eval("[run.ctx.epoch, run.ctx.max_epochs]")
    ack = browser.command({"cmd": "edit", "field": "max_epochs", "value": str(epoch - 1)})
    assert not ack["ok"], ack
    assert browser.latest("config")["max_epochs"] == str(max_epochs)
    assert "max_epochs" in ack["message"], ack
    print(f"\nrefusals: {refused_abc['message']!r}; {ack['message']!r}")
    assert kernel.eval("run.ctx.max_epochs") == max_epochs
    assert kernel.eval("run.state") == "paused"  # a refusal leaves the run as it was
    ack = browser.command({"cmd": "edit", "field": "max_epochs", "value": str(epoch + 1)})
    assert (ack["ok"], ack["message"]) == (True, f"max_epochs set to {epoch + 1}"), ack

    ack = browser.command({"cmd": "start"})
    assert (ack["ok"], ack["message"]) == (True, "resumed"), ack
    done = browser.wait_state("done", timeout=60)
    back = {"step_back", "find_nan", "find_spike"}  # a finished run can still go back
    assert not any(on for name, on in done["buttons"].items() if name not in back)
    assert all(done["buttons"][name] for name in back)
    assert kernel.eval("[run.state, run.ctx.epoch]") == ["done", epoch + 1]
    assert kernel.eval(lr) == 0.01
    log = browser.hello()["log"]  # the event log holds what happened, for a view opened now
    texts = [e["text"] for e in log]
    assert {"started", "resumed", f"lr of {opt} set to 0.01"} <= set(texts), texts
    assert any(e["kind"] == "refused" and "'abc'" in e["text"] for e in log)
    print(
        f"\ncontrols: pause reported after {pause_ms:.0f} ms, a batch stepped in {step_ms:.0f} ms, "
        f"lr edit acknowledged in {edit_ms:.0f} ms (message to update, this loaded machine)"
    )


def test_a_callback_error_shows_its_traceback_and_retry_runs_in_the_background(
    kernel: Kernel,
) -> None:
    browser = show(kernel, "callbacks=[boom := Boom()]")
    browser.hello()
    kernel.execute("boom.armed = True")
    assert browser.command({"cmd": "start"})["ok"]
    failed = browser.wait_state("error", timeout=60)
    error = browser.latest("error")
    assert error is not None
    assert error["type"] == "CallbackError", error
    assert "boom at batch 5" in error["message"]
    assert "Traceback (most recent call last)" in error["traceback"]
    assert 'raise RuntimeError("boom at batch 5")' in error["traceback"]
    assert failed["buttons"] == {
        **failed["buttons"],
        "retry": True,
        "skip": True,
        "start": False,
    }
    assert kernel.eval("[run.state, run.ctx.epoch, run.ctx.iter]") == ["error", 2, 5]

    ack = browser.command({"cmd": "start"})  # refused: the error must be dealt with first
    assert not ack["ok"], ack
    assert "retry" in ack["message"], ack

    kernel.execute("boom.armed = False")  # the user fixes the cause
    ident = browser.send({"cmd": "retry"}, wait=False)
    t0 = time.monotonic()
    state = kernel.execute("run.state").result  # a cell right after the retry runs at once
    cell_s = time.monotonic() - t0
    assert cell_s < 5, f"the kernel was blocked for {cell_s:.1f} s after retry"
    assert state in ("'running'", "'paused'"), state
    ack = browser.ack(ident)
    assert (ack["ok"], ack["message"]) == (True, "retrying the failed step"), ack
    browser.wait_state("running")
    assert browser.latest("error") is None  # the error part is cleared
    deadline = time.monotonic() + 30
    while kernel.eval("[run.ctx.epoch, run.ctx.iter]") <= [2, 5]:  # past the failed batch
        assert time.monotonic() < deadline, "the run did not go on after retry"
        time.sleep(0.05)
    assert kernel.eval("run.state") == "running"
    assert browser.command({"cmd": "stop"})["ok"]
    browser.wait_state("done", timeout=60)
    assert kernel.eval("[run.state, run.error]") == ["done", None]
    print(f"\nretry: the next cell answered after {cell_s * 1e3:.0f} ms")
