"""What a small model has learnt across its input space: its predictions on a grid.

For a model whose inputs have one or two features (or two features the user names, the
others held at their mean over the training points), :func:`playground_view` evaluates
the model on a grid over the training data's range (plus a margin): for classification the
predicted class and its confidence in each cell, for regression the fitted function; for
an ``nn.Sequential`` of ``Linear`` layers and activations, also each hidden unit's output
over the same grid (the first :data:`MAX_LAYERS` hidden layers, :data:`MAX_UNITS` units
each), with the signs and sizes of the weights into each shown unit.

The model is evaluated under ``torch.no_grad()``, in eval mode (each module's mode put back
after), on its own device, without drawing random numbers and without luzwidget's own
forward hooks (``run.activations()`` keeps showing the training batch): a run's training is
the same with the view computed or not. :class:`PlaygroundTracker` computes it on the driving
thread at the end of a batch when asked (:meth:`PlaygroundTracker.request`), as
:class:`~luzwidget.insight.layers.LayerTracker` does for the Layers panel; nothing is in
the run while nobody asks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import Subset, TensorDataset

from luzwidget.core.callback import is_run_bound
from luzwidget.core.compiled import original
from luzwidget.core.exceptions import ConfigError
from luzwidget.insight.trackers import Armed

if TYPE_CHECKING:
    from luzwidget.core.context import Context

__all__ = [
    "GRID",
    "MAX_POINTS",
    "MAX_UNITS",
    "PlaygroundTracker",
    "check_dims",
    "data_points",
    "playground_view",
]

GRID = 60
"""Cells per side of the 2-D grid (the 1-D grid has :data:`GRID_1D` points)."""
GRID_1D = 200
UNIT_GRID = 20
"""Cells per side of each hidden unit's map."""
MAX_UNITS = 8
"""Hidden units drawn per layer at most."""
MAX_LAYERS = 2
"""Hidden layers drawn at most (the first ones)."""
MAX_POINTS = 1000
"""Training points drawn at most (validation points: half as many)."""
MARGIN = 0.1
"""The grid extends the data's range by this fraction on each side."""


def check_dims(dims: Any) -> tuple[int, ...] | None:
    """``dims`` as a tuple of one or two distinct feature indices (None stays None)."""
    if dims is None:
        return None
    ok = isinstance(dims, tuple | list) and 1 <= len(dims) <= 2
    ok = ok and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in dims)
    if not ok or len(set(dims)) != len(dims):
        raise ConfigError(
            f"playground: dims must be one or two distinct input feature indices, e.g. "
            f"(0, 1), got {dims!r}."
        )
    return tuple(dims)


def data_points(data: Any, limit: int) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """Up to ``limit`` (inputs, targets) of a loader's dataset, evenly spaced (no random
    draw), on the CPU; None when the inputs are not a table ``(n, features)``."""
    dataset = getattr(getattr(data, "loader", data), "dataset", None)
    if dataset is None:
        return None
    try:
        n = len(dataset)
        if n == 0:
            return None
        picked = torch.linspace(0, n - 1, min(n, limit)).round().long().tolist()
        inputs, targets = _take(dataset, picked)
    except Exception:  # a dataset of dicts, strings, files...: no table to draw
        return None
    if inputs.dim() != 2 or not inputs.is_floating_point():
        return None
    return inputs, targets


def _take(dataset: Any, picked: list[int]) -> tuple[torch.Tensor, torch.Tensor | None]:
    while isinstance(dataset, Subset):
        picked = [int(dataset.indices[i]) for i in picked]
        dataset = dataset.dataset
    if isinstance(dataset, TensorDataset):
        index = torch.tensor(picked)
        x = dataset.tensors[0][index]
        y = dataset.tensors[1][index] if len(dataset.tensors) > 1 else None
        return x.detach().cpu(), None if y is None else y.detach().cpu()
    items = [dataset[i] for i in picked]
    if not isinstance(items[0], tuple | list):
        raise TypeError("not (input, target) pairs")
    x = torch.stack([torch.as_tensor(item[0]) for item in items])
    y = torch.stack([torch.as_tensor(item[1]) for item in items]) if len(items[0]) > 1 else None
    return x.detach().cpu(), y


def _axis(values: torch.Tensor, size: int) -> torch.Tensor:
    low, high = float(values.min()), float(values.max())
    pad = (high - low) * MARGIN or 1.0
    return torch.linspace(low - pad, high + pad, size)


def grid_inputs(points: torch.Tensor, dims: tuple[int, ...], size: int) -> tuple[Any, ...]:
    """``(inputs, axes)``: the model's inputs over the grid (row-major, the last axis
    fastest: cell ``(i, j)`` is ``x = axes[0][j]``, ``y = axes[1][i]``), and the axes."""
    axes = [_axis(points[:, d], size) for d in dims]
    base = points.float().mean(0)
    if len(dims) == 1:
        inputs = base.repeat(size, 1)
        inputs[:, dims[0]] = axes[0]
    else:
        gy, gx = torch.meshgrid(axes[1], axes[0], indexing="ij")
        inputs = base.repeat(size * size, 1)
        inputs[:, dims[0]] = gx.reshape(-1)
        inputs[:, dims[1]] = gy.reshape(-1)
    return inputs, axes


def hidden_layers(model: nn.Module) -> list[tuple[str, nn.Module, nn.Linear]]:
    """``(name, activation, the Linear before it)`` for the hidden layers of the model's
    first ``nn.Sequential`` (the model itself, or e.g. its ``self.net``) of ``Linear``
    layers and activations (modules without parameters); none without one."""
    seq = next(((n, m) for n, m in model.named_modules() if isinstance(m, nn.Sequential)), None)
    if seq is None:
        return []
    prefix = f"{seq[0]}." if seq[0] else ""
    found, before = [], None
    for name, child in seq[1].named_children():
        if isinstance(child, nn.Linear):
            before = child
        elif before is not None and not any(True for _ in child.parameters()):
            found.append((prefix + name, child, before))
            before = None
    return found


def _forward(model: nn.Module, inputs: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
    """The model's output on ``inputs``, and the shown hidden layers' outputs (read by
    forward hooks put in for this call only)."""
    hidden: dict[str, Any] = {}
    handles = [
        act.register_forward_hook(lambda m, a, out, name=name: hidden.__setitem__(name, out))
        for name, act, _ in hidden_layers(model)[:MAX_LAYERS]
    ]
    try:
        out = model(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return out, {k: v for k, v in hidden.items() if isinstance(v, torch.Tensor) and v.dim() == 2}


def _mute(model: nn.Module) -> list[tuple[nn.Module, dict[int, Any]]]:
    """Take luzwidget's own forward hooks (the activations view's, the NaN watch's) out of
    the model for the grid's forward pass: they record the training batches, not the grid."""
    muted = []
    for module in model.modules():
        own = {k: h for k, h in module._forward_hooks.items() if is_run_bound(h)}
        for k in own:
            del module._forward_hooks[k]
        if own:
            muted.append((module, own))
    return muted


def evaluate(model: nn.Module, inputs: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
    """``_forward`` on the model's device, no grad, eval mode; every mode put back."""
    model = original(model)
    param = next(model.parameters(), None)
    if param is not None:
        inputs = inputs.to(param.device, param.dtype if param.is_floating_point() else None)
    modes = [(m, m.training) for m in model.modules()]
    muted = _mute(model)
    model.eval()
    try:
        with torch.no_grad():
            out, hidden = _forward(model, inputs)
    finally:
        for module, mode in modes:
            module.training = mode
        for module, hooks in muted:
            module._forward_hooks.update(hooks)
    return out.detach().float().cpu(), {k: v.detach().float().cpu() for k, v in hidden.items()}


def _is_class(target: torch.Tensor | None) -> bool:
    return target is not None and not target.is_floating_point() and not target.is_complex()


def _round(t: torch.Tensor, digits: int = 3) -> Any:
    return torch.round(t.double(), decimals=digits).tolist()  # float64: short in JSON


def _shade(out: torch.Tensor, classes: bool) -> tuple[str, torch.Tensor, int]:
    """``(kind, value per grid point, number of classes)``. Classification: ``class +
    confidence`` (0 at chance, 0.99 when sure), so ``floor`` is the class."""
    if out.dim() == 1:
        out = out.unsqueeze(1)
    if out.shape[1] == 1 and not classes:
        return "regression", out[:, 0], 0
    probs = torch.sigmoid(out[:, 0]) if out.shape[1] == 1 else out.softmax(1)
    if out.shape[1] == 1:
        probs = torch.stack([1 - probs, probs], dim=1)
    n = probs.shape[1]
    conf, label = probs.max(1)
    sure = ((conf - 1 / n) / (1 - 1 / n)).clamp(0, 0.99)
    return "classification", label.float() + sure, n


def _scaled(t: torch.Tensor) -> dict[str, Any]:
    """A unit's map as whole numbers in [-99, 99] times ``scale`` (short in JSON)."""
    scale = float(t.abs().max()) / 99 or 1.0
    return {"scale": scale, "v": torch.round(t / scale).int().tolist()}


def _points(found: Any, dims: tuple[int, ...]) -> dict[str, Any] | None:
    if found is None:
        return None
    x, y = found
    out = {"x": _round(x[:, dims[0]])}
    if len(dims) == 2:
        out["y"] = _round(x[:, dims[1]])
    if y is not None:
        y = y.reshape(len(x), -1)[:, 0]
        out["label"] = y.tolist() if _is_class(y) else _round(y.float())
    return out


Points = Callable[[Any, int], "tuple[torch.Tensor, torch.Tensor | None] | None"]
"""How a view reads a loader's points (:func:`data_points`, or a cache of it)."""


def playground_view(
    ctx: Context,
    dims: tuple[int, ...] | None = None,
    size: int | None = None,
    points_of: Points = data_points,
) -> dict[str, Any] | None:
    """What the Playground panel draws (JSON-safe), or None when it cannot be drawn here
    (no model, no table of inputs, more than 2 features and no ``dims``).

    Raises
    ------
    ValueError
        If the model's output on the grid is not one row per grid point.
    Exception
        Whatever the model raises on the grid's inputs (a model that takes other inputs).
    """
    found = points_of(ctx.train_data, MAX_POINTS)
    if ctx.model is None or found is None:
        return None
    points, targets = found
    features = points.shape[1]
    dims = dims or ((0,) if features == 1 else (0, 1) if features == 2 else None)
    if dims is None or max(dims) >= features:
        return None
    size = size or (GRID_1D if len(dims) == 1 else GRID)
    inputs, axes = grid_inputs(points, dims, size)
    out, hidden = evaluate(ctx.model, inputs)
    if out.dim() not in (1, 2) or out.shape[0] != len(inputs):
        raise ValueError(f"its output on {len(inputs)} grid points has shape {tuple(out.shape)}")
    kind, value, n = _shade(out, _is_class(targets))
    view: dict[str, Any] = {"dims": list(dims), "kind": kind, "classes": n, "x": _round(axes[0])}
    if len(dims) == 2:
        view["y"] = _round(axes[1])
        # whole numbers times z_scale (short in JSON): classification in hundredths, so
        # z // 100 is the class and z % 100 the confidence in percent
        top = float(value.abs().max()) / 999 if kind == "regression" else 0.01
        view["z_scale"] = top or 1.0
        view["z"] = torch.round(value.reshape(size, size) / view["z_scale"]).int().tolist()
    elif kind == "classification":
        probs = out.sigmoid() if out.shape[1] == 1 else out.softmax(1)
        view["curves"] = _round(probs.T if out.shape[1] > 1 else probs.T[:1])
    else:
        view["curves"] = _round(out.reshape(size, -1).T[:4])
    view["units"] = _units(ctx.model, points, dims, hidden and len(dims))
    view["train"] = _points(points_of(ctx.train_data, MAX_POINTS), dims)
    view["valid"] = _points(points_of(ctx.valid_data, MAX_POINTS // 2), dims)
    return view


def _units(model: nn.Module, points: torch.Tensor, dims: tuple[int, ...], on: Any) -> list[Any]:
    """Each shown hidden unit's output over a coarser grid, and the weights into it."""
    if not on:
        return []
    size = UNIT_GRID if len(dims) == 2 else GRID_1D // 4
    inputs, axes = grid_inputs(points, dims, size)
    _, hidden = evaluate(model, inputs)
    layers = hidden_layers(original(model))[:MAX_LAYERS]
    out = []
    for name, _, linear in layers:
        if name not in hidden:  # not a table of units (e.g. a convolution's maps)
            continue
        acts = hidden[name][:, :MAX_UNITS]
        weight = linear.weight.detach().float().cpu()[:MAX_UNITS]
        shape = (size, size) if len(dims) == 2 else (size,)
        out.append(
            {
                "name": name,
                "units": int(hidden[name].shape[1]),
                "maps": [_scaled(acts[:, k].reshape(shape)) for k in range(acts.shape[1])],
                "weights": _round(weight[:, :MAX_UNITS], 3),
                "x": _round(axes[0]),
            }
        )
    return out


class PlaygroundTracker(Armed):
    """Computes :func:`playground_view` at the end of a requested training batch.

    Attributes
    ----------
    dims : tuple of int, optional
        The input features drawn (None: the first one or two).
    view : dict, optional
        The view computed at the end of the requested batch, until :meth:`take` n.
    computed : int
        How many views were computed (a closed panel's: none).
    error : str
        Why the last view could not be computed ("" when it was, or there was nothing to draw).
    """

    def __init__(self, run: Any) -> None:
        super().__init__(run)
        self.dims: tuple[int, ...] | None = None
        self.view: dict[str, Any] | None = None
        self.error = ""
        self.computed = 0
        self._requested = False
        self._points: dict[int, tuple[Any, Any]] = {}  # id(loader) -> (loader, its points)

    def request(self) -> None:
        """Compute the view at the end of the next training batch (the driving thread)."""
        self._requested = True

    def take(self) -> dict[str, Any] | None:
        """The view computed since the last call, or None."""
        view, self.view = self.view, None
        return view

    def read(self) -> dict[str, Any] | None:
        """The view now (call only while the run is not training in another thread), or
        None; :attr:`error` says why the model could not be evaluated on the grid."""
        self.computed += 1
        try:
            view = playground_view(self.run.ctx, self.dims, points_of=self._cached)
        except Exception as exc:  # a model that takes other inputs: say so, never fail the run
            self.error = f"{type(exc).__name__}: {exc}"
            return None
        self.error = ""
        return view

    def _cached(self, loader: Any, limit: int) -> Any:
        """:func:`data_points`, read once per loader (the points of a dataset stay)."""
        kept = self._points.get(id(loader))
        if kept is None or kept[0] is not loader:
            kept = self._points[id(loader)] = (loader, data_points(loader, limit))
        return kept[1]

    def on_train_batch_end(self, ctx: Context) -> None:
        """A requested view, computed here, where the weights hold still."""
        if self._requested:
            self._requested = False
            self.view = self.read()
