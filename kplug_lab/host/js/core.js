// The prelude's core. The prelude is evaluated in every plugin VM before kernel.js; it is the files of this folder
// listed in PRELUDE_PARTS (host/js/__init__.py), joined in that order inside one function, so they share one
// scope (`G` is globalThis) and a part uses what the parts before it declare.
//
// It builds the web globals SiYuan's goja host provides (console, timers, Buffer, URL, GoError, require) plus
// the standard ones bundled plugins probe for (TextEncoder, structuredClone, AbortController, crypto, ...),
// and the `siyuan` global (spec §3), on top of two host primitives left by the host in `__kplug_native`:
// `call(op, ...args)` (synchronous) and `callAsync(op, ...args)` (a Promise); the host's HostOps answers each op
// by name. Everything the host relies on is captured in this closure, so a plugin that overwrites globals
// cannot break the host; the host's entry points live on the non-writable `__kplug` (K, frozen by freeze.js).
//
// Here: the native bridge, `define` (a global as the goja host makes it), K, GoError and the helpers that
// reject with one.
const native = G.__kplug_native;
delete G.__kplug_native;
const call = native.call;
const callAsync = native.callAsync;
const define = (name, value) =>
  Object.defineProperty(G, name, { value, writable: true, configurable: true, enumerable: false });
const K = {};
// natives the prelude uses, captured: a plugin may replace the globals, and SiYuan-strict mode removes them
// (portability.js)
const DOMException = G.DOMException;
const performance = G.performance;
const queueMicrotask = G.queueMicrotask;
Object.defineProperty(G, "__kplug", { value: K, writable: false, configurable: false, enumerable: false });

// ---- GoError (goja's built-in: an Error subclass, callable with or without `new`) -------------------
function GoError(message, value) {
  const err = new Error(message === undefined ? "" : String(message));
  Object.setPrototypeOf(err, new.target ? new.target.prototype : GoError.prototype);
  if (value !== undefined) err.value = value;
  return err;
}
GoError.prototype = Object.create(Error.prototype, {
  constructor: { value: GoError, writable: true, configurable: true },
  name: { value: "GoError", writable: true, configurable: true },
});
define("GoError", GoError);
define("global", G);
const goError = (message) => {
  const msg = String(message);
  const err = new GoError(msg);
  err.value = Object.freeze({ error: () => msg });
  return err;
};
const reject = (message) => Promise.reject(goError(message));
// an async host op whose failure becomes a GoError with the host's text
const hostAsync = (op, ...args) =>
  callAsync(op, ...args).catch((e) => { throw goError(e && e.message !== undefined ? e.message : e); });
