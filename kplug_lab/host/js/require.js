// require (changes §1): built-in modules (console, util, url, buffer, events), then files inside the plugin's
// folder with Node's resolution and CommonJS semantics. The host resolves and reads the files (host/ops/modules.py,
// confined to the folder: anything outside is "module not found", as in SiYuan); this side keeps the cache and
// runs each file in the CommonJS wrapper. Paths are relative to the plugin's folder ("" is the folder itself).
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
const moduleCache = new Map();  // built-in name -> exports
const fileModules = new Map();  // file path -> module (a cycle sees the partial `module.exports`)
const dirOf = (path) => { const i = path.lastIndexOf("/"); return i < 0 ? "" : path.slice(0, i); };
// what __filename and __dirname say: the path under data/plugins/, as kernel.js is named (<name>/kernel.js)
const shownPath = (path) => { const name = siyuan ? siyuan.plugin.name : ""; return path ? `${name}/${path}` : name; };

function loadFile(path, parent) {
  const cached = fileModules.get(path);
  if (cached) return cached.exports;
  const filename = shownPath(path), dirname = shownPath(dirOf(path));
  const module = { id: filename, filename, path: dirname, loaded: false, exports: {}, parent: parent || null,
                   children: [] };
  module.require = makeRequire(dirOf(path), module);
  if (parent) parent.children.push(module);
  fileModules.set(path, module);
  try {
    const text = call("module_read", path);
    if (path.endsWith(".json")) {
      try { module.exports = JSON.parse(text); } catch (e) { throw new SyntaxError(`${filename}: ${e.message}`); }
    } else {
      const body = text.startsWith("#!") ? "//" + text : text;
      const wrapper = (0, eval)(`(function (exports, require, module, __filename, __dirname) {${body}\n})`);
      wrapper.call(module.exports, module.exports, module.require, module, filename, dirname);
    }
  } catch (e) {
    fileModules.delete(path);  // as Node: a module that threw is loaded afresh by the next require
    throw e;
  }
  module.loaded = true;
  return module.exports;
}

function makeRequire(base, parent) {
  return function require(id) {
    const request = String(id);
    const name = request.replace(/^node:/, "");
    if (Object.prototype.hasOwnProperty.call(modules, name)) {
      if (!moduleCache.has(name)) moduleCache.set(name, modules[name]());
      return moduleCache.get(name);
    }
    const path = request.startsWith("node:") ? null : call("module_resolve", base, request);
    if (path === null || path === undefined) throw new GoError(`Invalid module: ${id}`);
    return loadFile(path, parent);
  };
}
define("require", makeRequire("", null));
