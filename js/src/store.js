// Model-level state of a dashboard, kept in `initialize` so views can come and go (second
// display, JupyterLab windowing) without asking the kernel again. The kernel sends one
// "snapshot" (answer to our "hello", or when the widget is displayed) and then "update"
// deltas (types: protocol.js). The kernel bounds everything: it alone thins the loss stream
// (a delta says when to halve, and the rule is the kernel's), and the snapshot says how
// many log entries to keep.

import { mergeHistory } from "./parts/history.js";

/** @typedef {import("./protocol.js").State} State */
/** @typedef {import("./protocol.js").Snapshot} Snapshot */
/** @typedef {import("./protocol.js").Update} Update */
/** @typedef {import("./protocol.js").StreamPoints} StreamPoints */
/** @typedef {import("./protocol.js").Store} Store */

/** @returns {State} */
function emptyState() {
  return {
    ready: false,
    events: [],
    status: { state: "ready", buttons: {}, start_label: "Start" },
    progress: {},
    rows: {},
    order: [],
    hl: [],
    config: {},
    records: {}, // metric -> { train: {x, y}, valid: {x, y}, gen }
    metricOrder: [],
    stream: { series: {} },
    log: [],
    logMax: 0,
    logGen: 0,
    error: null,
    layers: null, // parts/layers.js (luzwidget/widgets/layers_panel.py)
    batch: null, // parts/batch.js (luzwidget/widgets/batch_panel.py)
    history: null, // parts/history.js (luzwidget/widgets/history_panel.py): columns kept here
    playground: null, // parts/playground.js (luzwidget/widgets/playground_panel.py)
    marks: [], // [{x, label}]: where lr was edited (a line on the loss plot)
    travel: null, // time travel (parts/travel.js, overlay.js)
    timeline: { v: 0, marks: [] }, // the snapshots' marks, oldest first (applyTimeline)
    pick: null, // the snapshot picked in the timeline (its number; null: none)
  };
}

/**
 * The kernel's thinning rule (luzwidget/widgets/stream.py `halve`), applied only when a
 * delta says so: neighbours averaged in pairs, a null ignored, an odd last value dropped.
 * @param {Array<number | null>} arr
 */
export function halve(arr) {
  const out = new Array(Math.floor(arr.length / 2));
  for (let i = 0; i < out.length; i++) {
    const a = arr[2 * i];
    const b = arr[2 * i + 1];
    out[i] = a === null ? b : b === null ? a : (a + b) / 2;
  }
  return out;
}

/** @param {State["stream"]} stream @param {string} name @param {StreamPoints} pts */
function addStream(stream, name, pts) {
  let s = stream.series[name];
  if (!s) s = stream.series[name] = { x: [], y: [], ema: [], gen: 0 };
  for (let k = 0; k < (pts.halve || 0); k++) {
    s.x = halve(s.x);
    s.y = halve(s.y);
    s.ema = halve(s.ema);
    s.gen += 1;
  }
  s.x.push(...pts.x);
  s.y.push(...pts.y);
  s.ema.push(...pts.ema);
}

/** @param {State} st @param {import("./protocol.js").RecordPoint} point */
function addRecord(st, [set, metric, epoch, value]) {
  let rec = st.records[metric];
  if (!rec) {
    rec = st.records[metric] = { train: { x: [], y: [] }, valid: { x: [], y: [] }, gen: 0 };
    st.metricOrder.push(metric);
  }
  const line = rec[set] || (rec[set] = { x: [], y: [] });
  const last = line.x.length ? line.x[line.x.length - 1] : -Infinity;
  if (epoch > last) {
    line.x.push(epoch);
    line.y.push(value);
    return;
  }
  const i = line.x.indexOf(epoch); // rewritten epoch: rare, redraw the panel
  if (i >= 0) line.y[i] = value;
  else {
    const at = line.x.findIndex((e) => e > epoch);
    line.x.splice(at, 0, epoch);
    line.y.splice(at, 0, value);
  }
  rec.gen += 1;
}

/** @param {State} st @param {import("./protocol.js").LogEntry[]} entries */
function pushLog(st, entries) {
  st.log.push(...entries);
  if (st.log.length > st.logMax) {
    st.log.splice(0, st.log.length - st.logMax);
    st.logGen += 1;
  }
}

/**
 * The timeline's delta (luzwidget/widgets/timeline.py): marks added or changed, dropped;
 * one already applied (the travel part resent for its family) is skipped.
 * @param {State["timeline"]} tl @param {*} delta @returns {boolean} whether it changed
 */
export function applyTimeline(tl, delta) {
  if (!delta || delta.v <= tl.v) return false;
  tl.v = delta.v;
  const byNumber = new Map(delta.reset ? [] : tl.marks.map((s) => [s[0], s]));
  for (const n of delta.drop || []) byNumber.delete(n);
  for (const s of delta.add || []) byNumber.set(s[0], s);
  tl.marks = [...byNumber.values()].sort((a, b) => a[0] - b[0]);
  return true;
}

/** @param {State} st @param {Snapshot | Update} msg @param {Set<string>} changed */
function applyParts(st, msg, changed) {
  if (msg.status) { st.status = msg.status; changed.add("status"); }
  if (msg.progress) { st.progress = msg.progress; changed.add("progress"); }
  if (msg.config) { st.config = msg.config; changed.add("config"); }
  if ("error" in msg) { st.error = msg.error; changed.add("error"); }
  if (msg.inspector) {
    const { rows, order, hl } = msg.inspector;
    if (order) st.order = order;
    if (rows) Object.assign(st.rows, rows);
    if (hl) st.hl = hl;
    changed.add("inspector");
  }
  if (msg.records && msg.records.length) {
    for (const point of msg.records) addRecord(st, point);
    changed.add("records");
  }
  if (msg.stream) {
    for (const [name, pts] of Object.entries(msg.stream)) addStream(st.stream, name, pts);
    changed.add("stream");
  }
  if (msg.log && msg.log.length) { pushLog(st, msg.log); changed.add("log"); }
  if (msg.layers) { st.layers = msg.layers; changed.add("layers"); } // whole part, when it changed
  if (msg.batch) { st.batch = msg.batch; changed.add("batch"); }
  if (msg.history) { st.history = mergeHistory(st.history, msg.history); changed.add("history"); } // new columns
  if (msg.playground) { st.playground = msg.playground; changed.add("playground"); }
  if (msg.marks && msg.marks.length) {
    st.marks = [...st.marks, ...msg.marks.map(([x, label]) => ({ x, label }))].slice(-50);
    changed.add("marks");
  }
  if (msg.travel) { // time travel
    st.travel = msg.travel;
    changed.add("travel");
    if (applyTimeline(st.timeline, msg.travel.timeline)) changed.add("timeline");
  }
}

/**
 * Create the store for `model` (says hello: the kernel answers with a snapshot).
 * @returns {Store}
 */
export function createStore(model) {
  let st = emptyState();
  const listeners = new Set();
  const ackHandlers = new Map();
  let nextId = 1;

  function emit(changed) {
    for (const fn of listeners) {
      try { fn(changed); } catch (error) { console.error("[luzwidget] view update failed", error); }
    }
  }

  /** @param {Snapshot | Update} msg */
  function onMessage(msg) {
    if (!msg || typeof msg !== "object") return;
    const changed = new Set();
    if (msg.type === "snapshot") {
      st = Object.assign(emptyState(), { ready: true, events: msg.events || [], logMax: msg.log_max });
      store.state = st;
      changed.add("snapshot");
      applyParts(st, msg, changed);
    } else if (msg.type === "update") {
      if (!st.ready) return; // a snapshot is on its way and already holds this delta
      applyParts(st, msg, changed);
    } else return;
    for (const ack of msg.acks || []) {
      const fn = ackHandlers.get(ack.id);
      ackHandlers.delete(ack.id);
      if (fn) fn(ack);
      if (!ack.ok) console.info(`[luzwidget] refused: ${ack.message}`);
    }
    if (msg.acks && msg.acks.length) changed.add("acks");
    emit(changed);
  }

  /** @type {Store} */
  const store = {
    state: st,
    subscribe(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    /** Send a command; `onAck(ack)` is called with the kernel's answer. */
    command(cmd, onAck) {
      const id = nextId++;
      if (onAck) ackHandlers.set(id, onAck);
      model.send({ ...cmd, id });
      return id;
    },
    dispose() {
      model.off("msg:custom", onMessage);
      listeners.clear();
      ackHandlers.clear();
    },
  };
  model.on("msg:custom", onMessage);
  model.send({ cmd: "hello" });
  return store;
}
