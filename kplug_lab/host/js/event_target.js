// Event, EventTarget, AbortSignal and AbortController.
class Event {
  constructor(type, init = {}) { this.type = String(type); this.defaultPrevented = false; this.cancelable = !!init.cancelable; this.timeStamp = Date.now(); }
  preventDefault() { if (this.cancelable) this.defaultPrevented = true; }
  stopPropagation() {}
  stopImmediatePropagation() { this._stop = true; }
}
class EventTarget {
  constructor() { Object.defineProperty(this, "_listeners", { value: new Map() }); }
  addEventListener(type, fn, opts) {
    if (!fn) return;
    const list = this._listeners.get(type) || [];
    if (!list.some((l) => l.fn === fn)) list.push({ fn, once: !!(opts && opts.once) });
    this._listeners.set(type, list);
  }
  removeEventListener(type, fn) {
    const list = this._listeners.get(type);
    if (list) this._listeners.set(type, list.filter((l) => l.fn !== fn));
  }
  dispatchEvent(event) {
    const handler = this["on" + event.type];
    if (typeof handler === "function") handler.call(this, event);
    for (const l of [...(this._listeners.get(event.type) || [])]) {
      if (l.once) this.removeEventListener(event.type, l.fn);
      try { typeof l.fn === "function" ? l.fn.call(this, event) : l.fn.handleEvent(event); }
      catch (e) { log("error", "uncaught error in event listener: " + inspect(e)); }
      if (event._stop) break;
    }
    return !event.defaultPrevented;
  }
}
class AbortSignal extends EventTarget {
  constructor() { super(); this.aborted = false; this.reason = undefined; this.onabort = null; }
  throwIfAborted() { if (this.aborted) throw this.reason; }
  _abort(reason) {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason === undefined ? new DOMException("This operation was aborted", "AbortError") : reason;
    this.dispatchEvent(new Event("abort"));
  }
  static abort(reason) { const s = new AbortSignal(); s._abort(reason); return s; }
  static timeout(ms) {
    const s = new AbortSignal();
    G.setTimeout(() => s._abort(new DOMException("The operation timed out.", "TimeoutError")), ms);
    return s;
  }
  static any(signals) {
    const s = new AbortSignal();
    for (const x of signals) { if (x.aborted) { s._abort(x.reason); break; } x.addEventListener("abort", () => s._abort(x.reason)); }
    return s;
  }
}
class AbortController {
  constructor() { this.signal = new AbortSignal(); }
  abort(reason) { this.signal._abort(reason); }
}
define("Event", Event);
define("EventTarget", EventTarget);
define("AbortSignal", AbortSignal);
define("AbortController", AbortController);
