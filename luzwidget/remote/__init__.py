"""Steer a run in another process: the server a training process runs, and ``lw.attach``.

``luzwidget.callbacks.Serve`` (in the training process) serves the run it is part of;
:func:`attach` (in a notebook) returns an :class:`~luzwidget.remote.proxy.Attached` proxy
with the Run API and a dashboard driven remotely. The protocol is in
:mod:`luzwidget.remote.protocol`. pyzmq is imported only when a server or proxy is made.
"""

from __future__ import annotations

from luzwidget.remote.protocol import PROTOCOL, AttachError
from luzwidget.remote.proxy import Attached, attach

__all__ = ["PROTOCOL", "AttachError", "Attached", "attach"]
