"""Fixtures for kernel tests: a fresh ipykernel per test, driven as a browser would."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kernel_harness import Kernel


@pytest.fixture
def kernel() -> Iterator[Kernel]:
    """A fresh kernel (cwd and ``PYTHONPATH`` at the repo root), shut down after the test."""
    with Kernel() as k:
        yield k
