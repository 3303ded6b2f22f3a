"""What recording the layer history (``run.layer_history()``, the "Layers over time" panel)
costs a run, against a hand-written PyTorch loop, in one process.

Interleaved as in ``overhead.py`` (hand, fit, fit+history, ... rotated; CPU time, torch on
one thread; medians of per-repetition ratios to the hand loop):

- ``fit``: a blocking run nobody asked about: the tracker is not in the run (must be ~1.0x
  of a plain fit: nothing at all is done for the history);
- ``hist``: ``run.track_layers()``: a batch sampled every 0.5 s (the default), the rest pay
  a clock read;
- ``every``: ``run.track_layers(every_s=0)``: every batch sampled (hooks, weight copies,
  histograms, one host read per batch): the cost of stepping, per batch, as an upper bound.

    python benchmarks/history.py            # full
    python benchmarks/history.py --quick    # fewer repetitions
"""

from __future__ import annotations

import argparse
import time

import torch
from overhead import CONFIGS, Config, hand, make_run, measure

import luzwidget as lw


def _timed(run: lw.Run) -> float:
    start = time.process_time()
    run.resume()  # what fit() calls
    return time.process_time() - start


def fit(cfg: Config, data, epochs: int) -> float:
    """Blocking fit, nothing recorded."""
    return _timed(make_run(cfg, data, epochs))


def hist(cfg: Config, data, epochs: int) -> float:
    """The history recorded at its default rate."""
    run = make_run(cfg, data, epochs)
    run.track_layers()
    return _timed(run)


def every(cfg: Config, data, epochs: int) -> float:
    """Every batch sampled."""
    run = make_run(cfg, data, epochs)
    run.track_layers(every_s=0)
    return _timed(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    reps, epochs = (3, 1) if args.quick else (11, 2)
    runners = {"hand": hand, "fit": fit, "hist": hist, "every": every}
    print(f"torch {torch.__version__}, threads=1, reps={reps}, epochs={epochs}; per-batch CPU µs")
    print(
        f"{'config':42} {'hand':>7} {'fit':>7} {'fit/hand':>8} {'hist':>7} {'hist/fit':>8}"
        f" {'every':>8} {'every/fit':>9}"
    )
    for cfg in CONFIGS:
        us, ratio = measure(cfg, runners, reps, epochs)
        print(
            f"{cfg.name:42} {us['hand']:7.1f} {us['fit']:7.1f} {ratio['fit']:8.3f}"
            f" {us['hist']:7.1f} {ratio['hist'] / ratio['fit']:8.3f}"
            f" {us['every']:8.1f} {ratio['every'] / ratio['fit']:9.3f}"
        )


if __name__ == "__main__":
    main()
