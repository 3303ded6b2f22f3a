"""What connects a ``Serve`` callback to its run: the composition root calls :func:`install`
for every ``Serve`` of a run it builds; the server starts at the fit's beginning."""

from __future__ import annotations

from typing import TYPE_CHECKING

from luzwidget.remote.server import ServeFeed, Server

if TYPE_CHECKING:
    from luzwidget.callbacks.serve import Serve
    from luzwidget.control.run import Run

__all__ = ["install"]


def install(run: Run, serve: Serve) -> None:
    """Let ``serve`` (a ``Serve`` callback of ``run``) serve ``run`` once its fit begins
    (rank 0 only); the composition root calls this for every ``Serve`` of a run."""

    def start() -> None:
        if serve.server is not None and serve.server.run is run:
            return
        if serve.server is not None:
            serve.server.close()  # a new fit of the same callback: serve that run
        feed = ServeFeed()
        serve.server = Server(
            run, serve.host, serve.port, serve.token, feed, wait_on_error=serve.wait_on_error
        )
        serve.started(serve.server.port, feed)

    serve.starter = start
