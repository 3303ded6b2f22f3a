"""The notebook's end of the attach protocol: one DEALER socket, owned by one thread.

:class:`Connection` sends requests and matches replies by id, pings the server every
:data:`~luzwidget.remote.protocol.HEARTBEAT_S`, and calls each of ``on_update`` with every
dashboard message pushed to it. A server silent for
:data:`~luzwidget.remote.protocol.SILENCE_S` is *disconnected*:
waiting calls fail at once with :class:`~luzwidget.remote.protocol.AttachError`, new
calls fail at once, and ``on_link(False)`` is called; when the server answers again (a
network that came back) ``on_link(True)``. Nothing here ever waits without a timeout.

The token travels in zmq's PLAIN handshake (:mod:`luzwidget.remote.protocol`); the socket's
monitor tells a refused token (or a server of another protocol) from silence, so
:meth:`Connection.hello` says which at once.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from luzwidget.core.exceptions import ConfigError
from luzwidget.core.report import report
from luzwidget.remote.protocol import (
    HEARTBEAT_S,
    PROTOCOL,
    SILENCE_S,
    USERNAME,
    AttachError,
    parse_address,
    token_bytes,
)

__all__ = ["Connection"]

_AUTH_FAILED = 0x4000  # ZMQ_EVENT_HANDSHAKE_FAILED_AUTH: the token was refused
_HANDSHAKE_FAILED = 0x2000 | _AUTH_FAILED  # | ..._PROTOCOL: no PLAIN there (protocol 1)


class _Pending:
    """One request waiting for its answer."""

    __slots__ = ("answer", "done")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.answer: dict[str, Any] | BaseException | None = None


class Connection:
    """A connection to a served run at ``address``; :meth:`hello` checks token and version.

    Parameters
    ----------
    address : str or int
        ``"host:port"`` or a port on 127.0.0.1.
    token : str
        The token the server printed.
    timeout : float
        Seconds any request may wait for its answer.
    """

    def __init__(self, address: Any, token: str, timeout: float) -> None:
        import zmq

        self.host, self.port = parse_address(address)
        self.address = f"{self.host}:{self.port}"
        try:
            password = token_bytes(token, "attach")
        except ConfigError as exc:
            raise AttachError(str(exc)) from None
        self.token, self.timeout = token, timeout
        self.refused: str | None = None  # why the handshake failed, once it did
        self.on_update: list[Callable[[dict[str, Any]], None]] = []  # a dashboard's relay
        self.on_link: list[Callable[[bool], None]] = []
        self.connected = False
        self.subscribed = False
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._lock = threading.Lock()
        self._out: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._zmq = zmq.Context()
        self._sock = self._zmq.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.PLAIN_USERNAME, USERNAME)
        self._sock.setsockopt(zmq.PLAIN_PASSWORD, password)
        self._monitor = self._sock.get_monitor_socket(_HANDSHAKE_FAILED)
        self._sock.connect(f"tcp://{self.address}")
        self._closing = threading.Event()
        self._heard = time.monotonic()
        self._thread = threading.Thread(target=self._main, daemon=True, name="luzwidget-attach")
        self._thread.start()
        atexit.register(self.close)  # a kernel shutting down closes its socket first

    # -- requests -------------------------------------------------------------------------
    def hello(self) -> dict[str, Any]:
        """Say hello: the server's status, or an :class:`AttachError` saying why not."""
        answer = self._request({"op": "hello", "protocol": PROTOCOL}, self.timeout, hello=True)
        if answer.get("op") == "refused":
            self.close()
            raise AttachError(
                f"the run at {self.address} speaks attach protocol {answer.get('protocol')} "
                f"and this luzwidget speaks {PROTOCOL}; install the same luzwidget version "
                "on both sides."
            )
        self.connected, self._heard = True, time.monotonic()
        return dict(answer.get("status") or {})

    def request(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Send ``msg`` and return the server's answer (:class:`AttachError` if none)."""
        if not self.connected:
            raise AttachError(self._gone())
        return self._request(msg, self.timeout)

    def send(self, msg: dict[str, Any]) -> None:
        """Send ``msg`` without waiting for an answer (dashboard commands)."""
        self._push(msg)

    def _request(self, msg: dict[str, Any], timeout: float, hello: bool = False) -> dict[str, Any]:
        ident = next(self._ids)
        pending = _Pending()
        with self._lock:
            refused = self.refused if hello else None  # the handshake may have failed already
            if refused is None:
                self._pending[ident] = pending
        if refused is not None:
            self.close()
            raise AttachError(refused)
        self._push({**msg, "id": ident})
        if not pending.done.wait(timeout):
            with self._lock:
                self._pending.pop(ident, None)
            if hello and self.refused is not None:
                self.close()
                raise AttachError(self.refused)
            if hello:
                self.close()
                raise AttachError(
                    f"nothing answered at {self.address} within {timeout:g} s: is the training "
                    "process running and serving there (Serve(port=...), or LUZWIDGET_SERVE)? "
                    "For a remote machine, forward the port with ssh -L first."
                )
            raise AttachError(f"the run at {self.address} did not answer within {timeout:g} s.")
        if isinstance(pending.answer, BaseException):
            raise pending.answer
        assert pending.answer is not None
        return pending.answer

    def _push(self, msg: dict[str, Any]) -> None:
        if self._closing.is_set():
            raise AttachError(f"the connection to {self.address} is closed; lw.attach() again.")
        self._out.put(msg)
        os.write(self._wake_w, b"x")

    def _gone(self) -> str:
        return (
            f"disconnected: the run at {self.address} stopped answering (the training process "
            "ended, or the network dropped); lw.attach() again once it serves."
        )

    # -- the thread -------------------------------------------------------------------------
    def _main(self) -> None:
        import zmq

        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        poller.register(self._monitor, zmq.POLLIN)
        last_ping = time.monotonic()
        try:
            while not self._closing.is_set():
                poller.poll(100)
                while self._monitor.poll(0):
                    self._handshake_failed(self._monitor.recv_multipart())
                self._flush()
                while self._sock.poll(0):
                    self._receive(self._sock.recv())
                now = time.monotonic()
                if now - last_ping >= HEARTBEAT_S:
                    last_ping = now
                    self._sock.send(b'{"op":"ping"}')
                if self.connected and now - self._heard > SILENCE_S:
                    self._link(False)
        except Exception as exc:
            if not self._closing.is_set():
                report("the attached run's connection failed", error=exc)
            self._link(False)
        finally:
            self._sock.disable_monitor()
            self._monitor.close(linger=0)
            self._sock.close(linger=0)
            self._zmq.term()
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _handshake_failed(self, frames: list[bytes]) -> None:
        """The monitor saw a handshake fail: before the hello is answered, fail it at once."""
        from zmq.utils.monitor import parse_monitor_message

        event = parse_monitor_message(frames)["event"]
        if event == _AUTH_FAILED:
            self.refused = (
                f"the run at {self.address} refused the token; use the token it printed when "
                "it started serving (lw.attach(address, token=...))."
            )
        else:
            self.refused = (
                f"the server at {self.address} does not speak attach protocol {PROTOCOL} (another "
                "luzwidget version, or not a luzwidget run); install the same luzwidget version "
                "on both sides."
            )
        if self.connected:
            return  # a reconnect refused: the link stays down and says so after SILENCE_S
        with self._lock:
            waiting, self._pending = list(self._pending.values()), {}
        for pending in waiting:
            pending.answer = AttachError(self.refused)
            pending.done.set()

    def _flush(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        while True:
            try:
                msg = self._out.get_nowait()
            except queue.Empty:
                return
            self._sock.send(json.dumps(msg, separators=(",", ":")).encode())

    def _receive(self, payload: bytes) -> None:
        try:
            msg = json.loads(payload)
        except ValueError:
            return
        if not isinstance(msg, dict):
            return
        self._heard = time.monotonic()
        if not self.connected and msg.get("op") in ("pong", "update", "reply"):
            self._link(True)
        if msg.get("op") == "update":
            for callback in list(self.on_update) if isinstance(msg.get("msg"), dict) else []:
                try:
                    callback(msg["msg"])
                except Exception as exc:
                    report("relaying an update of the attached run failed", error=exc)
            return
        ident = msg.get("id")
        with self._lock:
            pending = self._pending.pop(ident, None) if isinstance(ident, int) else None
        if pending is not None:
            pending.answer = msg
            pending.done.set()

    def _link(self, up: bool) -> None:
        if self.connected == up:
            return
        self.connected = up
        if not up:
            with self._lock:
                waiting, self._pending = list(self._pending.values()), {}
            for pending in waiting:
                pending.answer = AttachError(self._gone())
                pending.done.set()
        elif self.subscribed:  # the server may have dropped us meanwhile: subscribe again
            self.send({"op": "subscribe"})
        for callback in list(self.on_link):
            try:
                callback(up)
            except Exception as exc:
                report("showing the attached run's connection failed", error=exc)

    def close(self) -> None:
        """Close the connection (the run goes on)."""
        if self._closing.is_set():
            return
        self._closing.set()
        atexit.unregister(self.close)
        if self._thread is not threading.current_thread():
            self._thread.join(2)
