// Playground: what a small model predicts across its input space, as TensorFlow Playground
// shows it. The kernel computes it only while the panel is open (luzwidget/widgets/
// playground_panel.py; closed, nothing is computed): a grid over the training data's range.
// 2-D inputs: the decision regions (each cell's colour is its predicted class, its shade the
// confidence), painted on a canvas under the plot's transparent area (the plotly bundle has
// no heatmap trace): a new grid repaints that canvas only, and plotly redraws only when the
// points, the axes or the theme change; regression: the fitted value. 1-D inputs: the fitted curve (or each class's probability)
// over the points. An MLP's hidden units: one small map per unit, with the signs and sizes
// of the weights into it, repainted in place (no new elements while training). Redrawn by the
// dashboard at most every 200 ms.
import { h, setText } from "../dom.js";
import { getPlotly } from "../plotly_slot.js";
import { onDemandPanel } from "./on_demand.js";

const SIZE = 300; // the main plot, px (square)
const CONFIG = { displayModeBar: false, responsive: false, scrollZoom: false, displaylogo: false, staticPlot: true };
const EXTRA = ["#2e7d32", "#8e24aa", "#c62828", "#00838f", "#6d4c41", "#546e7a"];

function parseColor(css, fallback) {
  const c = document.createElement("canvas").getContext("2d");
  if (!c) return fallback;
  c.fillStyle = fallback;
  c.fillStyle = css || fallback;
  const out = c.fillStyle;
  const hex = /^#([0-9a-f]{6})$/i.exec(out);
  if (hex) { const n = parseInt(hex[1], 16); return [n >> 16, (n >> 8) & 255, n & 255]; }
  const m = /^rgba?\(([^,]+),([^,]+),([^,)]+)/.exec(out);
  return m ? [+m[1], +m[2], +m[3]] : parseColor(fallback, "#000000");
}

const css = ([r, g, b]) => `rgb(${r}, ${g}, ${b})`;

/** The theme's colours: class 0 orange and class 1 blue, as TF Playground has them. */
function readTheme(el) {
  const cs = getComputedStyle(el);
  const v = (name, fallback) => parseColor(cs.getPropertyValue(name).trim(), fallback);
  const fg = v("--lw-fg", "#1f2328");
  const bg = v("--lw-bg", "#ffffff");
  return { fg, bg, muted: v("--lw-fg2", "#57606a"), classes: [v("--lw-valid", "#e65100"), v("--lw-train", "#1976d2"), ...EXTRA.map((c) => parseColor(c, c))] };
}

const mix = (a, b, t) => a.map((v, i) => Math.round(v + (b[i] - v) * t));

/** One cell's colour: `z` is class + confidence (0 at chance, 0.99 sure). */
export function cellColor(z, t) {
  const k = Math.floor(z);
  const color = t.classes[k % t.classes.length];
  return mix(t.bg, color, 0.12 + 0.6 * (z - k));
}

/** A signed value's colour (negative: class 0's, positive: class 1's), `v` in [-1, 1]. */
export function signedColor(v, t) {
  return mix(t.bg, v < 0 ? t.classes[0] : t.classes[1], Math.min(1, Math.abs(v)) * 0.85);
}

/** Paint rows of colours (row 0 at the bottom) onto a canvas of `w` x `hgt` cells. */
function paint(canvas, w, hgt, colorAt) {
  if (canvas.width !== w) canvas.width = w; // a new size makes a new backing store: only when it changes
  if (canvas.height !== hgt) canvas.height = hgt;
  const c = canvas.getContext("2d", { willReadFrequently: true }); // in memory, not a GPU layer each
  if (!c) return;
  const img = c.createImageData(w, hgt);
  for (let i = 0; i < hgt; i++) {
    for (let j = 0; j < w; j++) {
      const [r, g, b] = colorAt(i, j);
      const o = ((hgt - 1 - i) * w + j) * 4;
      img.data[o] = r; img.data[o + 1] = g; img.data[o + 2] = b; img.data[o + 3] = 255;
    }
  }
  c.putImageData(img, 0, 0);
}

/** A 1-D unit: its output along x as a line (zero dashed), on a 54 x 54 canvas. */
function curve(canvas, v, t) {
  const W = 54, H = 54, pad = 4;
  if (canvas.width !== W || canvas.height !== H) { canvas.width = W; canvas.height = H; }
  const c = canvas.getContext("2d", { willReadFrequently: true });
  if (!c) return;
  c.clearRect(0, 0, W, H);
  const y = (val) => H / 2 - (val / 99) * (H / 2 - pad);
  c.strokeStyle = css(mix(t.bg, t.fg, 0.3));
  c.setLineDash([2, 2]);
  c.beginPath(); c.moveTo(0, H / 2); c.lineTo(W, H / 2); c.stroke();
  c.setLineDash([]);
  c.strokeStyle = css(t.classes[1]);
  c.lineWidth = 1.5;
  c.beginPath();
  v.forEach((val, j) => { const x = (j / Math.max(1, v.length - 1)) * W; if (j) c.lineTo(x, y(val)); else c.moveTo(x, y(val)); });
  c.stroke();
}

const MARGIN = { l: 40, r: 8, t: 8, b: 34 }; // the plot's margins: the regions fill the rest

/** Paint the grid onto `canvas`, placed so each cell's centre sits on its grid point. */
function paintRegions(canvas, view, t) {
  const z = view.z, rows = z.length, cols = z[0].length;
  // classification: class * 100 + confidence in percent; regression: -999..999 of the largest
  if (view.kind === "classification") paint(canvas, cols, rows, (i, j) => cellColor(z[i][j] / 100, t));
  else paint(canvas, cols, rows, (i, j) => signedColor(z[i][j] / 999, t));
  // the axes run from the first grid point to the last: half a cell of each edge cell is outside
  const w = SIZE - MARGIN.l - MARGIN.r, hgt = SIZE - MARGIN.t - MARGIN.b;
  const cw = w / Math.max(1, cols - 1), ch = hgt / Math.max(1, rows - 1);
  const place = `position:absolute;left:${-cw / 2}px;top:${-ch / 2}px;width:${w + cw}px;height:${hgt + ch}px`;
  if (canvas.style.cssText !== place) canvas.style.cssText = place;
}

function pointTraces(view, points, t) {
  const traces = [];
  for (const [name, set] of [["train", points.train], ["valid", points.valid]]) {
    if (!set || !set.x) continue;
    const labels = set.label || [];
    const classes = view.kind === "classification" && labels.length;
    const color = classes ? labels.map((k) => css(t.classes[k % t.classes.length])) : css(name === "train" ? t.fg : t.muted);
    traces.push({
      type: "scatter", mode: "markers", name,
      x: set.x, y: view.dims.length === 2 ? set.y : labels,
      marker: name === "train"
        ? { size: 5, color, line: { width: 0.6, color: css(t.bg) } }
        : { size: 6, color: "rgba(0,0,0,0)", line: { width: 1.3, color } },
    });
  }
  return traces;
}

function curveTraces(view, t) {
  const curves = view.curves || [];
  return curves.map((ys, k) => ({
    type: "scatter", mode: "lines", name: view.kind === "classification" ? `p(class ${curves.length === 1 ? 1 : k})` : "prediction",
    x: view.x, y: ys, line: { width: 2.5, color: css(view.kind === "classification" ? t.classes[(curves.length === 1 ? 1 : k) % t.classes.length] : t.classes[1]) },
  }));
}

function layout(view, t) {
  const two = view.dims.length === 2;
  const axis = { gridcolor: css(mix(t.bg, t.fg, 0.1)), showgrid: !two, zeroline: false, tickfont: { size: 10 }, automargin: false, ticklabeloverflow: "allow" };
  const x = view.x;
  return {
    width: SIZE, height: SIZE, autosize: false,
    margin: MARGIN,
    paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
    font: { family: "system-ui, sans-serif", size: 11, color: css(t.fg) },
    showlegend: false, hovermode: false,
    xaxis: { ...axis, range: [x[0], x[x.length - 1]], title: { text: `x${view.dims[0]}`, font: { size: 10 } } },
    yaxis: two
      ? { ...axis, range: [view.y[0], view.y[view.y.length - 1]], title: { text: `x${view.dims[1]}`, font: { size: 10 } } }
      : { ...axis, title: { text: view.kind === "classification" ? "probability / label" : "y", font: { size: 10 } } },
    uirevision: "lw-playground",
  };
}

/** One hidden unit: its map, and a strip of its incoming weights (colour: sign, width: size). */
function unitFigure(n) {
  const canvas = h("canvas", { class: "lw-play-unit-map" });
  const strip = h("div", { class: "lw-play-weights" }, ...Array.from({ length: n }, () => h("span")));
  return { el: h("figure", { class: "lw-play-unit" }, canvas, strip), canvas, strip, weights: [] };
}

/** Repaint a unit in place: its map and its weights (the title is written when hovered). */
function paintUnit(fig, unit, weights, two, t) {
  if (two) paint(fig.canvas, unit.v[0].length, unit.v.length, (i, j) => signedColor(unit.v[i][j] / 99, t));
  else curve(fig.canvas, unit.v, t);
  const top = Math.max(1e-12, ...weights.map(Math.abs));
  weights.forEach((w, k) => {
    const span = fig.strip.children[k];
    if (span) span.style.cssText = `width:${Math.max(1, Math.round((Math.abs(w) / top) * 8))}px;background:${css(signedColor(w < 0 ? -1 : 1, t))}`;
  });
  fig.weights = weights;
}

/**
 * @param {HTMLElement} root
 * @param {import("../protocol.js").Store} store
 * @param {*} model  The widget model (for plotly.js).
 * @param {*} host
 * @returns {import("../protocol.js").Part}
 */
export function mountPlayground(root, store, model, host) {
  const plot = h("div", { class: "lw-play-plot" });
  const regions = h("canvas", { class: "lw-play-regions" });
  const area = h("div", { class: "lw-play-area", style: `left:${MARGIN.l}px;top:${MARGIN.t}px;right:${MARGIN.r}px;bottom:${MARGIN.b}px` }, regions);
  const units = h("div", { class: "lw-play-units" });
  const note = h("div", { class: "lw-play-note" });
  const panel = onDemandPanel(root, store, "playground", "Playground", "lw-playground",
    h("div", { class: "lw-play-body" }, note, h("div", { class: "lw-play-row" }, h("div", { class: "lw-play-frame" }, area, plot), units)));
  units.addEventListener("pointerover", (event) => { // a strip's title: only when looked at
    const strip = event.target.closest && event.target.closest(".lw-play-weights");
    const fig = strip && figs.find((f) => f.strip === strip);
    if (fig) strip.title = `weights in: ${fig.weights.map((w) => w.toFixed(2)).join(", ")}`;
  });
  let Plotly = null;
  let drawn = null;
  let points = { train: null, valid: null };
  let pending = null;
  let plotKey = ""; // what plotly draws: redrawn only when it changes
  let unitsKey = "";
  let figs = [];
  let theme = null;
  getPlotly(model, host).then((p) => { Plotly = p; if (pending) draw(pending, true); });

  function draw(part, force = false) {
    if ("train" in part) { points = { train: part.train, valid: part.valid }; plotKey = ""; }
    const view = part.view;
    setText(note, part.note || (view ? legendText(view) : ""));
    if (!view) { units.replaceChildren(); figs = []; unitsKey = ""; regions.hidden = true; return; }
    if (!Plotly) { pending = part; return; }
    pending = null;
    if (force || !theme) theme = readTheme(root); // the colours, read again when the theme changes
    const t = theme;
    const two = view.dims.length === 2;
    const x = view.x, y = view.y || [];
    const key = JSON.stringify([view.dims, view.kind, x[0], x[x.length - 1], y[0], y[y.length - 1], t.fg, t.bg, two ? 0 : view.curves]);
    if (force || key !== plotKey) {
      const data = two ? pointTraces(view, points, t) : [...pointTraces(view, points, t), ...curveTraces(view, t)];
      Plotly.react(plot, data, layout(view, t), CONFIG);
      plotKey = key;
    }
    regions.hidden = !two;
    if (two) paintRegions(regions, view, t);
    plot.dataset.z = view.z ? String(view.z.length) : "";
    const layers = view.units || [];
    const shape = JSON.stringify([two, layers.map((l) => [l.name, l.units, l.maps.length, (l.weights[0] || []).length])]);
    if (shape !== unitsKey) { // the structure changed: new elements, once
      figs = [];
      units.replaceChildren(...layers.map((layer, i) => h("div", { class: "lw-play-layer", title: `the output of module ${layer.name}` },
        h("div", { class: "lw-play-layer-title", text: `hidden layer ${i + 1}: ${layer.maps.length < layer.units ? `${layer.maps.length} of ${layer.units}` : layer.units} units` }),
        h("div", { class: "lw-play-maps" }, ...layer.maps.map((_, k) => { const f = unitFigure((layer.weights[k] || []).length); figs.push(f); return f.el; })))));
      unitsKey = shape;
    }
    let n = 0;
    layers.forEach((layer) => layer.maps.forEach((unit, k) => paintUnit(figs[n++], unit, layer.weights[k] || [], two, t)));
    setText(panel.hint, view.kind === "classification" ? `${view.classes} classes` : "regression");
  }

  return {
    update(state, changed) {
      const part = panel.part(state, changed);
      if (part && part !== drawn) { drawn = part; draw(part); }
      else if (changed.has("theme") && drawn && drawn.open) draw(drawn, true);
    },
    cleanup() { if (Plotly) Plotly.purge(plot); },
  };
}

function legendText(view) {
  const two = view.dims.length === 2;
  const what = view.kind === "classification"
    ? (two ? "colour: predicted class · shade: confidence" : "lines: predicted probability")
    : (two ? "colour: predicted value (sign)" : "line: the fitted function");
  const units = view.units && view.units.length ? " · under each unit: the weights into it (colour: sign, width: size)" : "";
  return `${what} · dots: training points · rings: validation points${units}`;
}
