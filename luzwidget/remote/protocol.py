"""The attach protocol (version 2): JSON messages over one zmq ROUTER/DEALER socket pair.

**Who may talk.** The token is checked by zmq's PLAIN handshake (user ``"luzwidget"``,
password the token, compared with :func:`hmac.compare_digest` by the server's ZAP handler)
before a single message of a connection is accepted: a peer without the token gets no
message through, and nothing it sends is parsed or even buffered. A refused client sees the
handshake fail (zmq's ``EVENT_HANDSHAKE_FAILED_AUTH``) and says "refused the token".
PLAIN is plain text: anyone who can read the traffic reads the token, which is why the
server listens on 127.0.0.1 unless told otherwise (forward the port over SSH).

**What they may send.** Every message is one zmq frame of at most :data:`MAX_MESSAGE_BYTES`
(zmq itself drops a larger one and the connection with it, ``ZMQ_MAXMSGSIZE``, before it
is read into memory), holding one JSON object nested at most :data:`MAX_DEPTH` deep (data
only: nothing received is ever evaluated); anything else is answered with a refusal, and
nothing a client sends stops the server. The client (a DEALER,
:mod:`luzwidget.remote.client`) sends requests; the server (a ROUTER in the training
process, :mod:`luzwidget.remote.server`) answers each, and pushes dashboard updates to the
clients that subscribed. An ``id`` is echoed when it is an int.

``{"op": "hello", "protocol": 2, "id": n}``
    answered ``{"op": "welcome", "protocol": 2, "id": n, "status": {...}}``, or
    ``{"op": "refused", "reason": "protocol", "protocol": 2}`` for another version.
``{"op": "call", "method": m, "args": {...}, "id": n}``
    a call of the command table (:data:`luzwidget.control.commands.TABLE`), named in
    :data:`METHODS`; answered ``{"op": "reply", "id": n, "ok": true,
    "value": ...}`` or ``{"op": "reply", "id": n, "ok": false, "error": "ConfigError",
    "message": ...}`` (the Run API's own checks: the same refusals as a local call).
``{"op": "subscribe", "id": n}``
    start receiving ``{"op": "update", "msg": ...}``: the dashboard's snapshot/delta
    messages (``js/README.md``), throttled to ~10 a second, each holding only what
    changed; the first is a snapshot. ``{"op": "unsubscribe"}`` stops them.
``{"op": "dash", "content": {...}}``
    a dashboard command exactly as the browser sends it (``{"cmd": "pause", "id": ...}``),
    parsed by :func:`luzwidget.widgets.commands.handle_command`; its ack rides the next
    update. ``{"cmd": "hello"}`` asks for a snapshot.
``{"op": "ping"}``
    answered ``{"op": "pong"}``; a subscriber that sends nothing for
    :data:`SUBSCRIBER_TTL_S` seconds is dropped (a notebook that went away).
"""

from __future__ import annotations

import hmac
import json
import math
from typing import Any

from luzwidget.control.commands import TABLE
from luzwidget.core.exceptions import ConfigError, LuzwidgetError, RunStateError

__all__ = [
    "HEARTBEAT_S",
    "MAX_DEPTH",
    "MAX_MESSAGE_BYTES",
    "METHODS",
    "PROTOCOL",
    "SILENCE_S",
    "SUBSCRIBER_TTL_S",
    "USERNAME",
    "AttachError",
    "error_from_reply",
    "is_loopback",
    "jsonable",
    "message_id",
    "parse_address",
    "parse_message",
    "token_bytes",
    "token_ok",
    "zap_reply",
]

PROTOCOL = 2
"""The protocol version; a client and a server of different versions refuse each other
(version 1 sent the token inside every message, and parsed a message before checking it)."""

USERNAME = b"luzwidget"
"""The PLAIN user name; the password is the token."""

MAX_MESSAGE_BYTES = 2**20
"""The largest message a server accepts (1 MiB; commands are a few hundred bytes)."""

MAX_DEPTH = 32
"""How deep a message's JSON may nest (a command nests 3 deep)."""

MAX_TOKEN_BYTES = 255
"""PLAIN carries at most 255 bytes of password."""

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


def token_bytes(token: Any, who: str) -> bytes:
    """``token`` as the bytes the handshake carries (UTF-8, 1 to 255 bytes).

    Raises
    ------
    ConfigError
        Naming ``who`` (``Serve`` or ``attach``), if ``token`` is not such text.
    """
    if isinstance(token, str):
        try:
            raw = token.encode()
        except UnicodeEncodeError:
            raw = b""
        if 0 < len(raw) <= MAX_TOKEN_BYTES:
            return raw
    raise ConfigError(
        f"{who}: token must be text of 1 to {MAX_TOKEN_BYTES} bytes in UTF-8, got "
        f"{type(token).__name__} of length {len(token) if isinstance(token, str) else '?'}; use "
        "the token the training process printed."
    )


def token_ok(given: bytes, token: bytes) -> bool:
    """Whether ``given`` is the token (constant time, on bytes: any bytes can be compared)."""
    return hmac.compare_digest(given, token)


def zap_reply(request: list[bytes], token: bytes) -> list[bytes]:
    """The answer to one ZAP request (zmq RFC 27): PLAIN with user :data:`USERNAME` and
    ``token`` as password is let in ("200"); anything else is refused ("400")."""
    version, request_id = request[0], request[1]
    mechanism, credentials = request[5:6], request[6:]
    good = (
        mechanism == [b"PLAIN"]
        and len(credentials) == 2
        and credentials[0] == USERNAME
        and token_ok(credentials[1], token)
    )
    status = [b"200", b"OK"] if good else [b"400", b"wrong token"]
    return [version, request_id, *status, USERNAME if good else b"", b""]


def parse_message(payload: bytes) -> dict[str, Any] | str:
    """One message: the JSON object in ``payload``, or why it is refused (a short text).

    Never raises: not UTF-8, not JSON, JSON nested too deep for the parser
    (``RecursionError``) or deeper than :data:`MAX_DEPTH`, or not an object, all come back
    as text.
    """
    try:
        msg = json.loads(payload)
    except (ValueError, RecursionError, MemoryError) as exc:  # UnicodeDecodeError included
        return f"not a JSON message ({type(exc).__name__})"
    if not isinstance(msg, dict):
        return f"a message is a JSON object, got {type(msg).__name__}"
    if _deeper_than(msg, MAX_DEPTH):
        return f"a message nests at most {MAX_DEPTH} deep"
    return msg


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests deeper than ``limit`` (iterative: no recursion to exhaust)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return False


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` keeps the server to this machine."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # an interface name, "*", a host name: reachable from elsewhere


def message_id(msg: Any) -> int | None:
    """The ``id`` a reply echoes: an int, else None (never a structure sent back)."""
    ident = msg.get("id") if isinstance(msg, dict) else None
    return ident if isinstance(ident, int) and not isinstance(ident, bool) else None


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
