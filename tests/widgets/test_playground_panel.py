"""The Playground panel (widgets/playground_panel.py, insight/playground.py).

Pinned: the grid holds the model's own predictions on that grid (class and confidence,
or the fitted function); the hidden units' maps are their activations; the panel starts
open for 1 or 2 input features and closed otherwise; a closed panel puts nothing in the run;
training is bit-identical with the panel open; a free run's view is computed on request.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import luzwidget as lw
from luzwidget.insight.playground import (
    GRID,
    PlaygroundTracker,
    data_points,
    grid_inputs,
    playground_view,
)
from luzwidget.insight.trackers import tracker
from tests.widgets.test_dashboard import _shown


def _mlp(inputs: int = 2, out: int = 2, act: type[nn.Module] = nn.Tanh) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(inputs, 6), act(), nn.Linear(6, 10), act(), nn.Linear(10, out))


def _run(
    name: str = "spiral", model: nn.Module | None = None, loss: Any = None, **kw: Any
) -> lw.Run:
    x, y = lw.datasets.playground(name, n=120, seed=0)
    net = model if model is not None else _mlp()
    spec = lw.setup(net, loss=loss or nn.CrossEntropyLoss(), optimizer=torch.optim.SGD)
    options = {"batch_size": 16, **kw.pop("dataloader_options", {})}
    return spec.set_opt_hparams(lr=0.1).run(
        (x, y), epochs=2, valid_data=0.25, verbose=False, dataloader_options=options, **kw
    )


def _train_points(run: lw.Run) -> torch.Tensor:
    dataset = run.ctx.train_data.dataset
    index = torch.tensor(dataset.indices)
    return dataset.dataset.tensors[0][index]


def test_decision_regions_are_the_models_predictions() -> None:
    run = _run()
    run.step("batch")
    view = playground_view(run.ctx)
    assert view is not None
    assert view["kind"] == "classification"
    assert view["classes"] == 2
    xs, ys = torch.tensor(view["x"]), torch.tensor(view["y"])
    assert len(xs) == len(ys) == GRID
    points = _train_points(run)
    margin = 0.1 * (points[:, 0].max() - points[:, 0].min())
    assert abs(float(xs[0]) - float(points[:, 0].min() - margin)) < 1e-3
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1).float()
    with torch.no_grad():
        probs = run.ctx.model(grid).softmax(1)
    conf, label = probs.max(1)
    assert view["z_scale"] == 0.01
    z = torch.tensor(view["z"]).reshape(-1)
    assert torch.equal(z // 100, label)
    expected = 100 * label + (100 * ((conf - 0.5) / 0.5).clamp(0, 0.99)).round().long()
    assert (z - expected).abs().max() <= 1  # the grid's axes are sent rounded
    assert (
        view["train"]["label"]
        == run.ctx.train_data.dataset.dataset.tensors[1][
            torch.tensor(run.ctx.train_data.dataset.indices)
        ].tolist()
    )


def test_hidden_unit_maps_are_the_activations() -> None:
    run = _run()
    view = playground_view(run.ctx)
    assert view is not None
    units = view["units"]
    assert [(u["name"], u["units"], len(u["maps"])) for u in units] == [("1", 6, 6), ("3", 10, 8)]
    inputs, _ = grid_inputs(_train_points(run), (0, 1), 20)
    model = run.ctx.model
    with torch.no_grad():
        first = torch.tanh(model[0](inputs))
        second = torch.tanh(model[2](first))
    for layer, acts in zip(units, (first, second), strict=True):
        for k, unit in enumerate(layer["maps"]):
            got = torch.tensor(unit["v"], dtype=torch.float64).reshape(-1) * unit["scale"]
            assert torch.allclose(got, acts[:, k].double(), atol=unit["scale"] * 0.51)
    assert units[1]["weights"] == torch.round(model[2].weight[:8, :8].double(), decimals=3).tolist()


def test_one_dimensional_regression_curve() -> None:
    x, y = lw.datasets.playground("sine", n=80, seed=0)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(1, 8), nn.ReLU(), nn.Linear(8, 1))
    run = (
        lw.setup(net, loss=nn.MSELoss(), optimizer=torch.optim.SGD)
        .set_opt_hparams(lr=0.1)
        .run((x, y), epochs=1, verbose=False)
    )
    view = playground_view(run.ctx)
    assert view is not None
    assert view["kind"] == "regression"
    assert "z" not in view
    xs = torch.tensor(view["x"])
    assert len(xs) == 200
    inputs, axes = grid_inputs(x, (0,), 200)
    assert view["x"] == torch.round(axes[0].double(), decimals=3).tolist()
    with torch.no_grad():
        expected = net(inputs)[:, 0].double()
    assert torch.allclose(torch.tensor(view["curves"][0], dtype=torch.float64), expected, atol=6e-4)
    assert view["train"]["x"] == torch.round(x[:, 0].double(), decimals=3).tolist()
    assert view["train"]["label"] == torch.round(y[:, 0].double(), decimals=3).tolist()
    assert view["units"][0]["units"] == 8
    assert len(view["units"][0]["maps"][0]["v"]) == 50


def test_binary_logit_and_named_dims() -> None:
    x, y = lw.datasets.playground("xor", n=64, seed=0)
    wide = torch.cat([x, torch.ones(64, 2)], dim=1)  # 4 features: dims must be named
    net = _mlp(inputs=4, out=1)
    spec = lw.setup(net, loss=nn.BCEWithLogitsLoss(), optimizer=torch.optim.SGD)
    run = spec.set_opt_hparams(lr=0.1).run((wide, y.float().unsqueeze(1).long()), verbose=False)
    assert playground_view(run.ctx) is None
    view = playground_view(run.ctx, (1, 0))
    assert view is not None
    assert view["kind"] == "classification"
    assert view["classes"] == 2
    xs, ys = torch.tensor(view["x"]), torch.tensor(view["y"])
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    grid = torch.ones(GRID * GRID, 4)
    grid[:, 1], grid[:, 0] = gx.reshape(-1), gy.reshape(-1)
    with torch.no_grad():
        p1 = torch.sigmoid(net(grid)[:, 0])
    z = torch.tensor(view["z"]).reshape(-1)
    assert torch.equal(z // 100, (p1 > 0.5).long())


def test_panel_open_for_two_features_closed_for_more() -> None:
    dash, _ = _shown(_run())
    snap = dash.tick()
    assert snap["playground"]["open"] is True
    assert snap["playground"]["view"]["kind"] == "classification"
    assert len(snap["playground"]["train"]["x"]) == 90
    assert len(snap["playground"]["valid"]["x"]) == 30
    assert "PlaygroundTracker" in {type(cb).__name__ for cb in dash.run.ctx.callbacks}
    torch.manual_seed(0)
    wide = lw.setup(nn.Linear(5, 2), loss=nn.CrossEntropyLoss(), optimizer=torch.optim.SGD)
    run = wide.set_opt_hparams(lr=0.1).run(
        (torch.randn(32, 5), torch.randint(0, 2, (32,))), verbose=False
    )
    dash, _ = _shown(run)
    assert dash.tick()["playground"] == {"open": False}
    run.resume()
    assert "PlaygroundTracker" not in {type(cb).__name__ for cb in run.ctx.callbacks}
    assert tracker(run, PlaygroundTracker).computed == 0
    dash.playground(dims=(3, 1))
    part = dash.tick()["playground"]
    assert part["open"] is True
    assert part["view"]["dims"] == [3, 1]
    with pytest.raises(lw.ConfigError, match=r"dims must be one or two distinct"):
        dash.playground(dims=(1, 1))


def test_points_sent_once_then_only_in_snapshots() -> None:
    run = _run()
    dash, _ = _shown(run)
    assert "train" in dash.tick()["playground"]
    run.step("batch")
    part = dash.tick()["playground"]
    assert "view" in part
    assert "train" not in part
    dash._want_snapshot = True
    assert "train" in dash.tick()["playground"]


class _Asker(lw.Callback):
    """Asks for a view at every batch, as the open panel does at the publisher's rate."""

    def __init__(self, view: PlaygroundTracker) -> None:
        self.view = view

    def on_train_batch_begin(self, ctx: lw.Context) -> None:
        self.view.request()


def _weights(open_panel: bool) -> tuple[list[torch.Tensor], int]:
    model = _mlp(act=lambda: nn.Sequential(nn.Dropout(0.2), nn.ReLU()))  # type: ignore[arg-type,return-value]
    run = _run(model=model, dataloader_options={"shuffle": True})
    dash, _ = _shown(run, parts=None if open_panel else ["controls", "plots"])
    view = tracker(run, PlaygroundTracker)
    for _ in range(5):
        run.step("batch")
        dash.tick()
    if open_panel:
        run.add_callback(_Asker(view))
    run.resume()
    dash.tick()
    return [p.detach().clone() for p in model.parameters()], view.computed


def test_training_bit_identical_with_the_panel_open() -> None:
    opened, computed = _weights(True)
    closed, none = _weights(False)
    assert computed > 5
    assert none == 0
    assert all(torch.equal(a, b) for a, b in zip(opened, closed, strict=True))


def test_the_grid_leaves_the_activations_view_alone() -> None:
    run = _run()
    run.activations()  # armed: forward hooks record the next batch
    run.step("batch")
    seen = run.activations()
    assert playground_view(run.ctx) is not None
    assert run.activations().equals(seen)
    assert seen.loc[seen["name"] == "(model)", "shape"].item() == (16, 2)


class _Dicts(torch.utils.data.Dataset[Any]):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": torch.zeros(2), "labels": torch.tensor(0)}


def test_no_table_no_view() -> None:
    loader = torch.utils.data.DataLoader(_Dicts(), batch_size=4)
    assert data_points(loader, 10) is None
    assert data_points([(torch.zeros(2), 0)], 10) is None  # a list of batches: no dataset


class _Picky(nn.Module):
    """Trains on batches, refuses the grid (as a model taking other inputs does)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(x) > 100:
            raise ValueError("too many rows")
        return self.lin(x)


def test_a_model_that_refuses_the_grid_is_said_and_trains_on() -> None:
    run = _run(model=_Picky())
    dash, _ = _shown(run)
    part = dash.tick()["playground"]
    assert part["open"] is True  # two features, and the model takes two points
    assert part["view"] is None
    assert part["note"] == (
        "The model could not be evaluated on the grid of its inputs (ValueError: too many rows)."
    )
    run.add_callback(_Asker(tracker(run, PlaygroundTracker)))
    run.resume()  # the view fails at each requested batch end; the run does not
    assert run.state == "done"


def test_a_model_that_refuses_two_points_starts_closed() -> None:
    run = _run(model=nn.Sequential(nn.Linear(4, 2)))
    dash, _ = _shown(run)
    assert dash.tick()["playground"] == {"open": False}


class _Wrapped(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = _mlp(act=nn.ReLU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_an_mlp_inside_a_module_shows_its_units() -> None:
    run = _run(model=_Wrapped())
    view = playground_view(run.ctx)
    assert view is not None
    assert [(u["name"], u["units"]) for u in view["units"]] == [("net.1", 6), ("net.3", 10)]
    inputs, _ = grid_inputs(_train_points(run), (0, 1), 20)
    with torch.no_grad():
        first = torch.relu(run.ctx.model.net[0](inputs))
    got = torch.tensor(view["units"][0]["maps"][0]["v"], dtype=torch.float64).reshape(-1)
    scale = view["units"][0]["maps"][0]["scale"]
    assert torch.allclose(got * scale, first[:, 0].double(), atol=scale * 0.51)
