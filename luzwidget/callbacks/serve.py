"""``Serve``: let notebooks attach to this run from another process (``lw.attach``).

The callback only declares what to serve (address, token, whether to wait on an error)
and hands the loop's batch ends to a feed; the serving itself is :mod:`luzwidget.remote`,
which the composition root connects to it (``remote.serving.install``) for every run it
builds.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from luzwidget.core.callback import Callback
from luzwidget.core.exceptions import ConfigError
from luzwidget.core.report import report

if TYPE_CHECKING:
    from luzwidget.core.context import Context

__all__ = ["Serve", "serve_from_env"]

ENV = "LUZWIDGET_SERVE"
"""``LUZWIDGET_SERVE=8765`` (or ``host:port``) adds a ``Serve`` to every fit of a process."""


class Serve(Callback):
    """Serve the run to notebooks: ``lw.attach(address, token=...)`` steers it from there.

    The server starts at ``on_fit_begin`` in a background thread (pyzmq), prints its
    address and token, and answers the Run API (pause, resume, step, stop, edits,
    breakpoints, retry/skip, layers) and the dashboard's messages, checked as local calls
    are. A blocking ``fit()`` that pauses (a notebook asked, a breakpoint) or fails waits
    for an attached notebook instead of going on or raising. Under ``torchrun`` only rank
    0 serves.

    Parameters
    ----------
    port : int, default 0
        The port to listen on; 0 picks a free one (read :attr:`address` after the start).
    host : str, default "127.0.0.1"
        The interface; the default keeps the run to this machine (use SSH forwarding to
        reach it from another: see the user guide's "Steering a run in another process").
        Any other (``"0.0.0.0"``, a LAN address) is warned about: the traffic, token
        included, is plain text that anyone on the network can read.
    token : str, optional
        What a notebook must give; without one a random token is generated.
    wait_on_error : bool, default True
        Whether a blocking ``fit()`` that fails waits for a notebook to retry, skip or
        stop it (False: it raises, as without ``Serve``).

    Examples
    --------
    >>> model.fit(data, epochs=50, callbacks=[lw.callbacks.Serve(port=8765)])  # doctest: +SKIP
    """

    weight = 1000  # as the dashboard's feed: after the defaults, the loss is there

    def __init__(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        token: str | None = None,
        wait_on_error: bool = True,
    ) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port < 65536:
            raise ConfigError(f"Serve: port must be an int from 0 to 65535, got {port!r}.")
        if not isinstance(host, str) or not host:
            raise ConfigError(f"Serve: host must be an interface name, got {host!r}.")
        if token is not None and not _good_token(token):
            raise ConfigError(
                f"Serve: token must be text of 8 to 255 bytes in UTF-8, got {type(token).__name__}"
                f" of length {len(token) if isinstance(token, str) else '?'}; leave it out to "
                "get a random one."
            )
        self.port, self.host, self.wait_on_error = port, host, wait_on_error
        self.token = token if token is not None else secrets.token_urlsafe(24)
        self.server: Any = None  # the remote Server, while serving
        self.starter: Callable[[], None] | None = None  # set by luzwidget.remote's install
        self._feed: Any = None

    @property
    def address(self) -> str:
        """``host:port`` (the chosen port once serving, when ``port=0`` was asked)."""
        return f"{self.host}:{self.port}"

    def on_fit_begin(self, ctx: Context) -> None:
        if ctx.rank != 0:
            return
        if self.starter is None:
            report(
                "Serve: this callback is not connected to a run; pass it to fit() or run() "
                "(callbacks=[Serve()]) rather than adding it to a run later."
            )
            return
        self.starter()

    def started(self, port: int, feed: Any) -> None:
        """Called by the server once it listens: the port chosen, the feed to fill."""
        self.port, self._feed = port, feed
        report(
            f"serving the run at {self.address} (protocol {self.server.protocol}); attach from "
            "a notebook with\n"
            f"    lw.attach({self.address!r}, token={self.token!r})"
        )

    def on_train_batch_end(self, ctx: Context) -> None:
        if self._feed is not None:
            self._feed.on_train_batch_end(ctx)

    def on_valid_batch_end(self, ctx: Context) -> None:
        if self._feed is not None:
            self._feed.on_valid_batch_end(ctx)

    def close(self) -> None:
        """Stop serving (training goes on)."""
        if self.server is not None:
            self.server.close()

    def __repr__(self) -> str:
        return f"Serve({self.address})"


def serve_from_env(callbacks: list[Any]) -> list[Any]:
    """``callbacks`` with a ``Serve`` added when ``LUZWIDGET_SERVE`` is set and none is there."""
    value = os.environ.get(ENV, "").strip()
    if not value or any(isinstance(cb, Serve) for cb in callbacks):
        return callbacks
    host, _, port = value.rpartition(":")
    if not port.isdigit():
        raise ConfigError(f"{ENV}: expected a port or host:port, got {value!r}.")
    token = os.environ.get(f"{ENV}_TOKEN") or None
    return [*callbacks, Serve(port=int(port), host=host or "127.0.0.1", token=token)]


def _good_token(token: object) -> bool:
    """Text of 8 to 255 bytes in UTF-8 (zmq's PLAIN handshake carries at most 255)."""
    if not isinstance(token, str) or len(token) < 8:
        return False
    try:
        return len(token.encode()) <= 255
    except UnicodeEncodeError:
        return False
