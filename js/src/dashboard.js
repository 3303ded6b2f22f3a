// The luzwidget dashboard: controls, progress, context inspector, edits, live plots and an
// event log for one training run. Long-lived state lives in `initialize` (a store fed by the
// kernel's snapshot + deltas); `render` builds the DOM of one view and redraws it: the answer
// to a click at once, the rest at most five times a second, however fast the kernel sends.
import { h, setData, setText } from "./dom.js";
import { createStore } from "./store.js";
import { pageClock } from "./pace.js";
import { mountControls } from "./parts/controls.js";
import { mountProgress } from "./parts/progress.js";
import { mountInspector } from "./parts/inspector.js";
import { mountEdits } from "./parts/edits.js";
import { mountPlots } from "./parts/plots.js";
import { mountLog } from "./parts/log.js";
import { mountLayers } from "./parts/layers.js";
import { mountBatch } from "./parts/batch.js";
import { mountHistory } from "./parts/history.js";
import { mountTravel } from "./parts/travel.js";
import { mountPlayground } from "./parts/playground.js";

// One store per model, keyed by the model's `_uid` trait (the `model` objects handed to
// initialize and render are different proxies of the same model).
const STORES = (globalThis[Symbol.for("luzwidget.stores")] ??= new Map());

// How soon a view draws what changed (store.js names the changes): the answer to a click at
// once, structure at the next frame, the rest of a training run at most every CALM_MS.
const AT_ONCE = new Set(["status", "acks", "error"]);
// The on-demand panels (Layers, Batch...) follow the calm clock (each of their updates drawn
// in a frame of its own made two to four more frames a second, each laid out and painted),
// and, while training, their own slower one (parts/on_demand.js).
const NEXT_FRAME = new Set(["snapshot", "theme", "config", "marks", "pick"]);
const CALM_MS = 200; // stretched by the page's drawing budget (pace.js), at most CALM_STRETCH times
// (what is heavy, the plots and the panels, is paced further by its own clock)
const CALM_STRETCH = 2;

function themeWatcher(onChange) {
  const observer = new MutationObserver(onChange);
  observer.observe(document.body, { attributes: true, attributeFilter: ["class", "data-jp-theme-light", "data-jp-theme-name", "data-vscode-theme-kind"] });
  return () => observer.disconnect();
}

export default {
  initialize({ model }) {
    const key = model.get("_uid");
    const store = createStore(model);
    STORES.set(key, store);
    return () => {
      store.dispose();
      if (STORES.get(key) === store) STORES.delete(key);
    };
  },

  render({ model, el, host }) {
    const store = STORES.get(model.get("_uid"));
    if (!store) {
      el.textContent = "[luzwidget] dashboard state not found; re-run the cell.";
      return () => {};
    }
    const parts = new Set(model.get("parts"));
    const root = h("div", { class: "lw-dashboard", "data-state": "ready" });
    // A click on a button does not move the focus (toolbar buttons, as in an editor): in
    // JupyterLab each focus change restyles the whole cell (its :focus-within rules), which
    // took 30-60 ms of a click while training. Tab still reaches every button.
    root.addEventListener("mousedown", (event) => {
      if (event.button === 0 && event.target.closest("button")) event.preventDefault();
    });
    const message = h("div", { class: "lw-message", role: "status", "aria-live": "polite" });
    let messageTimer = 0;
    const say = (ack) => {
      clearTimeout(messageTimer);
      setText(message, ack.message || "");
      message.dataset.kind = ack.ok ? "ok" : "error";
      messageTimer = setTimeout(() => setText(message, ""), ack.ok ? 3000 : 8000);
    };
    /** @type {import("./protocol.js").Part[]} every part: one interface */
    const mounted = [];
    if (parts.has("controls")) mounted.push(mountControls(root, store, say));
    root.append(message);
    if (parts.has("progress")) mounted.push(mountProgress(root));
    if (parts.has("travel")) mounted.push(mountTravel(root, store, say, () => schedule(new Set(["pick"])))); // time travel
    const main = h("div", { class: "lw-main" });
    const side = h("div", { class: "lw-side" });
    root.append(main);
    if (parts.has("plots")) mounted.push(mountPlots(main, model, host, () => schedule(new Set(["snapshot"]))));
    if (parts.has("edits")) mounted.push(mountEdits(side, store, say));
    if (side.childElementCount) main.append(side);
    else main.classList.add("lw-main-single");
    if (parts.has("playground")) mounted.push(mountPlayground(root, store, model, host)); // closed: no cost
    const lower = h("div", { class: "lw-lower" });
    if (parts.has("inspector")) mounted.push(mountInspector(lower));
    if (parts.has("log")) mounted.push(mountLog(lower, store, say));
    if (lower.childElementCount) root.append(lower);
    if (lower.childElementCount === 1) lower.classList.add("lw-lower-single");
    const inside = h("div", { class: "lw-inside" }); // Layers and Batch (closed: no cost)
    if (parts.has("layers")) mounted.push(mountLayers(inside, store));
    if (parts.has("batch")) mounted.push(mountBatch(inside, store));
    if (parts.has("history")) mounted.push(mountHistory(inside, store, model, host)); // Layers over time
    if (inside.childElementCount) root.append(inside);
    el.append(root);

    let frame = 0;
    let timer = 0;
    let lastFlush = -Infinity;
    let disposed = false;
    let pending = new Set();
    const pace = pageClock();
    const calmMs = () => CALM_MS * Math.min(CALM_STRETCH, pace.stretch());
    function flush() {
      const t0 = performance.now();
      const inFrame = frame !== 0; // called back by requestAnimationFrame
      frame = 0;
      clearTimeout(timer);
      timer = 0;
      lastFlush = performance.now();
      const changed = pending;
      pending = new Set();
      const state = store.state;
      if (!state.ready) return;
      setData(root, "state", state.status.state || "");
      for (const part of mounted) part.update(state, changed);
      pace.spent(t0, inFrame);
    }
    /**
     * What a person does gets its answer at once: a state change, an ack or an error is
     * drawn in the same task it arrived in. What only moves on while training (progress,
     * values, points) is drawn at most every CALM_MS, stretched when the page's drawing goes
     * over its budget (pace.js): every frame that changes the page costs its layout, paint and
     * compositing, however little changed.
     * @param {Iterable<string>} changed
     */
    function schedule(changed) {
      if (disposed) return; // e.g. plotly.js arrived after the view went away
      let now = false, soon = false;
      for (const c of changed) {
        pending.add(c);
        now ||= AT_ONCE.has(c);
        soon ||= NEXT_FRAME.has(c);
      }
      if (now) {
        if (frame) { cancelAnimationFrame(frame); frame = 0; } // (flush() is not in a frame)
        flush();
      } else if (soon || lastFlush + calmMs() <= performance.now()) {
        if (!frame) frame = requestAnimationFrame(flush);
      } else if (!frame && !timer) {
        timer = setTimeout(() => { timer = 0; if (!frame) frame = requestAnimationFrame(flush); },
          lastFlush + calmMs() - performance.now());
      }
    }
    const unsubscribe = store.subscribe(schedule);
    const unwatch = themeWatcher(() => schedule(new Set(["theme"])));
    schedule(new Set(["snapshot"]));

    return () => {
      disposed = true;
      unsubscribe();
      unwatch();
      if (frame) cancelAnimationFrame(frame);
      clearTimeout(timer);
      clearTimeout(messageTimer);
      for (const part of mounted) part.cleanup?.();
      root.remove();
    };
  },
};
