// Event log: events as they fire while stepping, command results, and errors with their
// traceback and Retry / Skip buttons.
import { h, setProp, setText } from "../dom.js";

/**
 * @param {HTMLElement} root
 * @param {import("../protocol.js").Store} store
 * @param {(ack: import("../protocol.js").Ack) => void} say
 * @returns {import("../protocol.js").Part}
 */
export function mountLog(root, store, say) {
  const list = h("ol", { class: "lw-log-list", "aria-live": "polite" });
  const count = h("span", { class: "lw-hint" });
  const errTitle = h("div", { class: "lw-error-title" });
  const errTrace = h("pre", { class: "lw-traceback" });
  const retry = h("button", {
    class: "lw-btn lw-btn-retry", type: "button", text: "Retry",
    title: "Redo the current batch from a clean state", onClick: () => store.command({ cmd: "retry" }, say),
  });
  const skip = h("button", {
    class: "lw-btn lw-btn-skip", type: "button", text: "Skip",
    title: "Skip the failing batch and go on", onClick: () => store.command({ cmd: "skip" }, say),
  });
  const errBox = h(
    "div",
    { class: "lw-error-box", role: "alert", hidden: true },
    errTitle,
    h("details", { class: "lw-traceback-details", open: true }, h("summary", { text: "Traceback" }), errTrace),
    h("div", { class: "lw-error-actions" }, retry, skip),
  );
  const el = h(
    "details",
    { class: "lw-log lw-panel", open: true },
    h("summary", { class: "lw-panel-title" }, "Event log", count),
    errBox,
    list,
  );
  root.append(el);
  let shown = 0;
  let gen = -1;

  /** @param {import("../protocol.js").LogEntry} e */
  function entry(e) {
    return h(
      "li",
      { class: `lw-log-entry lw-log-${e.kind}` },
      e.n !== undefined && e.n !== null ? h("span", { class: "lw-log-n", text: `#${e.n}` }) : null,
      h("span", { class: "lw-log-text", text: e.text }),
      e.where ? h("span", { class: "lw-log-where", text: e.where }) : null,
    );
  }

  function update(state) {
    const err = state.error;
    setProp(errBox, "hidden", !err);
    if (err) {
      setText(errTitle, `${err.type}: ${err.message}`);
      setText(errTrace, err.traceback || "");
    }
    const buttons = state.status.buttons || {};
    setProp(retry, "disabled", !buttons.retry);
    setProp(skip, "disabled", !buttons.skip);
    if (gen !== state.logGen) {
      gen = state.logGen;
      shown = 0;
      list.replaceChildren();
    }
    const fresh = state.log.slice(shown);
    shown = state.log.length;
    if (fresh.length) {
      // Layout is read only when entries arrive: a read at every update forced a reflow of
      // the page each frame (what the other parts had just written).
      const stick = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
      list.append(...fresh.map(entry));
      if (stick) list.scrollTop = list.scrollHeight;
    }
    setText(count, state.log.length ? `${state.log.length}` : "");
  }

  return { update };
}
