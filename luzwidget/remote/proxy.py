"""``lw.attach``: a proxy with the Run API for a run served in another process.

Every attribute read and command is one request to the server (``Serve`` in the training
process), answered within ``timeout`` or raising :class:`AttachError`; refusals are the
Run API's own (``ConfigError``, ``RunStateError``). Values cross as data: learning rates,
event names, field values or their summaries, DataFrames as rows. The proxy's commands
(``pause``, ``set_lr``, ``rewind``...) are made from the command table
(:data:`luzwidget.control.commands.TABLE`), the one the server answers with.
"""

from __future__ import annotations

import inspect
import time
import weakref
from collections.abc import Callable
from typing import Any

from luzwidget.control.command import Command
from luzwidget.control.commands import TABLE
from luzwidget.core.events import Event
from luzwidget.core.records import Records
from luzwidget.core.states import RunState
from luzwidget.remote.client import Connection
from luzwidget.remote.protocol import AttachError, error_from_reply

__all__ = ["Attached", "RemoteBreakpoints", "RemoteContext", "attach"]


def attach(address: Any, token: str | None = None, timeout: float = 10.0) -> Attached:
    """Attach to a run served by ``lw.callbacks.Serve`` (or ``LUZWIDGET_SERVE``).

    Parameters
    ----------
    address : str or int
        ``"host:port"`` as the training process printed it (or a port on 127.0.0.1). For
        a run on another machine, forward its port first: ``ssh -L 8765:127.0.0.1:8765 host``.
    token : str
        The token it printed.
    timeout : float, default 10
        Seconds to wait for any answer, this first one included.

    Raises
    ------
    AttachError
        Nothing answered within ``timeout``, the token was refused, or the two sides
        speak different protocol versions.

    Examples
    --------
    >>> run = lw.attach("127.0.0.1:8765", token="...")   # doctest: +SKIP
    >>> run.pause(); run.set_lr(1e-4); run.resume()       # doctest: +SKIP
    """
    if not isinstance(token, str) or not token:
        raise AttachError(
            f"attach: token is missing (got {token!r}); pass the token the training process "
            "printed when it started serving: lw.attach(address, token='...')."
        )
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise AttachError(f"attach: timeout must be a positive number of seconds, got {timeout!r}.")
    conn = Connection(address, token, float(timeout))
    conn.hello()
    return Attached(conn)


class Attached:
    """A run in another process, steered as a local :class:`~luzwidget.Run` is.

    Commands go to the server's run at once and are applied at its next event boundary;
    ``step()`` and ``wait()`` return once the run stopped again. ``resume()`` and
    ``start()`` both train in the training process and return at once.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._release = weakref.finalize(self, conn.close)  # dropped: thread and handles go
        self.ctx = RemoteContext(self)
        self.breakpoints = RemoteBreakpoints(self)
        self._dashboards: dict[Any, Any] = {}

    # -- the link -------------------------------------------------------------------------
    @property
    def address(self) -> str:
        """``host:port`` of the server."""
        return self._conn.address

    @property
    def connected(self) -> bool:
        """False once the server stopped answering (its process ended, or the network)."""
        return self._conn.connected

    def close(self) -> None:
        """Let go of the run (it goes on training); its dashboards show it disconnected.

        Dropping the proxy (garbage collection) closes the connection as well: its thread,
        zmq context and handles are released.
        """
        for dash in self._dashboards.values():
            dash.close()
        self._release()

    def call(self, method: str, **args: Any) -> Any:
        """One Run API call on the server (see :data:`~luzwidget.remote.protocol.METHODS`)."""
        answer = self._conn.request({"op": "call", "method": method, "args": args})
        if answer.get("op") == "refused":
            raise AttachError(f"the run at {self.address} refused the token.")
        if not answer.get("ok"):
            raise error_from_reply(answer)
        return answer.get("value")

    # -- what the run shows ---------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """State, reason, event, epoch, batch, limits, error and learning rates, at once."""
        return dict(self.call("status"))

    @property
    def state(self) -> RunState:
        """``"ready"``, ``"running"``, ``"paused"``, ``"error"`` or ``"done"``."""
        return RunState(self.status()["state"])

    @property
    def reason(self) -> str:
        """Why the run paused or stopped."""
        return str(self.status()["reason"])

    @property
    def error(self) -> str | None:
        """In state ``"error"``: what failed (as text), else None."""
        error = self.status()["error"]
        return None if error is None else str(error)

    @property
    def event(self) -> Event | None:
        """The last event that fired."""
        name = self.status()["event"]
        return None if name is None else Event(name)

    @property
    def records(self) -> dict[str, Any]:
        """A copy of the run's ``ctx.records`` (metrics per set and epoch)."""
        return dict(self.call("records"))

    @property
    def history(self) -> Records:
        """:class:`~luzwidget.core.records.Records` over :attr:`records` (read once)."""
        return Records(self.records)

    def get_metrics(self) -> Any:
        """A DataFrame with columns set, metric, epoch, value (as ``fitted.get_metrics()``)."""
        return self.history.frame()

    def layers(self) -> Any:
        """``run.layers()`` of the served run, as a DataFrame."""
        return _frame(self.call("layers"))

    def compare(self) -> Any:
        """``run.compare()`` of the served run, as a DataFrame."""
        return _frame(self.call("compare"))

    def activations(self) -> Any:
        """``run.activations()`` of the served run, as a DataFrame."""
        return _frame(self.call("activations"))

    # -- driving --------------------------------------------------------------------------
    def resume(self) -> None:
        """Go on training; returns at once (the run trains in its own process)."""
        self.call("start")

    def step(self, what: Event | str | None = None, n: int | None = None) -> Event | None:
        """Run to the next event, ``n`` batches or epochs, or an event; wait; return it."""
        if what is None:
            what = "event" if n is None else "batch"
        self.call("start", until=_name(what), n=1 if n is None else n)
        self.wait()
        return self.event

    def wait(self, timeout: float | None = None) -> RunState:
        """Wait until the run is no longer training (or ``timeout`` s); return its state."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            state = self.state
            if state != RunState.RUNNING:
                return state
            if deadline is not None and time.monotonic() > deadline:
                return state
            time.sleep(0.02)

    def dashboard(self, parts: Any = None) -> Any:
        """The dashboard widget, driven by the served run (the same widget, same parts)."""
        key = None if parts is None else tuple(parts)
        widget = self._dashboards.get(key)
        if widget is None:
            from luzwidget.remote.dashboard import RemoteDashboard

            widget = self._dashboards[key] = RemoteDashboard(self._conn, parts=parts)
        return widget

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.dashboard()._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        try:
            s = self.status()
        except AttachError:
            return f"<Attached run at {self.address}: disconnected>"
        return (
            f"<Attached run at {self.address}: {s['state']}, epoch {s['epoch']}/"
            f"{s['max_epochs']}, batch {s['iter']}>"
        )


_BY_HAND = frozenset(
    {"breakpoints", "breakpoint_set", "breakpoint_add", "breakpoint_remove",
     "breakpoint_clear", "breakpoint_flag", "field", "summaries", "step"}
)  # fmt: skip
"""Commands the proxy offers otherwise: ``run.breakpoints``, ``run.ctx``, a blocking step."""


def _method(command: Command) -> Callable[..., Any]:
    """A proxy method calling ``command`` on the server, with the command's signature."""
    empty = inspect.Parameter.empty
    signature = inspect.Signature(
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        + [
            inspect.Parameter(
                p.name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=empty if p.required else p.default,
            )
            for p in command.params
        ]
    )

    def method(self: Attached, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        given = {k: _name(v) for k, v in bound.arguments.items() if k != "self"}
        value = self.call(command.name, **given)
        return value if command.returns else None

    method.__name__ = command.name
    method.__qualname__ = f"Attached.{command.name}"
    method.__doc__ = (
        f"{command.doc}\n\nAs ``run.{command.name}`` in the training process: the same checks, "
        "the same refusals."
    )
    method.__signature__ = signature  # type: ignore[attr-defined]  # what help() shows
    return method


for _command in TABLE.values():
    if _command.remote and _command.name not in _BY_HAND and _command.name not in vars(Attached):
        setattr(Attached, _command.name, _method(_command))
del _command


class RemoteContext:
    """``run.ctx`` of an attached run: plain fields as values, others as their summary."""

    def __init__(self, run: Attached) -> None:
        self._run = run

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        value = self._run.call("field", name=name)
        return value["summary"] if isinstance(value, dict) and "summary" in value else value

    def summaries(self) -> dict[str, str]:
        """Every field's summary, as the dashboard's inspector shows it."""
        return dict(self._run.call("summaries"))


class RemoteBreakpoints:
    """``run.breakpoints`` of an attached run: events by name, and the NaN/inf flags."""

    def __init__(self, run: Attached) -> None:
        self._run = run

    def add(self, event: Event | str) -> None:
        """Pause at every ``event`` (conditions are code: add them in the training script)."""
        self._run.call("breakpoint_add", event=_name(event))

    def remove(self, event: Event | str) -> None:
        """Stop pausing at ``event``."""
        self._run.call("breakpoint_remove", event=_name(event))

    def clear(self) -> None:
        """Remove every breakpoint."""
        self._run.call("breakpoint_clear")

    @property
    def events(self) -> frozenset[Event]:
        """The events the run pauses at."""
        return frozenset(Event(e) for e in self._run.call("breakpoints")["events"])

    @property
    def nonfinite_loss(self) -> bool:
        """Pause after an epoch whose loss became NaN/inf."""
        return bool(self._run.call("breakpoints")["nonfinite_loss"])

    @nonfinite_loss.setter
    def nonfinite_loss(self, value: bool) -> None:
        self._run.call("breakpoint_flag", name="nonfinite_loss", value=value)

    @property
    def nonfinite(self) -> bool:
        """Pause at the first non-finite module output or gradient."""
        return bool(self._run.call("breakpoints")["nonfinite"])

    @nonfinite.setter
    def nonfinite(self, value: bool) -> None:
        self._run.call("breakpoint_flag", name="nonfinite", value=value)

    def __contains__(self, event: object) -> bool:
        return isinstance(event, Event | str) and Event.parse(event) in self.events

    def __repr__(self) -> str:
        return f"<RemoteBreakpoints {self._run.call('breakpoints')}>"


def _name(what: Any) -> Any:
    return what.value if isinstance(what, Event) else what


def _frame(value: dict[str, Any]) -> Any:
    import pandas as pd

    frame = pd.DataFrame(value["data"], columns=value["columns"])
    for column in frame.columns:  # NaN crossed as None: numbers again
        values = frame[column].dropna()
        numbers = values.map(lambda v: isinstance(v, int | float) and not isinstance(v, bool))
        if len(frame) and values.size < len(frame) and bool(numbers.all()):
            frame[column] = frame[column].astype(float)
    return frame
