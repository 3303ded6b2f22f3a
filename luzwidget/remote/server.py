"""The server a training process runs for its run: one zmq ROUTER socket, in a thread.

:class:`Server` answers the requests of :mod:`luzwidget.remote.protocol` in arrival order,
one at a time, on its own thread (commands from several notebooks are serialised: each is
applied through the Run API as a local call would be, and the last one wins). It pushes
the dashboard's messages, built by the same :class:`~luzwidget.widgets.collector.Collector`
a dashboard in the kernel uses, to every subscriber: a snapshot when one subscribes, then
throttled deltas holding only what changed (so bytes per update do not grow with the run).

The training itself never waits for the server: a notebook that disconnects, or whose
kernel restarts, leaves the run as it was (training, or paused where it was paused).

Nothing a peer sends stops the server (see :mod:`luzwidget.remote.protocol`): a peer
without the token is refused by the handshake (the server's own ZAP handler, polled by the
same thread) before any of its messages is accepted; a message over
:data:`~luzwidget.remote.protocol.MAX_MESSAGE_BYTES` is dropped by zmq; one that is not a
JSON object, nests too deep or breaks anything while it is answered is refused, reported,
and the next one is read. A server that fails all the same says so, and a blocking
``fit()`` waiting on it (:meth:`Server.hold`) stops waiting.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import threading
import time
from typing import TYPE_CHECKING, Any

from luzwidget.control import command, commands
from luzwidget.control.wire import quote
from luzwidget.core.exceptions import ConfigError
from luzwidget.core.report import report
from luzwidget.core.states import RunState
from luzwidget.remote.protocol import (
    MAX_MESSAGE_BYTES,
    PROTOCOL,
    SILENCE_S,
    SUBSCRIBER_TTL_S,
    is_loopback,
    jsonable,
    message_id,
    parse_message,
    token_bytes,
    zap_reply,
)
from luzwidget.widgets.collector import Collector
from luzwidget.widgets.commands import handle_command
from luzwidget.widgets.feed import DashboardFeed

if TYPE_CHECKING:
    import zmq

    from luzwidget.control.run import Run

__all__ = ["ServeFeed", "Server"]

IDLE_TICK_S = 1.0
"""Without subscribers the server drains the run's queues this often (they stay short)."""

EXIT_GRACE_S = 2.0
"""When the script ends, a server heard from lately answers this much longer (the final state)."""

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
"""Where zmq asks a context's ZAP handler whether a handshake's credentials are good."""

DOMAIN = b"luzwidget"


class ServeFeed(DashboardFeed):
    """The dashboard feed of a served run: never ticks from the loop, never "blocking".

    The server's thread answers commands whichever thread trains, so the buttons are live
    even while a script's ``fit()`` drives the loop on its main thread.
    """

    def __init__(self) -> None:
        super().__init__(tick=lambda: None, wake=lambda: None, direct=False)

    def _nudge(self) -> None:
        self.sleeping = False


class Server:
    """Serve ``run`` on ``tcp://host:port`` (port 0: a free one) to holders of ``token``.

    Parameters
    ----------
    run : Run
        The run served.
    host : str
        Where to listen; ``"127.0.0.1"`` keeps it to this machine (use SSH forwarding).
    port : int
        The port, or 0 for a free one (read :attr:`port` afterwards).
    token : str
        What every client message must carry.
    feed : ServeFeed
        The feed the ``Serve`` callback fills from the loop.
    interval : float
        Seconds between updates to subscribers (10 Hz).
    wait_on_error : bool
        Whether a blocking ``fit()`` that fails waits for a notebook (:meth:`hold`).
    """

    protocol = PROTOCOL
    """The attach protocol it speaks."""

    def __init__(
        self,
        run: Run,
        host: str,
        port: int,
        token: str,
        feed: ServeFeed,
        interval: float = 0.1,
        wait_on_error: bool = True,
    ) -> None:
        import zmq

        self.run, self.host, self.token, self.feed = run, host, token, feed
        self._password = token_bytes(token, "Serve")
        self.interval, self.wait_on_error = interval, wait_on_error
        self.collector = Collector(run, feed)
        self.subscribers: dict[bytes, float] = {}  # identity -> last heard (monotonic)
        self._zmq = zmq.Context()  # our own: never the kernel's global context
        self._zap = self._zmq.socket(zmq.REP)  # checks every handshake, before any message
        self._zap.setsockopt(zmq.LINGER, 0)
        self._zap.bind(ZAP_ENDPOINT)
        self._sock = self._zmq.socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.LINGER, 500)  # the last update still leaves on close
        self._sock.setsockopt(zmq.SNDHWM, 1000)
        self._sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        self._sock.setsockopt(zmq.PLAIN_SERVER, 1)
        self._sock.setsockopt(zmq.ZAP_DOMAIN, DOMAIN)
        try:
            self.port = _bind(self._sock, host, port)
        except ConfigError:
            self._zap.close()
            self._zmq.term()
            raise
        self._want_snapshot = False
        self._tick_failed = False
        self._last_heard = -float("inf")  # the last authenticated message (monotonic)
        self._closing = threading.Event()
        self._changed = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True, name="luzwidget-serve")
        run.ctx.observe(self.collector.on_records, "records")
        run.add_listener(self._on_state)
        run.features.serving = self  # a blocking fit() asks hold()
        atexit.register(self._close_at_exit)
        self._thread.start()
        if not is_loopback(host):
            report(
                f"WARNING: Serve(host={host!r}) listens beyond this machine. The attach "
                "protocol is plain text: anyone who can see the traffic reads the token and can "
                "then steer or stop this run. Prefer host='127.0.0.1' and an SSH tunnel "
                "(ssh -N -L PORT:127.0.0.1:PORT host)."
            )

    @property
    def address(self) -> str:
        """``host:port``, as :func:`luzwidget.attach` takes it."""
        return f"{self.host}:{self.port}"

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called, or the server's thread ended (it failed)."""
        return self._closing.is_set() or not self._thread.is_alive()

    # -- the training side --------------------------------------------------------------
    def hold(self) -> bool:
        """Called by a blocking ``fit()`` when its run paused or failed: wait for a notebook.

        Returns once the run is done (True), or (False) when nothing is to be waited for:
        the server closed or its thread failed (then no notebook can attach: ``fit()``
        goes on as without ``Serve``), or an error while ``wait_on_error`` is off. A
        notebook's resume drives the run in a background thread meanwhile.
        """
        run = self.run
        if self.closed or (run.state == RunState.ERROR and not self.wait_on_error):
            return self._gone()
        what = "stopped on an error" if run.state == RunState.ERROR else str(run.state)
        report(
            f"the run {'is ' * (what != 'stopped on an error')}{what} ({run.reason}); waiting "
            f"for an attached notebook to resume, step or stop it (lw.attach({self.address!r}, "
            "token=...))"
        )
        while not self.closed:
            self._changed.clear()
            if run.state == RunState.DONE:
                return True
            self._changed.wait(0.5)
        return run.state == RunState.DONE or self._gone()

    def _gone(self) -> bool:
        """False; says so when the server's thread failed (nobody can attach any more)."""
        if not self._closing.is_set() and not self._thread.is_alive():
            report("the run's server is not running (it failed, see above): fit() goes on alone")
        return False

    def _on_state(self, _: Any) -> None:
        self._changed.set()

    # -- the thread -----------------------------------------------------------------------
    def _main(self) -> None:
        import zmq

        sock, zap, next_tick = self._sock, self._zap, time.monotonic()
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(zap, zmq.POLLIN)
        try:
            while not self._closing.is_set():
                wait_ms = max(0.0, next_tick - time.monotonic()) * 1000
                ready = dict(poller.poll(int(min(wait_ms, 100))))
                if zap in ready:  # a handshake: answered before any message of that peer
                    zap.send_multipart(zap_reply(zap.recv_multipart(), self._password))
                while sock in ready and sock.poll(0):
                    self._answer(sock.recv_multipart())
                now = time.monotonic()
                if now >= next_tick:
                    self._tick_guarded()
                    next_tick = now + (self.interval if self.subscribers else IDLE_TICK_S)
            self._tick()  # the last state (done, say) reaches the notebooks
        except zmq.ZMQError as exc:
            if not self._closing.is_set():
                report("the run's server stopped; no notebook can attach to it now", error=exc)
        except Exception as exc:  # never silently: a dead server would look like a hung run
            report("the run's server failed; no notebook can attach to it now", error=exc)
        finally:
            self._changed.set()  # a blocking fit() waiting in hold() sees it
            sock.close()
            zap.close()
            self._zmq.term()

    def _answer(self, frames: list[bytes]) -> None:
        """Handle one message; whatever goes wrong is refused and reported, never raised."""
        try:
            self._handle(frames)
        except Exception as exc:
            report("the run's server could not answer a message (it goes on)", error=exc)
            if len(frames) == 2:
                self._send(frames[0], _refusal(None, type(exc).__name__, "internal error"))

    def _send(self, ident: bytes, msg: dict[str, Any]) -> bool:
        import zmq

        try:
            self._sock.send_multipart([ident, _encode(msg)], flags=zmq.NOBLOCK)
        except zmq.Again:  # a subscriber that reads nothing: it gets a snapshot later
            return False
        return True

    def _handle(self, frames: list[bytes]) -> None:
        if len(frames) != 2:
            return  # several frames: not this protocol (only authenticated peers get here)
        ident, payload = frames
        msg = parse_message(payload)
        if isinstance(msg, str):
            self._send(ident, _refusal(None, "ConfigError", f"{msg}; see the attach protocol"))
            return
        op, ident_id = msg.get("op"), message_id(msg)
        self._last_heard = time.monotonic()
        if ident in self.subscribers:
            self.subscribers[ident] = self._last_heard
        if op == "hello":
            self._hello(ident, msg)
        elif op == "call":
            self._send(ident, {"op": "reply", "id": ident_id, **_call(self.run, msg)})
        elif op == "subscribe":
            self.subscribers[ident] = time.monotonic()
            self._want_snapshot = True
            self._send(ident, {"op": "reply", "id": ident_id, "ok": True, "value": None})
        elif op == "unsubscribe":
            self.subscribers.pop(ident, None)
        elif op == "dash":
            self._dash(msg.get("content"))
        elif op == "ping":
            self._send(ident, {"op": "pong", "id": ident_id})
        else:
            shown = repr(op)[:80] if isinstance(op, str) else type(op).__name__
            self._send(ident, _refusal(ident_id, "ConfigError", f"unknown op {shown}"))

    def _hello(self, ident: bytes, msg: dict[str, Any]) -> None:
        if msg.get("protocol") != PROTOCOL:
            self._send(
                ident,
                {
                    "op": "refused",
                    "reason": "protocol",
                    "protocol": PROTOCOL,
                    "id": message_id(msg),
                },
            )
            return
        status = command.status(self.run)
        welcome = {"op": "welcome", "protocol": PROTOCOL, "id": message_id(msg), "status": status}
        self._send(ident, welcome)

    def _dash(self, content: Any) -> None:
        if not isinstance(content, dict):
            return
        if content.get("cmd") == "hello":
            self._want_snapshot = True
            return
        self.collector.add_ack(handle_command(self.run, content))
        self.feed.sleeping = False

    def _tick_guarded(self) -> None:
        """:meth:`_tick`; a failure is reported once and the server goes on answering."""
        try:
            self._tick()
        except Exception as exc:
            if not self._tick_failed:
                self._tick_failed = True
                report("the run's server could not send an update (it goes on)", error=exc)

    def _tick(self) -> None:
        now = time.monotonic()
        for ident, seen in list(self.subscribers.items()):
            if now - seen > SUBSCRIBER_TTL_S:
                del self.subscribers[ident]
        full, self._want_snapshot = self._want_snapshot, False
        msg = self.collector.collect(full=full)
        if msg is None or not self.subscribers:
            return
        update = {"op": "update", "msg": msg}
        for ident in list(self.subscribers):
            if not self._send(ident, update):
                self._want_snapshot = True

    def _close_at_exit(self) -> None:
        """The script ends: let notebooks heard from lately read the final state, then close."""
        if time.monotonic() - self._last_heard < SILENCE_S:
            time.sleep(EXIT_GRACE_S)
        self.close()

    def close(self) -> None:
        """Stop serving (the run goes on); a notebook attached sees it disconnected."""
        if self._closing.is_set():
            return
        self._closing.set()
        self._changed.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5)
        run = self.run
        run.remove_listener(self._on_state)
        with contextlib.suppress(ValueError):
            run.ctx.unobserve(self.collector.on_records, "records")
        if run.features.serving is self:
            run.features.serving = None
        atexit.unregister(self._close_at_exit)

    def detach(self) -> None:
        """The feature's way out: :meth:`close`."""
        self.close()


def _bind(sock: zmq.Socket[bytes], host: str, port: int) -> int:
    import zmq

    try:
        if port == 0:
            return int(sock.bind_to_random_port(f"tcp://{host}"))
        sock.bind(f"tcp://{host}:{port}")
    except zmq.ZMQError as exc:
        sock.close(linger=0)
        raise ConfigError(
            f"Serve: cannot listen on {host}:{port} ({exc}); choose another port, or "
            "port=0 for a free one."
        ) from None
    return port


def _encode(msg: dict[str, Any]) -> bytes:
    return json.dumps(msg, separators=(",", ":"), default=str).encode()


def _refusal(ident_id: Any, error: str, message: str) -> dict[str, Any]:
    return {"op": "reply", "id": ident_id, "ok": False, "error": error, "message": message}


def _call(run: Run, msg: dict[str, Any]) -> dict[str, Any]:
    """Apply one call; its refusal (the Run API's checks) or a bug, answered, never raised."""
    from traitlets import TraitError

    from luzwidget.core.exceptions import LuzwidgetError

    method = msg.get("method")
    try:
        answer = commands.call(run, method, msg.get("args", {}), remote=True)
        return {"ok": True, "value": jsonable(answer.value)}
    except (LuzwidgetError, TraitError) as exc:
        return {"ok": False, "error": type(exc).__name__, "message": str(exc)}
    except Exception as exc:
        report(f"a remote call {quote(method)} failed", error=exc)
        return {"ok": False, "error": type(exc).__name__, "message": str(exc)}
