"""Global test configuration: tests under tests/kernel and tests/browser get their marker."""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark by folder, so ``-m "not browser"`` holds even where a module forgets ``pytestmark``."""
    for item in items:
        folder = item.path.relative_to(TESTS).parts[0] if item.path.is_relative_to(TESTS) else ""
        if folder in ("kernel", "browser"):
            item.add_marker(folder)
