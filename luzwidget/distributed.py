"""Several processes: what a script launched by ``torchrun`` (or any launcher) may call.

>>> from luzwidget.distributed import init_from_env
>>> world = init_from_env()        # RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT
>>> world.rank, world.size, world.device

``fit()`` and ``run()`` call it themselves under ``torchrun``; call it yourself to know the
rank before building anything. The machinery lives in :mod:`luzwidget.core.distributed`
and :mod:`luzwidget.parallel`.
"""

from __future__ import annotations

from luzwidget.core.distributed import World, init_from_env

__all__ = ["World", "init_from_env"]
