"""What the dashboard's Playground panel costs a free-running fit, in one run.

TF Playground's setting: the spiral (``lw.datasets.playground("spiral", n=1000)``), an MLP
2-16-16-2 with ReLU, Adam, batches of 10. The fit runs with ``run.start()`` while a dashboard
publishes on this thread's asyncio loop, as in a notebook (messages built, then dropped).
Three configurations, timed interleaved (each repetition rotating who goes first): no
dashboard, a dashboard with the Playground panel closed, with it open (its view computed on
the training thread at most every 0.5 s). The clock is the process's CPU time (both
threads), torch single-threaded; measure on a quiet machine for final figures.

    python benchmarks/playground.py            # full
    python benchmarks/playground.py --quick    # fewer repetitions

Printed: the time of one view (the 60x60 grid, the hidden units' maps, the points), and the
median per-batch CPU µs of each configuration with its ratios to "none" and to "closed".
"""

from __future__ import annotations

import argparse
import asyncio
import time

import torch
from panels import compare
from torch import nn

import luzwidget as lw
from luzwidget.insight.playground import playground_view

BATCH_SIZE = 10
CONFIGS = {"none": None, "closed": False, "open": True}


def make_run(data: tuple[torch.Tensor, torch.Tensor], epochs: int) -> lw.Run:
    """The model, optimizer and context, before the first batch (untimed)."""
    net = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))
    spec = lw.setup(net, loss=nn.CrossEntropyLoss(), optimizer=torch.optim.Adam)
    return spec.set_opt_hparams(lr=0.01).run(
        data, epochs=epochs, verbose=False, dataloader_options={"batch_size": BATCH_SIZE}
    )


def timed(data: tuple[torch.Tensor, torch.Tensor], epochs: int, open_: bool | None) -> float:
    """CPU seconds of one ``run.start()`` to the end, with the dashboard as configured."""

    async def main() -> float:
        run = make_run(data, epochs)
        dash = None
        if open_ is not None:
            dash = run.dashboard()
            dash.send = lambda msg, buffers=None: None  # no frontend: build, don't send
            dash._handle_custom_msg({"cmd": "hello"}, [])  # a view is there: publish
            dash.panel("playground", open_)
        start = time.process_time()
        run.start()
        await asyncio.get_running_loop().run_in_executor(None, run.wait)
        elapsed = time.process_time() - start
        if dash is not None:
            dash.close()
        return elapsed

    return asyncio.run(main())


def view_ms(data: tuple[torch.Tensor, torch.Tensor], n: int = 20) -> float:
    run = make_run(data, 1)
    playground_view(run.ctx)  # warm-up
    start = time.perf_counter()
    for _ in range(n):
        playground_view(run.ctx)
    return (time.perf_counter() - start) / n * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    reps, epochs = (3, 10) if args.quick else (7, 20)
    data = lw.datasets.playground("spiral", n=1000, seed=0)
    n = epochs * len(data[0]) // BATCH_SIZE
    print(f"one view: {view_ms(data):.1f} ms")
    for open_ in CONFIGS.values():  # warm-up
        timed(data, 1, open_)
    compare(list(CONFIGS), lambda name: timed(data, epochs, CONFIGS[name]), reps, n)


if __name__ == "__main__":
    main()
