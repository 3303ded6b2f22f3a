"""Where training runs: device choice, moving the model and optimizers, placing batches."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch

from luzwidget.exceptions import ConfigError

__all__ = ["Accelerator", "to_device"]


def to_device(value: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """Move every tensor in ``value`` (nested tuples, lists and dicts) to ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=non_blocking)
    kind = type(value)
    if kind is tuple or kind is list:
        return kind(to_device(v, device, non_blocking) for v in value)
    if isinstance(value, Mapping):
        moved = {k: to_device(v, device, non_blocking) for k, v in value.items()}
        try:
            return type(value)(moved)  # type: ignore[call-arg]  # the subclass's constructor
        except TypeError:  # e.g. defaultdict, whose constructor wants a factory first
            return moved
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # namedtuple
        return kind(*(to_device(v, device, non_blocking) for v in value))
    return value


class _DeviceLoader:
    """Wraps a loader so each batch arrives on the device; len() and attributes pass through."""

    def __init__(self, loader: Iterable[Any], device: torch.device) -> None:
        self.loader = loader
        self.device = device
        self.non_blocking = device.type == "cuda"

    def __iter__(self) -> Iterator[Any]:
        device, non_blocking = self.device, self.non_blocking
        for batch in self.loader:
            yield to_device(batch, device, non_blocking)

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]  # unsized: TypeError, as len(loader)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)

    def __repr__(self) -> str:
        return f"<{type(self.loader).__name__} on {self.device}>"


class Accelerator:
    """Choose a device and put the model, optimizers and batches on it (luz's ``accelerator``).

    Parameters
    ----------
    device_placement
        Move the model and each batch to the device. With False nothing is moved.
    cpu
        Use the CPU even when an accelerator is available.
    cuda_index
        Which CUDA device (default: the current one).

    Examples
    --------
    >>> Accelerator(cpu=True).device
    device(type='cpu')
    """

    def __init__(
        self, device_placement: bool = True, cpu: bool = False, cuda_index: int | None = None
    ) -> None:
        if cuda_index is not None and (not isinstance(cuda_index, int) or cuda_index < 0):
            raise ConfigError(f"cuda_index must be a non-negative int or None, got {cuda_index!r}.")
        self.device_placement = bool(device_placement)
        self.cpu = bool(cpu)
        self.cuda_index = cuda_index
        self.device = self._choose()

    def _choose(self) -> torch.device:
        if self.cpu:
            return torch.device("cpu")
        if torch.cuda.is_available():
            index = torch.cuda.current_device() if self.cuda_index is None else self.cuda_index
            if index >= torch.cuda.device_count():
                raise ConfigError(
                    f"cuda_index={index}, but only {torch.cuda.device_count()} CUDA device(s) "
                    "are visible."
                )
            return torch.device("cuda", index)
        if self.cuda_index is not None:
            raise ConfigError(f"cuda_index={self.cuda_index} was given, but CUDA is not available.")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """Move ``model`` to the device (in place; parameters keep their identity)."""
        if self.device_placement:
            model.to(self.device)
        return model

    def prepare_optimizers(self, optimizers: Mapping[str, torch.optim.Optimizer]) -> None:
        """Move optimizer state (e.g. Adam's moments) to where its parameters are."""
        if not self.device_placement:
            return
        for opt in optimizers.values():
            for state in opt.state.values():
                for key, value in state.items():
                    if isinstance(value, torch.Tensor) and key != "step":
                        state[key] = value.to(self.device)

    def prepare_loader(self, loader: Iterable[Any] | None) -> Iterable[Any] | None:
        """Wrap ``loader`` so batches arrive on the device (a no-op on the CPU)."""
        if loader is None or not self.device_placement or self.device.type == "cpu":
            return loader
        if isinstance(loader, _DeviceLoader):
            return (
                loader
                if loader.device == self.device
                else _DeviceLoader(loader.loader, self.device)
            )
        return _DeviceLoader(loader, self.device)

    def __repr__(self) -> str:
        return f"Accelerator(device={self.device}, device_placement={self.device_placement})"
