// Layers: one row per parameter (shape, ‖w‖, ‖grad‖, ‖Δw‖, ‖Δw‖/‖w‖, non-finite count) with
// small inline bars, sortable by any column. The kernel computes it only while the panel is
// open: opening or closing it sends {cmd: "panel", name: "layers", open} (a closed panel
// costs the run nothing). Rows with NaN/inf values are lit; the row that a
// breakpoints.nonfinite pause named is marked. The title names the step whose update the
// ‖Δw‖ columns show (part.update_of, [epoch, batch]): while the run trains freely, the last
// step the kernel recorded for a reading.
import { h, setFraction, setText } from "../dom.js";
import { onDemandPanel } from "./on_demand.js";

const LABELS = {
  name: "parameter", shape: "shape", norm: "‖w‖", grad_norm: "‖grad‖",
  update_norm: "‖Δw‖", update_ratio: "‖Δw‖/‖w‖", nonfinite: "NaN/inf",
};
const BARS = new Set(["norm", "grad_norm", "update_norm", "update_ratio"]);

/** @param {number | null} v */
export function fmt(v) {
  if (v === null || v === undefined) return "–";
  if (typeof v !== "number") return String(v);
  if (v === 0) return "0";
  const a = Math.abs(v);
  return a < 1e-3 || a >= 1e5 ? v.toExponential(2) : v.toPrecision(4).replace(/\.?0+$/, "");
}

/** A cell's sort key: numbers and text as they are, "inf"/"NaN" as the largest numbers. */
export function sortable(v) {
  if (v === "inf" || v === "NaN") return Infinity;
  if (v === "-inf") return -Infinity;
  return v ?? null;
}

/**
 * Whether `row` (a parameter) is where the non-finite value was found: the parameter whose
 * gradient went bad, or a parameter of the module whose output did; or the culprit a
 * sentinel check named (a parameter, or a module's parameters).
 * @param {string} name @param {{kind: string, name: string} | null} origin
 */
export function isOrigin(name, origin) {
  if (!origin || !origin.name) return false;
  if (origin.kind === "gradient" || origin.kind === "parameter") return name === origin.name;
  if (origin.kind === "output" || origin.kind === "module") return origin.name === "(model)" ? false : name.startsWith(`${origin.name}.`);
  return false;
}

/**
 * @param {HTMLElement} root
 * @param {import("../protocol.js").Store} store
 * @returns {import("../protocol.js").Part}
 */
/** Set class `cls` on `el` when `on`, only if that changes it. */
function toggle(el, cls, on) {
  if (el.classList.contains(cls) !== on) el.classList.toggle(cls, on);
}

/** One cell's value: text, title and bar, each written only when it changed. */
function fillCell(td, f, v, max) {
  const title = v === null ? "not known yet" : String(v);
  if (td.title !== title) td.title = title;
  if (!BARS.has(f)) { setText(td, f === "nonfinite" ? String(v) : String(v ?? "")); return; }
  const frac = typeof v === "number" && max > 0 ? Math.abs(v) / max : typeof v === "string" ? 1 : 0;
  const [bar, num] = td.children;
  setFraction(bar, frac.toFixed(3)); // a gradient's stop: repainted, nothing laid out

  setText(num, fmt(v));
}

export function mountLayers(root, store) {
  const head = h("tr");
  const body = h("tbody");
  const table = h("table", { class: "lw-layers-table" },
    h("caption", { class: "lw-sr-only", text: "Parameters: norms, gradient norms and the last update" }),
    h("thead", {}, head), body);
  const note = h("div", { class: "lw-layers-note" });
  const panel = onDemandPanel(root, store, "layers", "Layers", "lw-layers",
    h("div", { class: "lw-layers-scroll" }, note, table));
  const hint = panel.hint;
  let sortKey = null;
  let sortDir = 1;
  let fieldsKey = "";
  let last = null;

  function header(fields) {
    const key = fields.join(",");
    if (key === fieldsKey) return;
    fieldsKey = key;
    head.replaceChildren(...fields.map((f) => {
      const th = h("th", { scope: "col", class: "lw-sortable", "data-col": f, title: "Sort by this column",
        onClick: () => {
          sortDir = sortKey === f ? -sortDir : f === "name" || f === "shape" ? 1 : -1;
          sortKey = f;
          if (last) draw(last);
        } }, LABELS[f] || f);
      return th;
    }));
  }

  const drawn = new Map(); // parameter -> { tr, cells, key }: kept across updates

  function rowFor(name, fields) {
    const key = fields.join(",");
    let row = drawn.get(name);
    if (row && row.key === key) return row;
    const cells = fields.map((f) => {
      const td = h("td", { class: `lw-col-${f}`, "data-col": f });
      if (BARS.has(f)) td.append(h("span", { class: "lw-cell-bar" }), h("span", { class: "lw-num" }));
      return td;
    });
    const tr = h("tr", { class: "lw-layer-row", "data-param": name }, ...cells);
    if (row) row.tr.replaceWith(tr);
    row = { tr, cells, key };
    drawn.set(name, row);
    return row;
  }

  function draw(part) {
    const fields = part.fields || [];
    header(fields);
    const idx = Object.fromEntries(fields.map((f, i) => [f, i]));
    let rows = (part.rows || []).slice();
    if (sortKey !== null && sortKey in idx) {
      const i = idx[sortKey];
      rows.sort((a, b) => {
        const x = sortable(a[i]), y = sortable(b[i]);
        if (x === y) return 0;
        if (x === null) return 1; // not known: last, either way
        if (y === null) return -1;
        return (x < y ? -1 : 1) * sortDir;
      });
    }
    for (const th of head.children) {
      const sort = th.dataset.col === sortKey ? (sortDir > 0 ? "ascending" : "descending") : "none";
      if (th.getAttribute("aria-sort") !== sort) th.setAttribute("aria-sort", sort);
    }
    const max = {};
    for (const f of BARS) {
      if (!(f in idx)) continue;
      max[f] = Math.max(0, ...(part.rows || []).map((r) => (typeof r[idx[f]] === "number" ? Math.abs(r[idx[f]]) : 0)));
    }
    const origin = part.origin || null;
    let bad = 0;
    const order = rows.map((r) => {
      const name = r[idx.name];
      const row = rowFor(name, fields);
      const nonfinite = r[idx.nonfinite] > 0;
      if (nonfinite) bad += 1;
      toggle(row.tr, "lw-nonfinite", nonfinite);
      toggle(row.tr, "lw-origin", isOrigin(name, origin));
      fields.forEach((f, j) => fillCell(row.cells[j], f, r[idx[f]], max[f]));
      return row.tr;
    });
    for (const [name, row] of drawn) if (!rows.some((r) => r[idx.name] === name)) { row.tr.remove(); drawn.delete(name); }
    // Rows are kept and updated in place (a new row is restyled against the whole page's
    // CSS: in JupyterLab, rebuilding the table twice a second made 60+ ms style recalcs);
    // they move only when the order changed.
    if (order.some((tr, i) => body.children[i] !== tr)) body.replaceChildren(...order);
    let text = "";
    if (origin) text = origin.kind === "loss" ? "the loss went non-finite" : `non-finite ${origin.kind} of ${origin.name}`;
    setText(note, text);
    note.hidden = !text;
    // While the run trains, ‖Δw‖ is that of the last step recorded, not every step's.
    const when = Array.isArray(part.update_of) ? ` · Δw of epoch ${part.update_of[0]}, batch ${part.update_of[1]}` : "";
    setText(hint, (bad ? `${bad} with NaN/inf` : `${rows.length} parameters`) + when);
  }

  const show = (part) => { last = part; draw(part); };
  panel.whenShown(show);
  return {
    update(state, changed) {
      const part = panel.part(state, changed);
      if (part) show(part);
    },
    cleanup: panel.cleanup,
  };
}
