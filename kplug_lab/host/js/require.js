// require: built-in modules only (console, util, url, buffer, events); SiYuan's file loader is not offered
// ([better] §4).
class EventEmitter {
  constructor() { this._events = new Map(); }
  on(name, fn) { (this._events.get(name) || this._events.set(name, []).get(name)).push(fn); return this; }
  addListener(name, fn) { return this.on(name, fn); }
  once(name, fn) { const w = (...a) => { this.off(name, w); fn.apply(this, a); }; return this.on(name, w); }
  off(name, fn) { const l = this._events.get(name); if (l) this._events.set(name, l.filter((f) => f !== fn)); return this; }
  removeListener(name, fn) { return this.off(name, fn); }
  removeAllListeners(name) { name === undefined ? this._events.clear() : this._events.delete(name); return this; }
  emit(name, ...args) { const l = this._events.get(name); if (!l || !l.length) return false; for (const f of [...l]) f.apply(this, args); return true; }
  listenerCount(name) { return (this._events.get(name) || []).length; }
}
const modules = {
  console: () => consoleObj,
  util: () => ({ format, inspect, promisify: (fn) => (...a) => new Promise((res, rej) => fn(...a, (e, v) => (e ? rej(e) : res(v)))), types: { isDate: (v) => v instanceof Date, isRegExp: (v) => v instanceof RegExp } }),
  url: () => ({ URL, URLSearchParams, domainToASCII: (d) => String(d).toLowerCase(), domainToUnicode: (d) => String(d) }),
  buffer: () => ({ Buffer }),
  events: () => Object.assign(EventEmitter, { EventEmitter }),
};
const moduleCache = new Map();
define("require", function require(id) {
  const name = String(id).replace(/^node:/, "");
  if (Object.prototype.hasOwnProperty.call(modules, name)) {
    if (!moduleCache.has(name)) moduleCache.set(name, modules[name]());
    return moduleCache.get(name);
  }
  throw new GoError(`Invalid module: ${id}`);
});
