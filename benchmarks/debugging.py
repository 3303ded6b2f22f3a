"""What debugging backwards costs: the sentinel, what a run keeps to go back, and the time
of ``step_back()`` and ``find()``.

    python benchmarks/debugging.py            # full
    python benchmarks/debugging.py --quick    # fewer repetitions, smaller runs

1. **The sentinel**, on ``benchmarks/overhead.py``'s configurations: per-batch CPU µs of a
   hand loop and of blocking ``fit()`` with the sentinel off (``disable("all")``), with its
   default checks, and with the opt-in ``grad_explosion`` too; measured interleaved in one
   process, single-threaded (as ``overhead.py`` does), medians of the per-repetition
   ratios. Columns ``on/off`` and ``all/off``; the target for the default is <= 1.02.
2. **What a run keeps to go back** (the per-batch loss record, the epoch starts, the
   resume points its pauses make): ``run.start()`` with it against without, same configs.
3. **step_back() and find()**: wall times (``time.perf_counter``) for the digits MLP
   (64-128-10, Adam, batches of 64) and a ~10M-parameter MLP (2000-2500-2000, Adam): the
   first step back from inside an epoch (replayed from the epoch's start), the next ones
   (from the resume points the first kept), a step back by event, and ``find()`` of a NaN
   planted in a run that trained past it, from the loss record (``nonfinite_loss``) and
   from the snapshots and a replay (``nan``); with the batches each replayed, and what a
   resume point holds. The load average is printed first: on a shared machine compare
   ratios, not times. Printed, never asserted.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

import overhead
import snapshots

import luzwidget as lw
from luzwidget.travel.state import travel_of

# -- 1 and 2: per-batch costs ---------------------------------------------------------------


def _fit_with(setting: Callable[[lw.Run], None]) -> Callable[..., float]:
    def timed(cfg: overhead.Config, data: Any, epochs: int) -> float:
        run = overhead.make_run(cfg, data, epochs)
        setting(run)
        start = time.process_time()
        run.resume()
        return time.process_time() - start

    return timed


def _start_with(keep: bool) -> Callable[..., float]:
    def timed(cfg: overhead.Config, data: Any, epochs: int) -> float:
        run = overhead.make_run(cfg, data, epochs)
        run.breakpoints.sentinel.disable("all")
        if not keep:
            backwards = travel_of(run).backwards
            assert backwards is not None
            backwards.detach()
        start = time.process_time()
        run.start()
        run.wait()
        return time.process_time() - start

    return timed


def _off(run: lw.Run) -> None:
    run.breakpoints.sentinel.disable("all")


def _all(run: lw.Run) -> None:
    run.breakpoints.sentinel.enable("grad_explosion")


def costs(reps: int, epochs: int) -> None:
    runners = {
        "hand": overhead.hand,
        "off": _fit_with(_off),
        "on": _fit_with(lambda run: None),
        "all": _fit_with(_all),
    }
    print("1. the sentinel: per-batch CPU µs of fit(); ratios to the sentinel off")
    print(f"{'config':42} {'hand':>7} {'off':>7} {'on':>7} {'all':>7} {'on/off':>7} {'all/off':>7}")
    for cfg in overhead.CONFIGS:
        us, ratio = overhead.measure(cfg, runners, reps, epochs)
        print(
            f"{cfg.name:42} {us['hand']:7.1f} {us['off']:7.1f} {us['on']:7.1f} {us['all']:7.1f}"
            f" {ratio['on'] / ratio['off']:7.3f} {ratio['all'] / ratio['off']:7.3f}"
        )
    per_batch = _sentinel_per_batch()
    print(f"   the default checks' own work per training batch: {per_batch:.2f} µs (timeit)")
    runners = {"hand": overhead.hand, "without": _start_with(False), "with": _start_with(True)}
    print("\n2. what a run keeps to go back: per-batch CPU µs of run.start()")
    print(f"{'config':42} {'without':>8} {'with':>8} {'with/without':>12}")
    for cfg in overhead.CONFIGS:
        us, ratio = overhead.measure(cfg, runners, reps, epochs)
        print(
            f"{cfg.name:42} {us['without']:8.1f} {us['with']:8.1f}"
            f" {ratio['with'] / ratio['without']:12.3f}"
        )


def _sentinel_per_batch(n: int = 100_000) -> float:
    """µs a training batch spends in the sentinel's per-batch methods (its dispatch
    included: one bound-method call each), timed on a paused run past its first batch."""
    import timeit

    cfg = overhead.CONFIGS[0]
    run = overhead.make_run(cfg, overhead.make_data(cfg), 1)
    run.step("batch", n=3)
    run.step(lw.Event.on_train_batch_before_backward)
    sentinel, ctx = run.breakpoints.sentinel, run.ctx
    methods = (sentinel.on_train_batch_after_pred, sentinel.on_train_batch_before_backward)

    def both() -> None:
        for method in methods:
            method(ctx)

    return timeit.timeit(both, number=n) / n * 1e6


# -- 3: step_back and find ------------------------------------------------------------------


class PlantedNaN(nn.Module):
    """``model``, whose ``at``-th training forward returns NaN (a buffer counts them)."""

    def __init__(self, model: nn.Module, at: int) -> None:
        super().__init__()
        self.model, self.at = model, at
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        if self.training:
            self.seen += 1
            if int(self.seen) == self.at:
                out = out * math.nan
        return out


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    began = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - began


def _line(what: str, seconds: float, detail: str) -> None:
    print(f"   {what:24} {seconds * 1e3:8.1f} ms  ({detail})")


def _found(run: lw.Run, condition: str) -> tuple[Any, float]:
    found, seconds = _timed(lambda: run.find(condition))
    assert found is not None, condition
    return found, seconds


def timings(
    name: str,
    model: Callable[[], nn.Module],
    data: Any,
    nan_at: int,
    budget: int | None = None,
    finds: bool = True,
) -> None:
    torch.manual_seed(0)
    run = snapshots.make_run(model(), data, 4)
    if budget is not None:
        run.snapshot_store.budget = budget
    per_epoch = len(run.ctx.train_data)
    run.step("batch", n=2 * per_epoch + per_epoch // 2)  # inside epoch 3
    first, s_first = _timed(run.step_back)
    cache = travel_of(run).backwards.cache  # type: ignore[union-attr]
    size = run.snapshots[-1].bytes / 2**20
    nexts = [_timed(run.step_back) for _ in range(4)]
    _, s_event = _timed(lambda: run.step_back("event", 5))
    print(f"\n3. {name}: {per_epoch} batches an epoch; a snapshot (or resume point) holds "
          f"{size:.1f} MiB; the resume points' budget: {cache.budget / 2**20:.0f} MiB")  # fmt: skip
    _line("step_back(), the first", s_first, f"{first.replayed} batches from {first.base}")
    for landing, seconds in nexts:
        _line("step_back(), the next", seconds, f"{landing.replayed} batches from {landing.base}")
    _line("step_back('event', 5)", s_event, "two replays: count the events, then land")
    if not finds:
        return
    for condition in ("nonfinite_loss", "nan"):  # each on a run of its own, trained past it
        torch.manual_seed(0)
        run = snapshots.make_run(PlantedNaN(model(), nan_at), data, nan_at // per_epoch + 2)
        if budget is not None:
            run.snapshot_store.budget = budget
        _, s_train = _timed(run.resume)
        found, seconds = _found(run, condition)
        assert found.batch == nan_at, found
        trained = f"a NaN at batch {nan_at} of {run.ctx.epoch * per_epoch}"
        _line(f"find({condition!r})", seconds, f"{found.replayed} batches replayed, from the "
              f"{found.how}; {trained}, trained in {s_train:.1f} s")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, smaller runs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    reps, epochs = (3, 1) if args.quick else (11, 2)
    print(f"torch {torch.__version__}, threads=1, reps={reps}, load average {os.getloadavg()}")
    costs(reps, epochs)

    def digits_mlp() -> nn.Module:
        return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))

    def big_mlp() -> nn.Module:
        return nn.Sequential(nn.Linear(2000, 2500), nn.ReLU(), nn.Linear(2500, 2000))

    timings("digits MLP 64-128-10", digits_mlp, snapshots.digits(), 1000 if args.quick else 4321)
    big = snapshots.big_data(256 if args.quick else 1024)
    timings("10M MLP 2000-2500-2000", big_mlp, big, 30 if args.quick else 40)
    timings("10M MLP, the store's budget at 2 GiB", big_mlp, big, 0, budget=2**31, finds=False)


if __name__ == "__main__":
    main()
