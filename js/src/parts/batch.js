// Batch: the current batch's inputs drawn as small images (a uint8 array, base64, one
// canvas per item), the target and prediction under each (wrong ones marked), each
// sample's index in the dataset and, at a pause, its loss (sorted by loss, highest first,
// unless "batch order" is chosen), and the confusion matrix of the last epoch's training
// and validation passes. Computed by the kernel only while the panel is open
// ({cmd: "panel", name: "batch", open}).
import { h, setText } from "../dom.js";
import { onDemandPanel } from "./on_demand.js";

const CELL = 56; // CSS pixels per image side, at most

/** 3 significant digits, as a caption has room for. @param {number} v */
export function shortNumber(v) {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e4) ? v.toExponential(2) : String(Number(v.toPrecision(3)));
}

/**
 * The order items are drawn in: by loss, highest first (items without one last), or as
 * they come. @param {Array<{loss?: number|null}>} items @param {boolean} byLoss
 * @returns {number[]}
 */
export function drawOrder(items, byLoss) {
  const order = items.map((_, k) => k);
  if (!byLoss) return order;
  const key = (k) => (typeof items[k].loss === "number" ? items[k].loss : -Infinity);
  return order.sort((a, b) => key(b) - key(a) || a - b);
}

/** @param {string} b64 @returns {Uint8Array} */
export function decode(b64) {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Draw item `k` of `img` ({n, c, h, w}; CHW uint8 per item) on `canvas` (resized if need be). */
function paintItem(canvas, img, bytes, k) {
  const { c, h: height, w: width } = img;
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
    const scale = Math.max(1, Math.floor(CELL / Math.max(width, height)));
    canvas.style.width = `${width * scale}px`;
    canvas.style.height = `${height * scale}px`;
  }
  // willReadFrequently: a canvas in memory, painted with the page (not a GPU layer each:
  // 32 layers made every frame's layerization and compositing several times dearer)
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  if (!ctx) return;
  const data = ctx.createImageData(width, height);
  const plane = width * height;
  const base = k * c * plane;
  for (let p = 0; p < plane; p++) {
    const r = bytes[base + p];
    const g = c === 3 ? bytes[base + plane + p] : r;
    const b = c === 3 ? bytes[base + 2 * plane + p] : r;
    data.data.set([r, g, b, 255], 4 * p);
  }
  ctx.putImageData(data, 0, 0);
}

/** A span of `cls` in `parent` holding `text`, before `before`; none when `text` is empty. */
function optionalSpan(parent, cls, text, before = null) {
  let span = parent.querySelector(`:scope > .${cls}`);
  if (!text) { if (span) span.remove(); return; }
  if (!span) { span = h("span", { class: cls }); parent.insertBefore(span, before); }
  setText(span, text);
}

/**
 * One item's figure, updated in place: a new element is restyled against the whole page's
 * CSS (in JupyterLab, rebuilding 32 figures and two matrices twice a second made 60-130 ms
 * style recalcs and long tasks); kept ones only get their pixels and texts.
 */
function fillItem(slot, img, bytes, k, it) {
  const label = it.p === null || it.p === undefined ? `y ${it.t ?? "?"}` : `y ${it.t ?? "?"} · ŷ ${it.p}`;
  const index = it.i === null || it.i === undefined ? "" : `#${it.i}`;
  const loss = typeof it.loss === "number" ? `loss ${shortNumber(it.loss)}` : "";
  const title = [index && `dataset index ${it.i}`, label, loss, it.wrong ? "wrong prediction" : ""]
    .filter(Boolean).join(" · ");
  const fig = slot.fig;
  if (fig.title !== title) fig.title = title;
  if (fig.dataset.k !== String(k)) fig.dataset.k = String(k);
  if (fig.classList.contains("lw-wrong") !== !!it.wrong) fig.classList.toggle("lw-wrong", !!it.wrong);
  if (img) {
    if (!slot.canvas) { slot.canvas = h("canvas", { class: "lw-batch-img" }); fig.prepend(slot.canvas); }
    paintItem(slot.canvas, img, bytes, k);
  } else if (slot.canvas) { slot.canvas.remove(); slot.canvas = null; }
  optionalSpan(slot.caption, "lw-batch-index", index, slot.label);
  setText(slot.label, label);
  optionalSpan(slot.caption, "lw-batch-loss", loss);
}

function newSlot() {
  const label = h("span", { class: "lw-batch-label" });
  const caption = h("figcaption", {}, label);
  return { fig: h("figure", { class: "lw-batch-item" }, caption), caption, label, canvas: null };
}

function confusionTable(setName, n) {
  const head = h("tr", {}, h("th", { scope: "col", class: "lw-cm-corner", text: "true \\ pred" }),
    ...Array.from({ length: n }, (_, j) => h("th", { scope: "col", text: String(j) })));
  const cells = Array.from({ length: n }, () => Array.from({ length: n }, () => h("td")));
  const rows = cells.map((row, i) => h("tr", {}, h("th", { scope: "row", text: String(i) }), ...row));
  const caption = h("figcaption");
  const fig = h("figure", { class: "lw-cm", "data-set": setName }, caption,
    h("table", { class: "lw-cm-table", style: `width:${68 + 21 * n}px` }, h("thead", {}, head), h("tbody", {}, ...rows)));
  return { fig, caption, cells, n };
}

/** A matrix's counts into its table, each cell written only when it changed. */
function fillConfusion(t, setName, m) {
  const max = Math.max(1, ...m.counts.flat());
  const correct = m.counts.reduce((s, row, i) => s + row[i], 0);
  const total = m.counts.flat().reduce((s, v) => s + v, 0);
  m.counts.forEach((row, i) => row.forEach((v, j) => {
    const td = t.cells[i][j];
    const cls = i === j ? "lw-cm-diag" : v ? "lw-cm-off" : "";
    if (td.className !== cls) td.className = cls;
    const share = `${((v / max) * 100).toFixed(0)}%`;
    if (td.style.getPropertyValue("--lw-cm") !== share) td.style.setProperty("--lw-cm", share);
    setText(td, v ? String(v) : "");
    const title = `true ${i}, predicted ${j}: ${v}`;
    if (td.title !== title) td.title = title;
  }));
  const acc = total ? ` · ${((100 * correct) / total).toFixed(1)}% right` : "";
  setText(t.caption, `${setName}, epoch ${m.epoch}${acc}`);
}

/**
 * @param {HTMLElement} root
 * @param {import("../protocol.js").Store} store
 * @returns {import("../protocol.js").Part}
 */
export function mountBatch(root, store) {
  const grid = h("div", { class: "lw-batch-grid" });
  const note = h("div", { class: "lw-batch-note" });
  const matrices = h("div", { class: "lw-cm-box" });
  let byLoss = true;
  const sortButton = h("button", {
    class: "lw-btn lw-batch-sort", type: "button", hidden: true,
    title: "Draw the samples by loss, highest first, or in the batch's order",
    onClick: () => { byLoss = !byLoss; if (drawn) draw(drawn); },
  });
  const panel = onDemandPanel(root, store, "batch", "Batch", "lw-batch",
    h("div", { class: "lw-batch-body" }, h("div", { class: "lw-batch-bar" }, note, sortButton), grid, matrices));
  const hint = panel.hint;
  let drawn = null;
  const slots = []; // the items' figures, in the grid's order (kept across updates)
  let matricesShape = "";
  let tables = []; // the confusion tables drawn, one per set
  let later = 0; // the frame that draws the matrices
  let running = false;

  function draw(part) {
    const img = part.image;
    const items = part.items || [];
    const bytes = img ? decode(img.data) : null;
    const n = img ? img.n : items.length;
    let wrong = 0;
    const sorted = byLoss && !!part.losses;
    const order = drawOrder(items.slice(0, n), sorted);
    while (slots.length > order.length) slots.pop().fig.remove();
    order.forEach((k, j) => {
      const it = items[k] || {};
      if (it.wrong) wrong += 1;
      if (!slots[j]) { slots[j] = newSlot(); grid.append(slots[j].fig); }
      fillItem(slots[j], img, bytes, k, it);
    });
    setText(note, part.note || "");
    note.hidden = !part.note;
    sortButton.hidden = !part.losses;
    setText(sortButton, byLoss ? "sorted by loss ▾" : "batch order");
    const kind = part.kind === "class" ? ` · ${wrong} wrong` : "";
    setText(hint, n ? `${n} items${kind}${sorted ? " · by loss" : ""}` : "");
    if (later) { cancelAnimationFrame(later); later = 0; }
    // While the run trains the matrices are drawn at the next frame: with the items in the
    // same frame, its layout (hundreds of cells and captions) made it a long task.
    if (running) later = requestAnimationFrame(() => { later = 0; drawMatrices(part); });
    else drawMatrices(part);
  }

  function drawMatrices(part) {
    const sets = Object.entries(part.confusion || {});
    const shape = sets.map(([s, m]) => `${s}:${m.counts.length}`).join(",");
    if (shape !== matricesShape) { // the tables are made again only for other sets or classes
      matricesShape = shape;
      tables = sets.map(([s, m]) => confusionTable(s, m.counts.length));
      matrices.replaceChildren(...tables.map((t) => t.fig));
    }
    sets.forEach(([s, m], i) => fillConfusion(tables[i], s, m));
  }

  const show = (part) => { if (part !== drawn) { drawn = part; draw(part); } };
  panel.whenShown(show);
  return {
    update(state, changed) {
      running = state.status?.state === "running";
      const part = panel.part(state, changed);
      if (part) show(part);
    },
    cleanup() { cancelAnimationFrame(later); panel.cleanup(); },
  };
}
