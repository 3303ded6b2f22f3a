// Control bar: Start/Resume/Continue, Pause, Step batch, Step epoch, Step back, First NaN,
// Biggest spike, Step to <event> + Go, Skip batch (only at a pause inside a batch), Stop,
// state badge.
import { h, setData, setProp, setText, uid } from "../dom.js";

const BUTTONS = [
  ["start", "Start", "lw-btn-start", { cmd: "start" }, "▶"],
  ["pause", "Pause", "lw-btn-pause", { cmd: "pause" }, "❚❚"],
  ["step_batch", "Step batch", "lw-btn-step-batch", { cmd: "step", what: "batch" }, "⇥"],
  ["step_epoch", "Step epoch", "lw-btn-step-epoch", { cmd: "step", what: "epoch" }, "⇥⇥"],
];

// Going back (issue 25): each replays from the run's snapshots; the ack says where it went.
const BACK = [
  ["step_back", "Step back", "lw-btn-step-back", { cmd: "step_back", what: "batch" }, "⇤",
    "Back one batch, exactly where stepping forward had paused (replayed from a snapshot)"],
  ["find_nan", "First NaN", "lw-btn-find-nan", { cmd: "find", condition: "nan" }, "⚠",
    "Go to the start of the first batch whose loss, gradients or weights were NaN/inf"],
  ["find_spike", "Biggest spike", "lw-btn-find-spike", { cmd: "find", condition: "biggest_spike" }, "⋀",
    "Go to the start of the batch whose loss rose most above the median of the 100 before"],
];

/** @typedef {import("../protocol.js").Part} Part */

/**
 * @param {HTMLElement} root
 * @param {import("../protocol.js").Store} store
 * @param {(ack: import("../protocol.js").Ack) => void} say
 * @returns {Part}
 */
export function mountControls(root, store, say) {
  // A drive command's ok ("resumed", "running to the next batch") would outlive the state
  // it describes (issue 10: a green "running to..." under a PAUSED badge): the badge and the
  // event log say it; only a refusal is shown here.
  const sayRefusal = (ack) => { if (!ack.ok) say(ack); };
  /** @type {Object<string, HTMLButtonElement>} buttons by the kernel's button name */
  const buttons = {};
  let startLabel = null;
  const bar = h("div", { class: "lw-controls", role: "toolbar", "aria-label": "Run controls" });
  const badge = h("span", { class: "lw-state", role: "status", "aria-label": "Run state" });
  bar.append(badge);
  for (const [key, text, cls, cmd, icon] of BUTTONS) {
    const label = h("span", { class: "lw-btn-text", text });
    buttons[key] = h(
      "button",
      { class: `lw-btn ${cls}`, type: "button", onClick: () => store.command(cmd, sayRefusal) },
      h("span", { class: "lw-icon", "aria-hidden": "true", text: icon }),
      label,
    );
    if (key === "start") startLabel = label;
    bar.append(buttons[key]);
  }
  const back = h("span", { class: "lw-back", role: "group", "aria-label": "Go back" });
  for (const [key, text, cls, cmd, icon, title] of BACK) {
    buttons[key] = h(
      "button",
      { class: `lw-btn ${cls}`, type: "button", title, onClick: () => store.command(cmd, say) },
      h("span", { class: "lw-icon", "aria-hidden": "true", text: icon }),
      h("span", { class: "lw-btn-text", text }),
    );
    back.append(buttons[key]);
  }
  bar.append(back);
  const selectId = uid("step-event");
  const select = h("select", { class: "lw-step-event", id: selectId });
  const go = h("button", {
    class: "lw-btn lw-btn-step-to",
    type: "button",
    text: "Go",
    "aria-label": "Step to the selected event",
    title: "Run until the selected event fires, then pause",
    onClick: () => select.value && store.command({ cmd: "step", what: select.value }, sayRefusal),
  });
  const stepTo = h(
    "span",
    { class: "lw-step-to" },
    h("label", { for: selectId, class: "lw-step-to-label", text: "Step to" }),
    select,
    go,
  );
  buttons.step_to = go;
  buttons.stop = h(
    "button",
    { class: "lw-btn lw-btn-stop", type: "button", onClick: () => store.command({ cmd: "stop" }, say) },
    h("span", { class: "lw-icon", "aria-hidden": "true", text: "■" }),
    h("span", { class: "lw-btn-text", text: "Stop" }),
  );
  // Skip at a pause inside a batch (e.g. a NaN pause): abandon it and go on. After an
  // error the event log's own Skip button does it, so this one shows only when paused.
  const skipBatch = h(
    "button",
    { class: "lw-btn lw-btn-skip-batch", type: "button", hidden: true,
      title: "Abandon this batch (no optimizer step, no metrics) and go on",
      onClick: () => store.command({ cmd: "skip" }, sayRefusal) },
    h("span", { class: "lw-icon", "aria-hidden": "true", text: "↷" }),
    h("span", { class: "lw-btn-text", text: "Skip batch" }),
  );
  bar.append(stepTo, skipBatch, buttons.stop);
  const hint = h("div", { class: "lw-blocking-hint", role: "note" });
  root.append(bar, hint);

  let eventsKey = "";
  function fillEvents(events) {
    const key = events.join(",");
    if (key === eventsKey) return;
    eventsKey = key;
    const current = select.value;
    select.replaceChildren(...events.map((e) => h("option", { value: e, text: e.replace(/^on_/, "") })));
    select.value = events.includes(current) ? current : events.includes("on_train_batch_after_loss")
      ? "on_train_batch_after_loss" : events[0] || "";
  }

  function update(state) {
    fillEvents(state.events);
    const { status } = state;
    const enabled = status.buttons || {};
    for (const [name, el] of Object.entries(buttons)) setProp(el, "disabled", !enabled[name]);
    setProp(select, "disabled", !enabled.step_to); // the event picker goes with its Go button
    setProp(skipBatch, "hidden", !(enabled.skip && status.state === "paused"));
    setText(startLabel, status.start_label || "Start");
    setText(badge, status.state || "");
    setText(hint, status.hint || "");
    setData(badge, "state", status.state || "");
  }

  return { update };
}
