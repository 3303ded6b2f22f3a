// The dashboard's message protocol, as JSDoc types (the kernel side: luzwidget/widgets/).
// store.js and the parts name these types in their @param/@type tags; nothing here runs.
//
// Kernel -> browser: one Snapshot (answer to "hello", or when the widget is displayed), then
// Update deltas holding only what changed. Browser -> kernel: Cmd messages, each answered by
// an Ack in a later message's `acks`.

/**
 * @typedef {Object} Status  Run state and buttons (luzwidget/widgets/controls.py).
 * @property {string} state  "ready" | "running" | "paused" | "error" | "done".
 * @property {Object<string, boolean>} buttons  Enabled state of each button, by name.
 * @property {string} start_label  "Start", "Resume", or "Continue" (a done run whose
 *   max_epochs was raised).
 * @property {string | null} event  The last event that fired.
 * @property {string} hint  Why the buttons are off (a cell drives the run), or "".
 */

/**
 * @typedef {Object} Progress  Bars, rate and values (luzwidget/widgets/progress.py).
 * @property {number} epoch_frac  Fraction of the fit done, 0..1.
 * @property {number} epoch
 * @property {number} max_epochs
 * @property {number} min_epochs
 * @property {number} iter  Batch within the epoch's current phase.
 * @property {number | null} n_batches  Batches in that phase (null: unknown length).
 * @property {[number, number | null] | null} opt_steps  With gradient accumulation: optimizer
 *   steps taken in the epoch and per epoch (null: a step per batch).
 * @property {"train" | "valid"} phase
 * @property {string} rate_text
 * @property {string} loss_text
 * @property {Array<[string, Array<[string, string]>]>} metrics  [set, [[metric, text], ...]].
 */

/**
 * @typedef {Object} Config  Editable settings (luzwidget/widgets/commands.py edit_values).
 * @property {Array<{name: string, lr: string}>} optimizers
 * @property {string} weight_decay  The first parameter group's ("" without the setting).
 * @property {string} batch_size  The training loader's; "16 → 8" while a change waits for the next epoch.
 * @property {string} max_epochs
 * @property {string} min_epochs
 * @property {boolean} verbose
 * @property {string[]} breakpoints  Event names with a breakpoint.
 * @property {boolean} nonfinite_loss
 * @property {boolean} nonfinite  breakpoints.nonfinite: pause where a NaN/inf appeared.
 */

/**
 * @typedef {Object} Inspector  Context rows (luzwidget/widgets/inspector.py); in an update,
 *   only the rows that changed, and `order`/`hl` only when they changed.
 * @property {string[]} [order]
 * @property {Object<string, string>} [rows]
 * @property {string[]} [hl]  Fields that changed at the last event (while stepping).
 */

/**
 * @typedef {Object} StreamPoints  Loss-stream points of one series
 *   (luzwidget/widgets/stream.py stream_delta). The kernel alone thins the stream: `halve`
 *   tells the browser to average the points it holds in pairs `halve` times (a null ignored,
 *   an odd last point dropped: stream.halve), before appending x/y/ema.
 * @property {number[]} x  Batch numbers (bucket means once thinned).
 * @property {Array<number | null>} y  Raw loss (null: NaN/inf).
 * @property {Array<number | null>} ema
 * @property {number} [halve]
 */

/** @typedef {[string, string, number, number | null]} RecordPoint  [set, metric, epoch, value]. */

/**
 * @typedef {Object} LogEntry  One event-log line (luzwidget/widgets/eventlog.py).
 * @property {"event" | "info" | "ok" | "refused" | "pause" | "error"} kind
 * @property {string} text
 * @property {number} [n]  The event's number (kind "event").
 * @property {string} [where]  "epoch 2 · batch 5" (a state change).
 */

/**
 * @typedef {Object} Layers  The Layers panel (luzwidget/widgets/layers_panel.py), sent whole
 *   when it changed; while closed only `{open: false}` (nothing is computed).
 * @property {boolean} open
 * @property {string[]} [fields]  Column names: name, shape, norm, grad_norm, update_norm,
 *   update_ratio, nonfinite.
 * @property {Array<Array<string | number | null>>} [rows]  One per parameter, in `fields`
 *   order (null: not known, e.g. no gradient or no recorded step).
 * @property {{kind: "output" | "gradient" | "loss", name: string} | null} [origin]  What a
 *   breakpoints.nonfinite pause found (only while paused there).
 */

/**
 * @typedef {Object} Batch  The Batch panel (luzwidget/widgets/batch_panel.py), sent whole
 *   when it changed; while closed only `{open: false}`.
 * @property {boolean} open
 * @property {{n: number, c: number, h: number, w: number, data: string} | null} [image]
 *   `n` items of `c` x `h` x `w` uint8 pixels (CHW), base64; null: not drawn as images.
 * @property {string} [note]  Why there is no image ("" otherwise).
 * @property {"class" | "value" | null} [kind]
 * @property {Array<{t: string | null, p: string | null, wrong: boolean}>} [items]  Target and
 *   prediction of each item (the argmax for scores).
 * @property {Object<string, {epoch: number, counts: number[][]}>} [confusion]  Per set, the
 *   last pass's (true, predicted) counts (classification, counted while the panel is open).
 */

/**
 * @typedef {Object} History  The Layers over time panel (luzwidget/widgets/history_panel.py):
 *   only the columns not sent before (the store keeps them: parts/history.js mergeHistory);
 *   while closed only `{open: false}`.
 * @property {boolean} open
 * @property {boolean} [reset]  Drop the columns held (a new view, a rewind, a new pick).
 * @property {number} [max]  Columns kept at most.
 * @property {string[]} [params]  Parameters, in the order of a column's ratios.
 * @property {string[]} [dead]  ReLU-like modules, in the order of a column's dead shares.
 * @property {string[]} [sat]  Tanh/Sigmoid modules, in the order of its saturated shares.
 * @property {Object<string, string[]>} [choices]  Histogram series by what (acts, weights, grads).
 * @property {string | null} [pick]  The series in `cols` ("<what>|<name>").
 * @property {[number, number] | null} [edges]  Its fixed bins' range.
 * @property {Array<Array<*>>} [cols]  [seq, step, epoch, batch, ratios, dead, sat, counts].
 */

/** @typedef {{type: string, message: string, traceback: string}} ErrorInfo */

/**
 * @typedef {Object} Ack  The kernel's answer to one Cmd (luzwidget/widgets/commands.py Ack).
 * @property {*} id  The Cmd's id.
 * @property {boolean} ok
 * @property {string} message  A refusal says what was expected and quotes what was sent.
 *   Values the run uses are never in an ack: they come in the config and status parts.
 */

/**
 * @typedef {[number, number, number, "s" | "e" | "i" | "v", string, number | null, string]} Mark
 *   A snapshot on the timeline: [number (stable), epoch, batch, kind (start, epoch end,
 *   inside training, inside validation), label, x on the loss stream, event (inside)].
 */

/**
 * @typedef {Object} Travel  Time travel (luzwidget/widgets/travel.py), whole when it changed.
 * @property {{v: number, reset: boolean, add: Mark[], drop: number[]}} timeline
 *   The snapshots' marks, a delta (luzwidget/widgets/timeline.py; store.js applyTimeline).
 * @property {Array<{name: string, label: string, this: boolean, state: string, epoch: number,
 *   curves: Object<string, Object<string, Array<[number, number | null]>>>}>} family
 *   The run and its branches; `curves` ({metric: {set: [[epoch, value]]}}) for the others.
 * @property {number} rewinds
 */

/**
 * @typedef {Object} Update  kernel -> browser: only what changed since the last message.
 * @property {"update"} type
 * @property {Status} [status]
 * @property {ErrorInfo | null} [error]
 * @property {Progress} [progress]
 * @property {Config} [config]
 * @property {Inspector} [inspector]
 * @property {RecordPoint[]} [records]  New epoch metrics only.
 * @property {Object<string, StreamPoints>} [stream]  New points only.
 * @property {LogEntry[]} [log]  New entries only.
 * @property {Layers} [layers]
 * @property {Batch} [batch]
 * @property {History} [history]
 * @property {Travel} [travel]
 * @property {Ack[]} [acks]
 * @property {Mark[]} [marks]  New lr-edit markers only.
 */

/** @typedef {[number, string]} Mark  [batch, label]: where lr was edited (the loss plot's x). */

/**
 * @typedef {Object} Snapshot  kernel -> browser: everything a new view needs (bounded).
 * @property {"snapshot"} type
 * @property {string[]} events  Every event name, in loop order.
 * @property {number} capacity  Most stream points per series.
 * @property {number} beta  EMA smoothing of the stream.
 * @property {number} log_max  Log entries kept.
 * @property {Status} status
 * @property {ErrorInfo | null} error
 * @property {Progress} progress
 * @property {Config} config
 * @property {Required<Inspector>} inspector
 * @property {RecordPoint[]} records
 * @property {Object<string, StreamPoints>} stream
 * @property {LogEntry[]} log
 * @property {Layers | null} [layers]
 * @property {Batch | null} [batch]
 * @property {History | null} [history]
 * @property {Travel} travel
 * @property {Ack[]} [acks]
 * @property {Mark[]} [marks]  Every lr-edit marker kept (at most 50).
 */

/**
 * @typedef {Object} Cmd  browser -> kernel (the store adds `id`).
 * @property {"hello" | "start" | "pause" | "step" | "stop" | "retry" | "skip" | "edit" | "panel" | "travel"} cmd
 * @property {"snapshot" | "rewind" | "branch" | "drive"} [action]  travel: what to do.
 * @property {number} [snapshot]  travel rewind/branch: the snapshot's number.
 * @property {string} [lr]  travel branch: the branch's lr, typed (empty: the run's).
 * @property {string} [run]  travel drive: the family's run, by name.
 * @property {string} [what]  step: "batch", "epoch" or an event name.
 * @property {string} [field]  edit: lr, max_epochs, min_epochs, verbose, nonfinite_loss,
 *   nonfinite, breakpoint.
 * @property {string} [name]  panel: "layers", "batch" or "history".
 * @property {string} [pick]  panel "history": the histograms shown ("<what>|<name>").
 * @property {boolean} [open]  panel: open (compute it) or closed (nothing computed).
 * @property {string} [opt]  edit lr: the optimizer.
 * @property {string} [event]  edit breakpoint: the event.
 * @property {string | boolean} [value]  Typed text, or a bool for the checkboxes.
 * @property {number} [id]
 */

/**
 * @typedef {Object} State  The store's model-level state, read by the parts.
 * @property {boolean} ready  A snapshot arrived.
 * @property {string[]} events
 * @property {Status} status
 * @property {Progress | {}} progress
 * @property {Object<string, string>} rows
 * @property {string[]} order
 * @property {string[]} hl
 * @property {Config | {}} config
 * @property {Object<string, {train: {x: number[], y: Array<number|null>}, valid: {x: number[], y: Array<number|null>}, gen: number}>} records
 * @property {string[]} metricOrder
 * @property {{series: Object<string, {x: number[], y: Array<number|null>, ema: Array<number|null>, gen: number}>}} stream
 * @property {LogEntry[]} log
 * @property {number} logMax
 * @property {number} logGen
 * @property {ErrorInfo | null} error
 * @property {Layers | null} layers
 * @property {Batch | null} batch
 * @property {History | null} history  Its columns accumulated.
 * @property {Array<{x: number, label: string}>} marks  lr-edit markers, oldest first.
 * @property {Travel | null} travel
 * @property {{v: number, marks: Mark[]}} timeline  The timeline's marks, by number.
 * @property {number | null} pick  The snapshot picked in the timeline (null: none).
 */

/**
 * @typedef {Object} Store
 * @property {State} state
 * @property {(fn: (changed: Set<string>) => void) => () => void} subscribe
 * @property {(cmd: Cmd, onAck?: (ack: Ack) => void) => number} command
 * @property {() => void} dispose
 */

/**
 * @typedef {Object} Part  What every part's mount function returns.
 * @property {(state: State, changed: Set<string>) => void} update  Called once per frame
 *   with the keys that changed ("snapshot", "status", "stream", "theme", ...).
 * @property {() => void} [cleanup]  Called when the view goes away.
 */

export {};
