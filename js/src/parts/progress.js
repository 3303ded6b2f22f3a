// Progress: epoch x/N and batch i/n bars, rate and ETA, current loss and last metrics.
import { h, setFraction, setText } from "../dom.js";

function bar(cls, label) {
  const fill = h("div", { class: "lw-bar-fill" });
  const track = h("div", {
    class: `lw-bar ${cls}`,
    role: "progressbar",
    "aria-label": label,
    "aria-valuemin": "0",
  }, fill);
  const text = h("span", { class: "lw-bar-text" });
  const name = h("span", { class: "lw-bar-label", text: label });
  return { row: h("div", { class: "lw-bar-row" }, name, track, text), track, fill, text, name };
}

function setAttr(el, name, value) {
  if (el.getAttribute(name) !== value) el.setAttribute(name, value);
}

function setBar(b, value, max, text, fraction) {
  const raw = fraction ?? (max > 0 ? value / max : 0);
  const frac = Math.min(1, Math.max(0, raw));
  // A gradient's stop (dashboard.css), not a transform or a width: the bar is repainted and
  // the page is not laid out or layerized again (a transform that moves does both).
  setFraction(b.fill, frac.toFixed(4));
  setAttr(b.track, "aria-valuenow", String(value || 0));
  setAttr(b.track, "aria-valuemax", String(max || 0));
  setText(b.text, text);
}

/**
 * @param {HTMLElement} root
 * @returns {import("../protocol.js").Part}
 */
export function mountProgress(root) {
  const epoch = bar("lw-bar-epoch", "Epoch");
  const batch = bar("lw-bar-batch", "Train");
  const rate = h("span", { class: "lw-rate" });
  const loss = h("span", { class: "lw-loss" });
  const metrics = h("div", { class: "lw-metrics" });
  const el = h(
    "div",
    { class: "lw-progress" },
    h("div", { class: "lw-bars" }, epoch.row, batch.row),
    h("div", { class: "lw-progress-stats" }, h("div", { class: "lw-stat-line" }, loss, rate), metrics),
  );
  root.append(el);
  let metricsKey = "";
  let valueEls = []; // the chips' value spans, in order

  function update(state) {
    /** @type {Partial<import("../protocol.js").Progress>} */
    const p = state.progress || {};
    setBar(epoch, p.epoch || 0, p.max_epochs || 0, `${p.epoch || 0} / ${p.max_epochs ?? "?"}`, p.epoch_frac);
    setText(batch.name, p.phase === "valid" ? "Valid" : "Train");
    const steps = p.opt_steps ? ` · ${p.opt_steps[0]} / ${p.opt_steps[1] ?? "?"} steps` : "";
    setBar(batch, p.iter || 0, p.n_batches || 0, `${p.iter || 0} / ${p.n_batches ?? "?"}${steps}`);
    setAttr(batch.track, "aria-label", p.phase === "valid" ? "Validation batch" : "Training batch");
    if (el.dataset.phase !== (p.phase || "")) el.dataset.phase = p.phase || "";
    setText(rate, p.rate_text || "");
    setText(loss, p.loss_text || "");
    // The chips are made again only when the sets or names change; a value is written in
    // place (elements made anew at each epoch cost the page a compositing update a frame).
    const list = p.metrics || [];
    const key = JSON.stringify(list.map(([set, values]) => [set, values.map(([name]) => name)]));
    if (key !== metricsKey) {
      metricsKey = key;
      valueEls = [];
      metrics.replaceChildren(
        ...list.map(([set, values]) =>
          h(
            "span",
            { class: `lw-chip lw-chip-${set}` },
            h("span", { class: "lw-chip-set", text: set }),
            ...values.map(([name]) => {
              const v = h("span", { class: "lw-chip-v" });
              valueEls.push(v);
              return h("span", { class: "lw-chip-kv" }, h("span", { class: "lw-chip-k", text: name }), v);
            }),
          ),
        ),
      );
    }
    let k = 0;
    for (const [, values] of list) for (const [, value] of values) setText(valueEls[k++], value);
  }

  return { update };
}
