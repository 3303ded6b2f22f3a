// Context inspector: one row per ctx field with a live one-line summary; the rows that
// changed at the last event are highlighted while stepping.
import { h, setText } from "../dom.js";

/**
 * @param {HTMLElement} root
 * @returns {import("../protocol.js").Part}
 */
export function mountInspector(root) {
  const body = h("tbody");
  const table = h(
    "table",
    { class: "lw-inspector-table" },
    h("caption", { class: "lw-sr-only", text: "Context fields and their current values" }),
    h("thead", {}, h("tr", {}, h("th", { scope: "col", text: "ctx field" }), h("th", { scope: "col", text: "value" }))),
    body,
  );
  const hint = h("span", { class: "lw-hint" });
  const el = h(
    "details",
    { class: "lw-inspector lw-panel", open: true },
    h("summary", { class: "lw-panel-title" }, "Context", hint),
    h("div", { class: "lw-inspector-scroll" }, table),
  );
  root.append(el);
  const rows = new Map();
  let orderKey = "";

  function update(state) {
    const key = state.order.join(",");
    if (key !== orderKey) {
      orderKey = key;
      rows.clear();
      body.replaceChildren(
        ...state.order.map((name) => {
          const value = h("td", { class: "lw-row-value" });
          const tr = h("tr", { class: "lw-row", "data-field": name }, h("th", { scope: "row", class: "lw-row-name", text: name }), value);
          rows.set(name, { tr, value, text: null, changed: false });
          return tr;
        }),
      );
    }
    const hl = new Set(state.hl);
    for (const [name, row] of rows) {
      const text = state.rows[name] ?? "";
      if (row.text !== text) { // the full value on hover: long ones are cut by the cell
        row.text = row.value.textContent = row.value.title = text;
      }
      const changed = hl.has(name);
      if (row.changed !== changed) row.tr.classList.toggle("lw-changed", (row.changed = changed));
    }
    setText(hint, hl.size ? `${hl.size} changed at the last event` : "");
  }

  return { update };
}
