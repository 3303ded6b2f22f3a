"""torch.compile under luzwidget against a hand-written loop, in one run: graphs, graph
breaks and time.

For each way of training (a hand loop, ``fit()``, and ``run()`` stepped with the Layers
and activations views open part of the time) a fresh ``torch.compile``'d MLP is trained
for a few epochs with validation, after ``torch._dynamo.reset()``; dynamo's counters then
say how many frames it compiled, how many graphs it made and how many graph breaks it
met. luzwidget adds none of its own: its counts equal the hand loop's (one graph for
training, one for validation under ``no_grad``). The time of the first epoch (which
compiles) and the median of the others are printed beside the same loop uncompiled.

    python benchmarks/compile.py                     # backend inductor
    python benchmarks/compile.py --backend aot_eager
    python benchmarks/compile.py --caches            # with torch's on-disk compile caches
    python benchmarks/compile.py --first [--caches]  # one fit(), the first in a new process

Compile caches are off (``torch.compiler.config.force_disable_caches``), so every
measurement compiles cold, as a new process does the first time (``--caches``: on, as a
process does that compiles what an earlier one compiled already); a warm-up run of
the hand loop first (not shown) takes dynamo's one-time set-up out of the numbers.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch._dynamo
from torch import nn
from torch._dynamo.utils import counters

import luzwidget as lw

SIZES = (64, 256, 10)
BATCH, N_TRAIN, N_VALID, EPOCHS = 64, 1024, 256, 5


def make_model(compiled: str | None) -> nn.Module:
    torch.manual_seed(0)
    i, h, o = SIZES
    model = nn.Sequential(nn.Linear(i, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, o))
    return torch.compile(model, backend=compiled) if compiled else model


def make_data() -> tuple[Any, Any]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(N_TRAIN + N_VALID, SIZES[0], generator=g)
    y = torch.randint(0, SIZES[2], (N_TRAIN + N_VALID,), generator=g)
    return (x[:N_TRAIN], y[:N_TRAIN]), (x[N_TRAIN:], y[N_TRAIN:])


def hand(model: nn.Module, train: Any, valid: Any) -> list[float]:
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    crit = nn.CrossEntropyLoss()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(*train), batch_size=BATCH, shuffle=True, drop_last=True
    )
    ends, start = [], time.perf_counter()
    for _ in range(EPOCHS):
        model.train()
        for x, y in loader:
            opt.zero_grad()
            crit(model(x), y).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            for x, y in zip(valid[0].split(BATCH), valid[1].split(BATCH), strict=True):
                crit(model(x), y)
        ends.append(time.perf_counter() - start)
    return ends


class EpochClock(lw.Callback):
    """Seconds since fit began, at each epoch's end (after validation)."""

    def __init__(self) -> None:
        self.ends: list[float] = []
        self.start = 0.0

    def on_fit_begin(self, ctx: lw.Context) -> None:
        self.start = time.perf_counter()

    def on_epoch_end(self, ctx: lw.Context) -> None:
        self.ends.append(time.perf_counter() - self.start)


def spec(model: nn.Module) -> lw.Setup:
    return lw.setup(model, loss=nn.CrossEntropyLoss(), optimizer=torch.optim.SGD).set_opt_hparams(
        lr=0.05
    )


def fit(model: nn.Module, train: Any, valid: Any) -> list[float]:
    clock = EpochClock()
    opts = {"batch_size": BATCH}
    spec(model).fit(
        train, EPOCHS, valid_data=valid, callbacks=[clock], verbose=False, dataloader_options=opts
    )
    return clock.ends


def stepped(model: nn.Module, train: Any, valid: Any) -> list[float]:
    """run(): step a batch, look at layers() and activations() (hooks: the next batches run
    eagerly), step to the epoch's end, look at layers() and train to the end (no hooks; the
    update tracker armed by that call copies the weights each step, compiled or not)."""
    clock = EpochClock()
    opts = {"batch_size": BATCH}
    run = spec(model).run(
        train, EPOCHS, valid_data=valid, callbacks=[clock], verbose=False, dataloader_options=opts
    )
    run.step("batch")
    run.layers(), run.activations()
    run.step("batch")
    run.activations()
    run.step("epoch")
    run.layers()
    run.resume()
    return clock.ends


def measure(way: Callable[..., list[float]], compiled: str | None) -> dict[str, Any]:
    torch._dynamo.reset()
    counters.clear()
    train, valid = make_data()
    ends = way(make_model(compiled), train, valid)
    epochs = [b - a for a, b in zip([0.0, *ends], ends, strict=False)]
    return {
        "frames": counters["frames"]["total"],
        "graphs": counters["stats"]["unique_graphs"],
        "breaks": sum(counters["graph_break"].values()),
        "first": epochs[0],
        "later": statistics.median(epochs[1:]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="inductor")
    parser.add_argument("--caches", action="store_true", help="keep torch's compile caches on")
    parser.add_argument(
        "--first", action="store_true", help="only fit(), first in this process: no warm-up"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.compiler.config.force_disable_caches = not args.caches
    warnings.filterwarnings("ignore", "dynamo_pgo force disabled")
    if args.first:  # what a user's first compiled fit() in a new process costs
        r = measure(fit, None if args.backend == "none" else args.backend)
        print(
            f"fit(), backend {args.backend}: epoch 1 {r['first']:.2f} s, later {r['later']:.4f} s"
        )
        return
    measure(hand, args.backend)  # warm-up: dynamo's and the backend's one-time set-up
    batches = f"{N_TRAIN // BATCH} train + {N_VALID // BATCH} valid batches"
    print(f"torch {torch.__version__}, {args.backend}, MLP {SIZES}, {batches}, {EPOCHS} epochs")
    head = f"{'':26} {'frames':>6} {'graphs':>6} {'breaks':>6} {'epoch 1 s':>9} {'later s':>8}"
    print(head)
    rows = {}
    for name, way in (("hand loop", hand), ("fit()", fit), ("run() stepped + views", stepped)):
        for compiled in (args.backend, None):
            label = f"{name}{'' if compiled else ' (eager)'}"
            r = rows[label] = measure(way, compiled)
            print(
                f"{label:26} {r['frames']:6} {r['graphs']:6} {r['breaks']:6} "
                f"{r['first']:9.3f} {r['later']:8.4f}"
            )
    same = all(
        rows[f"{n}"][k] == rows["hand loop"][k]
        for n in ("fit()", "run() stepped + views")
        for k in ("frames", "graphs", "breaks")
    )
    print(f"luzwidget's frames, graphs and graph breaks equal the hand loop's: {same}")
    compile_s = rows["fit()"]["first"] - rows["fit() (eager)"]["first"]
    print(f"compile cost in fit()'s first epoch: {compile_s:.2f} s")


if __name__ == "__main__":
    main()
