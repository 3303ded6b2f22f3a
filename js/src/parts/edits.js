// Edits: lr per optimizer, weight_decay (L2, every optimizer), batch_size (from the next
// epoch on: the config shows "16 → 8" until then), max_epochs, min_epochs, verbose, breakpoints, pause on NaN/inf
// (the loss only, or where it came from: breakpoints.nonfinite).
// Values go to the kernel as typed text; the kernel parses them strictly (nothing is ever
// evaluated) and answers with an ack (ok and a message). What the run really uses comes in
// the config part, the one source of values: a refused edit snaps back to it at once; an
// accepted one keeps the typed text until the config shows the change (it lands at the next
// event boundary while the run trains), then shows the run's value, focused or not.
import { h, setProp, setText, uid } from "../dom.js";

/** How long an accepted edit may take to show in the config before the config wins. */
const SETTLE_MS = 2000;

function textField(store, label, cls, makeCmd) {
  const id = uid(cls);
  const msgId = `${id}-msg`;
  const input = h("input", {
    id, type: "text", class: `lw-input ${cls}`, autocomplete: "off", spellcheck: false,
    inputMode: "decimal", "aria-describedby": msgId,
  });
  const msg = h("span", { class: "lw-edit-msg", id: msgId, "aria-live": "polite" });
  const row = h("div", { class: "lw-field" }, h("label", { for: id, class: "lw-label", text: label }), input, msg);
  const field = {
    row, input, msg, shown: "", pending: false, sent: null, queued: null, timer: 0, expect: null,
  };
  function show(text, kind) {
    clearTimeout(field.timer);
    setText(msg, text);
    msg.dataset.kind = kind;
    row.dataset.kind = kind;
    if (kind === "ok") field.timer = setTimeout(() => { setText(msg, ""); row.dataset.kind = ""; }, 2500);
  }
  function commit() {
    if (field.pending) {
      // Sent once the kernel answered the previous edit; not the text already on its way
      // (Enter commits, then Chromium fires "change" for the same text).
      field.queued = input.value === field.sent ? null : input.value;
      return;
    }
    if (input.value === field.shown) return;
    field.pending = true;
    field.sent = input.value;
    row.dataset.kind = "pending";
    store.command(makeCmd(input.value), (ack) => {
      field.pending = false;
      input.setAttribute("aria-invalid", ack.ok ? "false" : "true");
      show(ack.message, ack.ok ? "ok" : "error");
      // Accepted: wait for the config to show the change. Refused: back to the run's value.
      field.expect = ack.ok ? { before: field.shown, since: performance.now() } : null;
      const now = ack.ok ? field.sent : field.shown;
      const queued = field.queued;
      field.queued = null;
      input.value = queued !== null && queued !== now ? queued : now;
      if (queued !== null && queued !== now) commit();
    });
  }
  input.addEventListener("change", commit);
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") commit();
    if (event.key === "Escape") { input.value = field.shown; show("", ""); }
  });
  field.set = (value) => {
    if (value === undefined || value === null) return;
    const text = String(value);
    const expect = field.expect;
    if (expect && text === expect.before && performance.now() - expect.since < SETTLE_MS) {
      return; // an accepted edit not landed yet: keep what was typed
    }
    field.shown = text;
    // After an edit the config is the truth, even in the focused box; otherwise typing wins.
    if (!field.pending && (expect || document.activeElement !== input)) setProp(input, "value", text);
    field.expect = null;
  };
  field.cleanup = () => clearTimeout(field.timer);
  return field;
}

function checkField(store, label, cls, makeCmd, say) {
  const id = uid(cls);
  const input = h("input", { id, type: "checkbox", class: `lw-check ${cls}` });
  const row = h("div", { class: "lw-field lw-field-check" }, input, h("label", { for: id, class: "lw-label", text: label }));
  input.addEventListener("change", () => {
    const wanted = input.checked;
    store.command(makeCmd(wanted), (ack) => {
      if (!ack.ok) input.checked = !wanted;
      say(ack);
    });
  });
  return { row, input, set: (v) => { if (document.activeElement !== input) setProp(input, "checked", !!v); } };
}

/**
 * @param {HTMLElement} root
 * @param {import("../protocol.js").Store} store
 * @param {(ack: import("../protocol.js").Ack) => void} say
 * @returns {import("../protocol.js").Part}
 */
export function mountEdits(root, store, say) {
  const lrBox = h("div", { class: "lw-lr-fields" });
  const maxEpochs = textField(store, "max_epochs", "lw-edit-max-epochs", (value) => ({ cmd: "edit", field: "max_epochs", value }));
  const minEpochs = textField(store, "min_epochs", "lw-edit-min-epochs", (value) => ({ cmd: "edit", field: "min_epochs", value }));
  const decay = textField(store, "weight_decay", "lw-edit-weight-decay", (value) => ({ cmd: "edit", field: "weight_decay", value }));
  const batchSize = textField(store, "batch_size", "lw-edit-batch-size", (value) => ({ cmd: "edit", field: "batch_size", value }));
  maxEpochs.input.inputMode = minEpochs.input.inputMode = batchSize.input.inputMode = "numeric";
  batchSize.row.title = "Takes effect at the start of the next epoch";
  const verbose = checkField(store, "verbose", "lw-edit-verbose", (value) => ({ cmd: "edit", field: "verbose", value }), say);
  const nonfinite = checkField(store, "Pause on NaN/inf loss", "lw-edit-nonfinite", (value) => ({ cmd: "edit", field: "nonfinite_loss", value }), say);
  // breakpoints.nonfinite: pause where a NaN/inf first appears and name the module (hooks: slower)
  const origin = checkField(store, "…and find where it came from", "lw-edit-nonfinite-origin", (value) => ({ cmd: "edit", field: "nonfinite", value }), say);
  origin.row.title = "Pause at the first module output, loss or gradient that is NaN/inf and name it (forward hooks: a fit runs slower)";
  const bpGrid = h("div", { class: "lw-bp-grid", role: "group", "aria-label": "Breakpoints" });
  const bpCount = h("span", { class: "lw-hint" });
  const bp = h("details", { class: "lw-breakpoints" }, h("summary", {}, "Breakpoints", bpCount), bpGrid);
  const el = h(
    "details",
    { class: "lw-edits lw-panel", open: true },
    h("summary", { class: "lw-panel-title", text: "Settings" }),
    h("div", { class: "lw-edits-body" }, lrBox, decay.row, batchSize.row, maxEpochs.row, minEpochs.row, verbose.row, nonfinite.row, origin.row, bp),
  );
  root.append(el);
  const lrFields = new Map();
  const bpChecks = new Map();
  let optKey = "";
  let evKey = "";

  function buildLr(optimizers) {
    const key = optimizers.map((o) => o.name).join(",");
    if (key === optKey) return;
    optKey = key;
    for (const f of lrFields.values()) f.cleanup();
    lrFields.clear();
    const single = optimizers.length === 1;
    lrBox.replaceChildren(
      ...optimizers.map((o) => {
        const f = textField(store, single ? "lr" : `lr (${o.name})`, "lw-edit-lr", (value) => ({ cmd: "edit", field: "lr", opt: o.name, value }));
        f.row.dataset.opt = o.name;
        lrFields.set(o.name, f);
        return f.row;
      }),
    );
  }

  function buildBreakpoints(events) {
    const key = events.join(",");
    if (key === evKey) return;
    evKey = key;
    bpChecks.clear();
    bpGrid.replaceChildren(
      ...events.map((name) => {
        const f = checkField(store, name.replace(/^on_/, ""), "lw-bp", (value) => ({ cmd: "edit", field: "breakpoint", event: name, value }), say);
        f.input.dataset.event = name;
        bpChecks.set(name, f);
        return f.row;
      }),
    );
  }

  return {
    update(state) {
      /** @type {Partial<import("../protocol.js").Config>} */
      const c = state.config || {};
      buildLr(c.optimizers || []);
      buildBreakpoints(state.events);
      for (const o of c.optimizers || []) lrFields.get(o.name)?.set(o.lr);
      if (c.weight_decay !== undefined) decay.set(c.weight_decay);
      setProp(decay.row, "hidden", !c.weight_decay);
      if (c.batch_size !== undefined) batchSize.set(c.batch_size);
      setProp(batchSize.row, "hidden", !c.batch_size);
      maxEpochs.set(c.max_epochs);
      minEpochs.set(c.min_epochs);
      verbose.set(c.verbose);
      nonfinite.set(c.nonfinite_loss);
      origin.set(c.nonfinite);
      const on = new Set(c.breakpoints || []);
      for (const [name, f] of bpChecks) f.set(on.has(name));
      setText(bpCount, on.size ? `${on.size} set` : "");
    },
    cleanup() {
      for (const f of [...lrFields.values(), decay, batchSize, maxEpochs, minEpochs]) f.cleanup();
    },
  };
}
