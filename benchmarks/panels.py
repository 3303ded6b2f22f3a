"""What the dashboard's Layers and Batch panels cost a free-running fit, in one run.

A digits-size MLP (64-32-10, cross-entropy, SGD, batch size 32, random data of the shape of
sklearn's digits) trains with ``run.start()`` while a dashboard publishes on this thread's
asyncio loop, as in a notebook (messages are built, then dropped instead of sent). Four
configurations are timed interleaved, each repetition rotating who goes first: no
dashboard, a dashboard with its panels closed, with the Layers panel open, with both the
Layers and the Batch panel open. The clock is the process's CPU time (both threads) and
torch runs single-threaded, so a busy machine disturbs the ratios less than wall-clock
time; still, measure on a quiet machine for final figures.

    python benchmarks/panels.py            # full
    python benchmarks/panels.py --quick    # fewer repetitions

Printed: the median per-batch CPU µs of each configuration and the medians, over
repetitions, of its ratios to "none" and to "closed" (pairs measured back to back; the
panels' own cost is the ratio to "closed", the publisher's is "closed" to "none").
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

import luzwidget as lw

N_ITEMS = 1792  # 56 batches of 32, as sklearn's 1797 digits
BATCH_SIZE = 32
CONFIGS: dict[str, tuple[str, ...] | None] = {
    "none": None,
    "closed": (),
    "layers": ("layers",),
    "both": ("layers", "batch"),
}


def make_run(data: tuple[torch.Tensor, torch.Tensor], epochs: int) -> lw.Run:
    """The model, optimizer and context, before the first batch (untimed)."""
    net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    spec = lw.setup(net, loss=nn.CrossEntropyLoss(), optimizer=torch.optim.SGD)
    return spec.set_opt_hparams(lr=0.05).run(
        data, epochs=epochs, verbose=False, dataloader_options={"batch_size": BATCH_SIZE}
    )


def timed(
    data: tuple[torch.Tensor, torch.Tensor], epochs: int, panels: tuple[str, ...] | None
) -> float:
    """CPU seconds of one ``run.start()`` to the end, with the dashboard as configured."""

    async def main() -> float:
        run = make_run(data, epochs)
        dash = None
        if panels is not None:
            dash = run.dashboard()
            dash.send = lambda msg, buffers=None: None  # no frontend: build, don't send
            dash._handle_custom_msg({"cmd": "hello"}, [])  # a view is there: publish
            for name in panels:
                dash.panel(name, True)
        start = time.process_time()
        run.start()
        await asyncio.get_running_loop().run_in_executor(None, run.wait)
        elapsed = time.process_time() - start
        if dash is not None:
            dash.close()
        return elapsed

    return asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    reps, epochs = (3, 20) if args.quick else (9, 40)
    data = (torch.randn(N_ITEMS, 64), torch.randint(0, 10, (N_ITEMS,)))
    n = epochs * N_ITEMS // BATCH_SIZE
    for panels in CONFIGS.values():  # warm-up
        timed(data, 2, panels)
    compare(list(CONFIGS), lambda name: timed(data, epochs, CONFIGS[name]), reps, n)


def compare(names: list[str], run_one: Callable[[str], float], reps: int, n: int) -> None:
    """Time each named configuration ``reps`` times, interleaved (a rotated order each round),
    and print the medians: µs per batch (``n`` batches a run) and the ratios to the runs
    named ``"none"`` and ``"closed"``."""
    times: dict[str, list[float]] = {k: [] for k in names}
    for rep in range(reps):
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            times[name].append(run_one(name) / n * 1e6)
    print(f"torch {torch.__version__}, threads=1, reps={reps}, {n} batches per run")
    print(f"{'dashboard':10} {'µs/batch':>9} {'/none':>7} {'/closed':>8}")
    for name in names:
        ratio = {
            base: statistics.median(a / b for a, b in zip(times[name], times[base], strict=True))
            for base in ("none", "closed")
        }
        us = statistics.median(times[name])
        print(f"{name:10} {us:9.1f} {ratio['none']:7.3f} {ratio['closed']:8.3f}")


if __name__ == "__main__":
    main()
