"""A served run under hostile peers (issue 23): nothing anyone sends stops the server, grows
the training process, or reaches the Run API unchecked; a server that dies anyway never
leaves a blocking fit() waiting; serving beyond loopback is warned about.

The served run is tests/jobs/serve_job.py, a real process on 127.0.0.1, killed at the end.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import zmq
from torch import nn

import luzwidget as lw
from luzwidget.remote import server as server_module
from luzwidget.remote.protocol import (
    MAX_DEPTH,
    is_loopback,
    message_id,
    parse_message,
    zap_reply,
)
from tests.jobs.serve_job import Job, wait_until

FRAME_50_MB = b"[" + b"{}," * (50 * 2**20 // 3) + b"{}]"


@pytest.fixture
def job(tmp_path: Path) -> Iterator[Job]:
    j = Job(tmp_path)
    try:
        yield j
    finally:
        j.kill()


def peak_mb(pid: int) -> int:
    """The process's peak resident memory (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no VmHWM")


@contextlib.contextmanager
def raw(job: Job, token: str | bytes | None = None) -> Iterator[zmq.Socket[bytes]]:
    """A bare DEALER at the job: with ``token``, it passes the PLAIN handshake. A send
    gives up after 5 s (a refused peer may have nowhere to queue it)."""
    with zmq.Context() as ctx, ctx.socket(zmq.DEALER) as sock:
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDTIMEO, 5000)
        if token is not None:
            sock.plain_username = b"luzwidget"
            sock.plain_password = token.encode() if isinstance(token, str) else token
        sock.connect(f"tcp://{job.address}")
        yield sock


def answer(sock: zmq.Socket[bytes], payload: bytes, within_ms: int = 20_000) -> Any:
    sock.send(payload)
    assert sock.poll(within_ms), f"no answer to {payload[:60]!r}"
    return sock.recv_json()


def test_no_frame_from_anyone_grows_the_training_process(job: Job) -> None:
    """Before: one 50 MB frame, no token, took the process from 314 to 1,630 MB."""
    time.sleep(2)  # settled: the fit runs
    before = peak_mb(job.proc.pid)
    for token in (None, "wrong-token", job.token):  # refused by the handshake, or by the size
        with raw(job, token) as sock, contextlib.suppress(zmq.Again):
            sock.send(FRAME_50_MB)
            assert not sock.poll(3000)
    with raw(job) as sock, contextlib.suppress(zmq.Again):  # 100 frames of 1 MiB in one message
        sock.send_multipart([b"x" * (2**20 - 64)] * 100)
        assert not sock.poll(3000)
    assert peak_mb(job.proc.pid) - before < 64
    run = job.attach()
    try:
        assert run.state == "running"
    finally:
        run.close()


def test_unreadable_messages_are_refused_and_the_server_goes_on(job: Job) -> None:
    deep = b"[" * 3000 + b"]" * 3000  # RecursionError inside json.loads
    nested_id = b'{"op":"ping","id":' + b"[" * 989 + b"]" * 989 + b"}"  # echoing it recursed
    cases = [
        (deep, "RecursionError"),
        (nested_id, f"nests at most {MAX_DEPTH} deep|RecursionError"),
        (b"\xff\xfe{", "not a JSON message"),
        (b"[1, 2]", "a message is a JSON object"),
        (b'{"op":' + b"[" * 30 + b"]" * 30 + b"}", "unknown op list"),
        (b'{"op":"call","method":{"a":1},"id":7}', "unknown command {'a': 1}"),
        (b'{"op":"call","method":"set_lr","args":{"lr":' + b"[" * 20 + b"]" * 20 + b"}}", "lr"),
    ]
    with raw(job, job.token) as sock:
        for payload, said in cases:
            reply = answer(sock, payload)
            assert reply["op"] == "reply"
            assert reply["ok"] is False
            assert re.search(said, reply["message"]), (payload[:40], reply)
        # the old token check: a lone surrogate in a field is just text now
        assert answer(sock, b'{"op":"ping","token":"\\ud800","id":3}') == {"op": "pong", "id": 3}
        assert answer(sock, b'{"op":"ping","id":[1]}') == {"op": "pong", "id": None}
    with raw(job, "\ud800".encode("utf-8", "surrogatepass")) as sock:  # refused, no crash
        sock.send(b'{"op":"ping"}')
        assert not sock.poll(2000)
    run = job.attach()
    try:
        assert run.state == "running"  # the same server thread answers
    finally:
        run.close()
    assert "server failed" not in (job.out / "log").read_text()


def test_numbers_out_of_range_are_refused_through_the_served_run(job: Job) -> None:
    """Before: edit(max_epochs=10**400) was accepted and the server's next tick died of
    OverflowError; set_lr(lr=10**400) came back as an internal error."""
    run = job.attach()
    try:
        with pytest.raises(lw.ConfigError, match="too large; expected at most"):
            run.edit("max_epochs", 10**400)
        with pytest.raises(lw.ConfigError, match=r"lr: .* too large"):
            run.set_lr(10**400)
        with pytest.raises(lw.ConfigError, match=r"lr: .* not finite"):
            run.call("set_lr", lr=float("inf"))
        time.sleep(1.5)  # a few of the server's ticks
        status = run.status()
        assert status["max_epochs"] == 100_000
        assert status["lr"] == {"opt": 1e-3}
    finally:
        run.close()
    assert "server failed" not in (job.out / "log").read_text()


def test_the_wire_checks() -> None:
    def nested(depth: int) -> bytes:
        return b'{"a":' * depth + b"1" + b"}" * depth

    assert parse_message(b'{"op": "ping"}') == {"op": "ping"}
    assert "RecursionError" in str(parse_message(b"[" * 5000))
    assert "nests" in str(parse_message(nested(MAX_DEPTH)))
    assert isinstance(parse_message(nested(MAX_DEPTH - 1)), dict)
    head = [b"1.0", b"7", b"luzwidget", b"127.0.0.1", b""]
    assert zap_reply([*head, b"PLAIN", b"luzwidget", b"tok"], b"tok")[2] == b"200"
    for wrong in ([b"PLAIN", b"luzwidget", b"nope"], [b"PLAIN", b"x", b"tok"], [b"NULL"]):
        assert zap_reply([*head, *wrong], b"tok")[:3] == [b"1.0", b"7", b"400"]
    assert zap_reply([*head, b"PLAIN", b"luzwidget", b"\xed\xa0\x80"], b"tok")[2] == b"400"
    assert [message_id({"id": v}) for v in (7, True, "x", [1], None)] == [7, None, None, None, None]
    assert [is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "localhost")] == [True] * 4
    assert [is_loopback(h) for h in ("0.0.0.0", "*", "10.0.0.5", "eth0", "::")] == [False] * 5


# -- in this process: the server's thread dies, a host beyond loopback --------------------


class BoomOnceServerDied(lw.Callback):
    """Waits (bounded) until the served run's server thread has ended, then raises."""

    def __init__(self, serve: lw.callbacks.Serve) -> None:
        self.serve = serve

    def on_train_batch_end(self, ctx: lw.Context) -> None:
        if (ctx.epoch, ctx.iter) == (1, 2):
            wait_until(lambda: self.serve.server.closed, "the server thread to end", 30)
            raise RuntimeError("boom after the server died")


def small_fit(callbacks: list[Any], epochs: int = 2) -> Any:
    x = torch.randn(32, 3)
    spec = lw.setup(nn.Linear(3, 1), loss=nn.MSELoss(), optimizer=torch.optim.SGD)
    return spec.set_opt_hparams(lr=0.1).fit(
        (x, x.sum(1, keepdim=True)),
        epochs=epochs,
        verbose=False,
        callbacks=callbacks,
        dataloader_options={"batch_size": 8},
    )


def test_a_dead_server_is_reported_and_never_leaves_fit_waiting(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Before: hold() watched close(), not the thread; fit(wait_on_error=True) waited forever."""

    def planted(self: Any) -> None:
        raise RuntimeError("planted in the server thread")

    monkeypatch.setattr(server_module.Server, "_tick_guarded", planted)
    serve = lw.callbacks.Serve(port=0, host="127.0.0.1", wait_on_error=True)
    raised: list[BaseException] = []

    def fit() -> None:
        try:
            small_fit([serve, BoomOnceServerDied(serve)])
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=fit, daemon=True)
    thread.start()
    thread.join(60)
    try:
        assert not thread.is_alive(), "fit() kept waiting on a dead server"
    finally:
        serve.close()  # releases a fit() stuck in hold() (before the fix), then it ends
        thread.join(30)
    assert len(raised) == 1
    assert "boom after the server died" in str(raised[0])
    err = capfd.readouterr().err
    assert "the run's server failed" in err
    assert "planted in the server thread" in err
    assert "the run's server is not running" in err


def test_serving_beyond_loopback_is_warned_about(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    real_bind = server_module._bind
    monkeypatch.setattr(  # the test itself stays on loopback
        server_module, "_bind", lambda sock, host, port: real_bind(sock, "127.0.0.1", port)
    )
    serve = lw.callbacks.Serve(port=0, host="0.0.0.0")
    try:
        small_fit([serve], epochs=1)
    finally:
        serve.close()
    err = capfd.readouterr().err
    assert re.search(r"WARNING: Serve\(host='0.0.0.0'\) listens beyond this machine", err), err
    assert "plain text" in err
    quiet = lw.callbacks.Serve(port=0)
    try:
        small_fit([quiet], epochs=1)
    finally:
        quiet.close()
    assert "WARNING" not in capfd.readouterr().err
