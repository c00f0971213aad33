// Timers, driven by the host's per-plugin timer heap (ops timer_set, timer_clear): the host fires one through
// __kplug.timer(id).
const liveTimers = new Map();
let nextTimer = 1;
class Timeout {
  constructor(id) { this._id = id; }
  ref() { return this; }
  unref() { return this; }
  hasRef() { return true; }
  refresh() { const t = liveTimers.get(this._id); if (t) call("timer_set", this._id, t.delay); return this; }
  [Symbol.toPrimitive]() { return this._id; }
}
function schedule(fn, delay, args, repeat) {
  if (typeof fn !== "function") return undefined;
  delay = Number(delay) || 0;
  if (repeat && delay <= 0) delay = 1;
  if (delay < 0) delay = 0;
  const id = nextTimer++;
  liveTimers.set(id, { fn, args, delay, repeat });
  call("timer_set", id, delay);
  return new Timeout(id);
}
function clear(handle) {
  const id = handle instanceof Timeout ? handle._id : Number(handle);
  if (liveTimers.delete(id)) call("timer_clear", id);
}
define("setTimeout", (fn, ms, ...args) => schedule(fn, ms, args, false));
define("setInterval", (fn, ms, ...args) => schedule(fn, ms, args, true));
define("setImmediate", (fn, ...args) => schedule(fn, 0, args, false));
define("clearTimeout", clear);
define("clearInterval", clear);
define("clearImmediate", clear);
K.timer = (id) => {
  const t = liveTimers.get(id);
  if (!t) return;
  if (t.repeat) call("timer_set", id, t.delay);
  else liveTimers.delete(id);
  try {
    t.fn.apply(undefined, t.args);
  } catch (e) {
    log("error", "uncaught error in timer callback: " + inspect(e));
  }
};
K.pendingTimers = () => liveTimers.size;
