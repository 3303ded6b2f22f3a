// Playground: what a small model predicts across its input space, as TensorFlow Playground
// shows it. The kernel computes it only while the panel is open (luzwidget/widgets/
// playground_panel.py; closed, nothing is computed): a grid over the training data's range.
// 2-D inputs: the decision regions (each cell's colour is its predicted class, its shade the
// confidence), drawn on a canvas and placed under the points as a plotly layout image (the
// plotly bundle has no heatmap trace; an image is also one node however fine the grid);
// regression: the fitted value. 1-D inputs: the fitted curve (or each class's probability)
// over the points. An MLP's hidden units: one small map per unit, with the signs and sizes
// of the weights into it. Redrawn by the dashboard at most every 200 ms.
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
  canvas.width = w;
  canvas.height = hgt;
  const c = canvas.getContext("2d");
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
  canvas.width = W;
  canvas.height = H;
  const c = canvas.getContext("2d");
  if (!c) return;
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

function regionImage(view, t) {
  const z = view.z, rows = z.length, cols = z[0].length;
  const canvas = document.createElement("canvas");
  // classification: class * 100 + confidence in percent; regression: -999..999 of the largest
  if (view.kind === "classification") paint(canvas, cols, rows, (i, j) => cellColor(z[i][j] / 100, t));
  else paint(canvas, cols, rows, (i, j) => signedColor(z[i][j] / 999, t));
  const [x, y] = [view.x, view.y];
  const dx = (x[x.length - 1] - x[0]) / (x.length - 1), dy = (y[y.length - 1] - y[0]) / (y.length - 1);
  return {
    source: canvas.toDataURL(), xref: "x", yref: "y", layer: "below", sizing: "stretch",
    x: x[0] - dx / 2, y: y[y.length - 1] + dy / 2, sizex: x[x.length - 1] - x[0] + dx, sizey: y[y.length - 1] - y[0] + dy,
  };
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
    margin: { l: 40, r: 8, t: 8, b: 34 },
    paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
    font: { family: "system-ui, sans-serif", size: 11, color: css(t.fg) },
    showlegend: false, hovermode: false,
    xaxis: { ...axis, range: [x[0], x[x.length - 1]], title: { text: `x${view.dims[0]}`, font: { size: 10 } } },
    yaxis: two
      ? { ...axis, range: [view.y[0], view.y[view.y.length - 1]], title: { text: `x${view.dims[1]}`, font: { size: 10 } } }
      : { ...axis, title: { text: view.kind === "classification" ? "probability / label" : "y", font: { size: 10 } } },
    images: two ? [regionImage(view, t)] : [],
    uirevision: "lw-playground",
  };
}

/** One hidden unit: its map, and a strip of its incoming weights (colour: sign, width: size). */
function unitFigure(unit, weights, two, t) {
  const v = unit.v;
  const canvas = h("canvas", { class: "lw-play-unit-map" });
  if (two) paint(canvas, v[0].length, v.length, (i, j) => signedColor(v[i][j] / 99, t));
  else curve(canvas, v, t);
  const top = Math.max(1e-12, ...weights.map(Math.abs));
  const strip = h("div", { class: "lw-play-weights", title: `weights in: ${weights.map((w) => w.toFixed(2)).join(", ")}` },
    ...weights.map((w) => h("span", { style: `width:${Math.max(1, Math.round((Math.abs(w) / top) * 8))}px;background:${css(signedColor(w < 0 ? -1 : 1, t))}` })));
  return h("figure", { class: "lw-play-unit" }, canvas, strip);
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
  const units = h("div", { class: "lw-play-units" });
  const note = h("div", { class: "lw-play-note" });
  const panel = onDemandPanel(root, store, "playground", "Playground", "lw-playground",
    h("div", { class: "lw-play-body" }, note, h("div", { class: "lw-play-row" }, plot, units)));
  let Plotly = null;
  let drawn = null;
  let points = { train: null, valid: null };
  let pending = null;
  getPlotly(model, host).then((p) => { Plotly = p; if (pending) draw(pending); });

  function draw(part) {
    if ("train" in part) points = { train: part.train, valid: part.valid };
    const view = part.view;
    setText(note, part.note || (view ? legendText(view) : ""));
    if (!view) { units.replaceChildren(); return; }
    if (!Plotly) { pending = part; return; }
    pending = null;
    const t = readTheme(root);
    const data = view.dims.length === 2 ? pointTraces(view, points, t) : [...pointTraces(view, points, t), ...curveTraces(view, t)];
    Plotly.react(plot, data, layout(view, t), CONFIG);
    plot.dataset.z = view.z ? String(view.z.length) : "";
    const two = view.dims.length === 2;
    units.replaceChildren(...(view.units || []).map((layer, i) => h("div", { class: "lw-play-layer", title: `the output of module ${layer.name}` },
      h("div", { class: "lw-play-layer-title", text: `hidden layer ${i + 1}: ${layer.maps.length < layer.units ? `${layer.maps.length} of ${layer.units}` : layer.units} units` }),
      h("div", { class: "lw-play-maps" }, ...layer.maps.map((unit, k) => unitFigure(unit, layer.weights[k] || [], two, t))))));
    setText(panel.hint, view.kind === "classification" ? `${view.classes} classes` : "regression");
  }

  return {
    update(state, changed) {
      const part = panel.part(state, changed);
      if (part && part !== drawn) { drawn = part; draw(part); }
      else if (changed.has("theme") && drawn && drawn.open) draw(drawn);
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
