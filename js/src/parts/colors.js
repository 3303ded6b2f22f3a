// Colours for the plots (plots.js): CSS colours made plain for plotly, alpha, WCAG contrast.

// plotly parses only plain colours: let a canvas normalise whatever CSS gives us.
export function plainColor(css, fallback) {
  const ctx = document.createElement("canvas").getContext("2d");
  if (!ctx || !css) return fallback;
  ctx.fillStyle = fallback;
  ctx.fillStyle = css;
  const out = ctx.fillStyle;
  return /^(#|rgb)/.test(out) ? out : fallback;
}

export function withAlpha(color, alpha) {
  const hex = /^#([0-9a-f]{6})$/i.exec(color);
  if (hex) {
    const n = parseInt(hex[1], 16);
    return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
  }
  const rgb = /^rgba?\(([^,]+),([^,]+),([^,)]+)/.exec(color);
  return rgb ? `rgba(${rgb[1]},${rgb[2]},${rgb[3]}, ${alpha})` : color;
}

function rgbOf(color) {
  const hex = /^#([0-9a-f]{6})$/i.exec(color);
  if (hex) { const n = parseInt(hex[1], 16); return [n >> 16, (n >> 8) & 255, n & 255]; }
  const m = /^rgba?\(([^,]+),([^,]+),([^,)]+)/.exec(color);
  return m ? [+m[1], +m[2], +m[3]] : null;
}

function luminance([r, g, b]) {
  const lin = (c) => { c /= 255; return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
  return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
}

/** WCAG contrast ratio of two rgb triples. */
export function contrast(a, b) {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

/**
 * The least opacity (from `min`, in steps of 0.05) at which `color` drawn over `bg` has a
 * contrast of at least `target` (WCAG's 3:1 for graphics): the faint raw per-batch line
 * stays visible in dark and light themes alike.
 */
export function lineAlpha(color, bg, min = 0.35, target = 3) {
  const c = rgbOf(color), b = rgbOf(bg);
  if (!c || !b) return 1;
  for (let a = min; a < 1; a += 0.05) {
    if (contrast(c.map((v, i) => a * v + (1 - a) * b[i]), b) >= target) return Math.round(a * 100) / 100;
  }
  return 1;
}
