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

/** Draw item `k` of `img` ({n, c, h, w}; CHW uint8 per item) on a new canvas. */
function drawItem(img, bytes, k) {
  const { c, h: height, w: width } = img;
  const canvas = h("canvas", { class: "lw-batch-img", width, height });
  const scale = Math.max(1, Math.floor(CELL / Math.max(width, height)));
  canvas.style.width = `${width * scale}px`;
  canvas.style.height = `${height * scale}px`;
  const ctx = canvas.getContext("2d");
  if (!ctx) return canvas;
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
  return canvas;
}

function confusionTable(setName, m) {
  const n = m.counts.length;
  const max = Math.max(1, ...m.counts.flat());
  const correct = m.counts.reduce((s, row, i) => s + row[i], 0);
  const total = m.counts.flat().reduce((s, v) => s + v, 0);
  const head = h("tr", {}, h("th", { scope: "col", class: "lw-cm-corner", text: "true \\ pred" }),
    ...Array.from({ length: n }, (_, j) => h("th", { scope: "col", text: String(j) })));
  const rows = m.counts.map((row, i) => h("tr", {}, h("th", { scope: "row", text: String(i) }),
    ...row.map((v, j) => h("td", {
      class: i === j ? "lw-cm-diag" : v ? "lw-cm-off" : "",
      style: `--lw-cm:${((v / max) * 100).toFixed(0)}%`, text: v ? String(v) : "", title: `true ${i}, predicted ${j}: ${v}`,
    }))));
  const acc = total ? ` · ${((100 * correct) / total).toFixed(1)}% right` : "";
  return h("figure", { class: "lw-cm", "data-set": setName },
    h("figcaption", { text: `${setName}, epoch ${m.epoch}${acc}` }),
    h("table", { class: "lw-cm-table" }, h("thead", {}, head), h("tbody", {}, ...rows)));
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

  function draw(part) {
    const img = part.image;
    const items = part.items || [];
    const bytes = img ? decode(img.data) : null;
    const n = img ? img.n : items.length;
    let wrong = 0;
    const sorted = byLoss && !!part.losses;
    grid.replaceChildren(...drawOrder(items.slice(0, n), sorted).map((k) => {
      const it = items[k] || {};
      if (it.wrong) wrong += 1;
      const label = it.p === null || it.p === undefined ? `y ${it.t ?? "?"}` : `y ${it.t ?? "?"} · ŷ ${it.p}`;
      const index = it.i === null || it.i === undefined ? "" : `#${it.i}`;
      const loss = typeof it.loss === "number" ? `loss ${shortNumber(it.loss)}` : "";
      const title = [index && `dataset index ${it.i}`, label, loss, it.wrong ? "wrong prediction" : ""]
        .filter(Boolean).join(" · ");
      return h("figure", { class: `lw-batch-item${it.wrong ? " lw-wrong" : ""}`, "data-k": k, title },
        img ? drawItem(img, bytes, k) : null,
        h("figcaption", {},
          index ? h("span", { class: "lw-batch-index", text: index }) : null,
          h("span", { class: "lw-batch-label", text: label }),
          loss ? h("span", { class: "lw-batch-loss", text: loss }) : null));
    }));
    setText(note, part.note || "");
    note.hidden = !part.note;
    sortButton.hidden = !part.losses;
    setText(sortButton, byLoss ? "sorted by loss ▾" : "batch order");
    const sets = Object.entries(part.confusion || {});
    matrices.replaceChildren(...sets.map(([s, m]) => confusionTable(s, m)));
    const kind = part.kind === "class" ? ` · ${wrong} wrong` : "";
    setText(hint, n ? `${n} items${kind}${sorted ? " · by loss" : ""}` : "");
  }

  return {
    update(state, changed) {
      const part = panel.part(state, changed);
      if (!part || part === drawn) return;
      drawn = part;
      draw(part);
    },
  };
}
