"""Colour contrast of the dashboard in JupyterLab Light and Dark (WCAG 2.1 AA).

Text in a state colour (``--lw-*-text`` in js/src/dashboard.css) needs 4.5:1 on every
background the dashboard uses in that theme (including the 14% tints of the state badges);
plot lines need 3:1 on the plot background. The theme values are JupyterLab 4's own
(theme-light-extension and theme-dark-extension).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from luzwidget.core.limits import SET_COLORS

CSS = (Path(__file__).resolve().parents[2] / "js" / "src" / "dashboard.css").read_text()

# --jp-layout-color0..2 (the dashboard's --lw-bg, --lw-bg2, --lw-bg3) and the state colours.
LIGHT = {
    "bg": ["#ffffff", "#ffffff", "#eeeeee"],
    "ok": "#388e3c", "warn": "#f57c00", "err": "#d32f2f", "accent": "#1976d2",
    "train": "#1976d2", "valid": "#e65100",  # --jp-brand-color1, --jp-warn-color0
}  # fmt: skip
DARK = {
    "bg": ["#111111", "#212121", "#424242"],
    "ok": "#4caf50", "warn": "#ff9800", "err": "#f44336", "accent": "#2196f3",
    "train": "#2196f3", "valid": "#f57c00",
}  # fmt: skip
STATES = ("ok", "warn", "err", "accent", "train", "valid")


def _rgb(color: str) -> tuple[float, float, float]:
    h = color.lstrip("#")
    return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16))


def _luminance(rgb: tuple[float, float, float]) -> float:
    def lin(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    """WCAG contrast ratio."""
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def _over(color: str, bg: str, alpha: float) -> tuple[float, float, float]:
    c, b = _rgb(color), _rgb(bg)
    return tuple(alpha * x + (1 - alpha) * y for x, y in zip(c, b, strict=True))  # type: ignore[return-value]


def _text_vars(block: str) -> dict[str, str]:
    return dict(re.findall(r"--lw-(\w+)-text: (#[0-9a-f]{6});", block))


def _blocks() -> dict[str, dict[str, str]]:
    light = CSS[CSS.index(".lw-dashboard {") :]
    light = light[: light.index("}")]
    dark = CSS[CSS.index('body[data-jp-theme-light="false"] .lw-dashboard') :]
    dark = dark[: dark.index("}")]
    return {"light": _text_vars(light), "dark": _text_vars(dark)}


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_text_in_a_state_colour_is_aa_on_every_background(theme: str) -> None:
    values = LIGHT if theme == "light" else DARK
    text = _blocks()[theme]
    assert set(text) == set(STATES), text
    for state in STATES:
        # Any of the theme's backgrounds; the badge's 14% tint sits on the dashboard's own.
        backgrounds = [_rgb(bg) for bg in values["bg"]]
        for back in [*backgrounds, _over(values[state], values["bg"][0], 0.14)]:
            ratio = contrast(_rgb(text[state]), back)
            assert ratio >= 4.5, f"{theme}: --lw-{state}-text on {back}: {ratio:.2f}"


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_plot_lines_have_3_to_1_on_the_plot_background(theme: str) -> None:
    values = LIGHT if theme == "light" else DARK
    for set_name in ("train", "valid"):
        ratio = contrast(_rgb(values[set_name]), _rgb(values["bg"][0]))
        assert ratio >= 3.0, f"{theme}: {set_name} line: {ratio:.2f}"


def test_the_default_set_colours_have_3_to_1_on_white() -> None:
    for set_name, color in SET_COLORS.items():
        assert contrast(_rgb(color), _rgb("#ffffff")) >= 3.0, set_name


def test_the_raw_loss_line_at_the_old_fixed_opacity_was_invisible_in_dark() -> None:
    # Why plots.js picks the raw line's opacity (lineAlpha) instead of a fixed 0.35.
    faint = _over(DARK["train"], DARK["bg"][0], 0.35)
    assert contrast(faint, _rgb(DARK["bg"][0])) < 3.0
    assert "opacity: lineAlpha(" in _plots_js()
    assert "target = 3" in _plots_js("colors.js")  # (plots.js imports it from there)


def _plots_js(name: str = "plots.js") -> str:
    return (Path(__file__).resolve().parents[2] / "js" / "src" / "parts" / name).read_text()
