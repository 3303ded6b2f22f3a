"""The attach protocol (version 1): JSON messages over one zmq ROUTER/DEALER socket pair.

Every message is one zmq frame holding a JSON object (data only: nothing received is ever
evaluated). The client (a DEALER, :mod:`luzwidget.remote.client`) sends requests; the
server (a ROUTER in the training process, :mod:`luzwidget.remote.server`) answers each,
and pushes dashboard updates to the clients that subscribed.

Client to server, each carrying ``"token"`` (checked with :func:`hmac.compare_digest`
on every message; a wrong or missing one gets ``{"op": "refused"}`` and no state):

``{"op": "hello", "protocol": 1, "token": t, "id": n}``
    answered ``{"op": "welcome", "protocol": 1, "id": n, "status": {...}}``, or
    ``{"op": "refused", "reason": "protocol", "protocol": 1}`` for another version.
``{"op": "call", "method": m, "args": {...}, "token": t, "id": n}``
    a call of the command table (:data:`luzwidget.control.commands.TABLE`), named in
    :data:`METHODS`; answered ``{"op": "reply", "id": n, "ok": true,
    "value": ...}`` or ``{"op": "reply", "id": n, "ok": false, "error": "ConfigError",
    "message": ...}`` (the Run API's own checks: the same refusals as a local call).
``{"op": "subscribe", "token": t, "id": n}``
    start receiving ``{"op": "update", "msg": ...}``: the dashboard's snapshot/delta
    messages (``js/README.md``), throttled to ~10 a second, each holding only what
    changed; the first is a snapshot. ``{"op": "unsubscribe"}`` stops them.
``{"op": "dash", "content": {...}, "token": t}``
    a dashboard command exactly as the browser sends it (``{"cmd": "pause", "id": ...}``),
    parsed by :func:`luzwidget.widgets.commands.handle_command`; its ack rides the next
    update. ``{"cmd": "hello"}`` asks for a snapshot.
``{"op": "ping", "token": t}``
    answered ``{"op": "pong"}``; a subscriber that sends nothing for
    :data:`SUBSCRIBER_TTL_S` seconds is dropped (a notebook that went away).
"""

from __future__ import annotations

import hmac
import math
from typing import Any

from luzwidget.control.commands import TABLE
from luzwidget.core.exceptions import ConfigError, LuzwidgetError, RunStateError

__all__ = [
    "HEARTBEAT_S",
    "METHODS",
    "PROTOCOL",
    "SILENCE_S",
    "SUBSCRIBER_TTL_S",
    "AttachError",
    "error_from_reply",
    "jsonable",
    "parse_address",
    "token_ok",
]

PROTOCOL = 1
"""The protocol version; a client and a server of different versions refuse each other."""

HEARTBEAT_S = 1.0
"""A client pings this often."""

SILENCE_S = 8.0
"""A client counts the server gone after this long without a word (a loaded machine can
starve a server thread of the GIL for seconds; a dead one is told apart soon enough)."""

SUBSCRIBER_TTL_S = 10.0
"""The server stops sending updates to a subscriber silent for this long."""

METHODS = frozenset(name for name, command in TABLE.items() if command.remote)
"""Every Run API call a client may make (anything else is refused by name)."""


class AttachError(LuzwidgetError, ConnectionError):
    """Attaching to a served run failed, or the connection to it was lost."""


class RemoteError(LuzwidgetError, RuntimeError):
    """An error the server raised that has no class of its own here (named in the text)."""


_KNOWN: dict[str, type[Exception]] = {
    "ConfigError": ConfigError,
    "EditError": ConfigError,
    "RunStateError": RunStateError,
    "TraitError": ConfigError,
}


def error_from_reply(reply: dict[str, Any]) -> Exception:
    """The exception a refused call raises here: the server's class where it is known."""
    name = str(reply.get("error", "RemoteError"))
    message = str(reply.get("message", ""))
    cls = _KNOWN.get(name)
    if cls is None:
        return RemoteError(f"{name}: {message}")
    return cls(message)


def token_ok(given: Any, token: str) -> bool:
    """Whether ``given`` is the token (constant time; anything but a str is wrong)."""
    return isinstance(given, str) and hmac.compare_digest(given.encode(), token.encode())


def parse_address(address: Any) -> tuple[str, int]:
    """``"host:port"``, ``"tcp://host:port"`` or a port number -> ``(host, port)``.

    Raises
    ------
    ConfigError
        If ``address`` is none of those (the message shows what was given).
    """
    if isinstance(address, int) and not isinstance(address, bool):
        host, port_text = "127.0.0.1", str(address)
    elif isinstance(address, str):
        text = address.removeprefix("tcp://")
        host, _, port_text = text.rpartition(":")
        host = host or "127.0.0.1"
    else:
        raise ConfigError(
            f"address: expected 'host:port' (e.g. '127.0.0.1:8765') or a port number, "
            f"got {type(address).__name__} {address!r}."
        )
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(
            f"address: expected 'host:port' with a port from 1 to 65535, got {address!r}; "
            "the training process prints its address when it starts serving."
        )
    return host, int(port_text)


def jsonable(value: Any) -> Any:
    """``value`` made of JSON types (numbers, text, lists, dicts); NaN and inf become None."""
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    item = getattr(value, "item", None)  # numpy and torch scalars
    if callable(item):
        try:
            return jsonable(item())
        except (TypeError, ValueError, RuntimeError):
            pass
    return str(value)
