"""report.py: the one channel for luzwidget's own messages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import luzwidget
from luzwidget.core.report import report

PACKAGE = Path(luzwidget.__file__).parent


def test_a_message_is_one_prefixed_line_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    report("an edit could not be applied: lr must be > 0")
    out, err = capsys.readouterr()
    assert (out, err) == ("", "[luzwidget] an edit could not be applied: lr must be > 0\n")


def test_an_error_is_followed_by_its_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        raise KeyError("param_groups")
    except KeyError as exc:
        report("dashboard update failed", error=exc)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "[luzwidget] dashboard update failed"
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "KeyError: 'param_groups'"


def _sources() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.name != "report.py")


@pytest.mark.parametrize(
    "pattern",
    [r"\[luzwidget\]", r"^\s*import logging", r"file=sys\.stderr", r"sys\.stderr\.write"],
)
def test_no_module_but_report_writes_luzwidget_messages(pattern: str) -> None:
    """Every ``[luzwidget]`` line goes through report(); progress bars (tqdm on stderr,
    as luz prints them) are the progress callback's own output and are allowed there."""
    allowed = {"callbacks/progress.py"} if "stderr" in pattern else set()
    found = [
        str(p.relative_to(PACKAGE))
        for p in _sources()
        if re.search(pattern, p.read_text(), re.M) and str(p.relative_to(PACKAGE)) not in allowed
    ]
    assert found == []
