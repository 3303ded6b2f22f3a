"""What every workload goes through: fit, step, layers(), snapshot/rewind, the dashboard's
messages, predict, evaluate, save/load.

A workload is the code a user writes (a model, data, ``setup()``); :class:`Workload` only
names those pieces, so each check below runs the very calls a user makes. Every run is
built after ``torch.manual_seed(seed)`` (models are built by a class or factory at each
fit), so two runs of one workload train bit-identically.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import luzwidget as lw
from luzwidget.widgets import Dashboard


@dataclass
class Workload:
    """``spec.run(data, epochs, **fit)``, and what to predict and evaluate on."""

    spec: lw.Setup
    data: Any
    fit: dict[str, Any] = field(default_factory=dict)
    epochs: int = 2
    seed: int = 0
    newdata: Any = None  # for predict(); default: data

    def run(self, epochs: int | None = None, **more: Any) -> lw.Run:
        torch.manual_seed(self.seed)
        kwargs = {"verbose": False, **self.fit, **more}
        return self.spec.run(self.data, self.epochs if epochs is None else epochs, **kwargs)

    def trained(self, **more: Any) -> lw.Run:
        run = self.run(**more)
        run.resume()
        assert run.state == "done", (run.state, run.error)
        return run


def weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def check_fit(w: Workload) -> lw.Fitted:
    """A blocking fit: finite train (and valid) losses every epoch."""
    torch.manual_seed(w.seed)
    fitted = w.spec.fit(w.data, w.epochs, verbose=False, **w.fit)
    for set_name, rows in fitted.records["metrics"].items():
        assert len(rows) == w.epochs, set_name
        assert all(math.isfinite(row["loss"]) for row in rows), (set_name, rows)
    return fitted


def check_step_and_layers(w: Workload) -> lw.Run:
    """Step one batch: the batch, prediction and loss are in the context; layers() has a
    row per parameter with the gradient of that batch."""
    run = w.run()
    run.layers()  # arms the update recording
    run.step("batch")
    ctx = run.ctx
    assert ctx.iter == 1
    assert ctx.loss is not None
    frame = run.layers()
    names = [n for n, p in ctx.model.named_parameters()]
    assert list(frame["name"]) == names
    return run


def check_rewind(w: Workload, reference: lw.Run) -> None:
    """Rewind to the end of epoch 1, and to inside it, then resume: bit-identical to a
    run never rewound (``reference``)."""
    run = w.trained()
    assert same(weights(run.ctx.model), weights(reference.ctx.model))
    run.rewind(epoch=1)
    run.resume()
    assert same(weights(run.ctx.model), weights(reference.ctx.model))
    assert run.ctx.records["metrics"] == reference.ctx.records["metrics"]
    run = w.run()
    run.step("batch", n=2)
    inside = run.snapshot("inside epoch 1")
    run.resume()
    run.rewind(inside)  # replayed from the start to batch 2
    assert (run.ctx.epoch, run.ctx.iter) == (1, 2)
    run.resume()
    assert same(weights(run.ctx.model), weights(reference.ctx.model))


def check_dashboard(w: Workload, fields: tuple[str, ...] = ("input", "target", "pred")) -> dict:
    """The dashboard, headless: its first message, and the one after a batch, are JSON and
    describe the batch's structure in the inspector."""
    run = w.run()
    dash = Dashboard(run)
    sent: list[dict[str, Any]] = []
    dash.send = lambda msg, buffers=None: sent.append(  # type: ignore[method-assign]
        json.loads(json.dumps(msg, allow_nan=False))
    )
    dash._handle_custom_msg({"cmd": "hello"}, [])
    first = dash.tick()
    assert first["type"] == "snapshot"
    run.step("batch")
    after = dash.tick()
    rows = {**first["inspector"]["rows"], **after["inspector"].get("rows", {})}
    for name in fields:
        assert rows[name], name
        assert rows[name] != "None", (name, rows[name])
    assert after["progress"]["iter"] == 1
    dash.close()
    return after


def check_save_load(fitted: lw.Fitted, tmp_path: Path, newdata: Any) -> Any:
    """save, then load with the setup: the same weights, and the same predictions."""
    path = lw.save(fitted, tmp_path / "model.pt")
    again = lw.load(path, setup=fitted.spec)
    assert same(weights(again.model), weights(fitted.model))
    before, after = fitted.predict(newdata), again.predict(newdata)
    assert _equal(before, after)
    return after


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def close(value: float, expected: float, rel: float = 1e-5) -> bool:
    return math.isclose(value, expected, rel_tol=rel, abs_tol=1e-7)


Check = Callable[[Workload], Any]
