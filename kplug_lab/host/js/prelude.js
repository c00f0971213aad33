// kplug_lab prelude: evaluated in every plugin VM before kernel.js.
//
// It builds the web globals SiYuan's goja host provides (console, timers, Buffer, URL, GoError, require) plus
// the standard ones bundled plugins probe for (TextEncoder, structuredClone, AbortController, crypto, ...),
// and the `siyuan` global (spec §3), on top of two host primitives left by the host in `__kplug_native`:
// `call(op, ...args)` (synchronous) and `callAsync(op, ...args)` (a Promise). The op contract is in
// PROTOCOL.md beside this file. Everything the host relies on is captured in this closure, so a plugin that
// overwrites globals cannot break the host; the host's entry points live on the non-writable `__kplug`.
(function (G) {
  "use strict";
  const native = G.__kplug_native;
  delete G.__kplug_native;
  const call = native.call;
  const callAsync = native.callAsync;
  const define = (name, value) =>
    Object.defineProperty(G, name, { value, writable: true, configurable: true, enumerable: false });
  const K = {};
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

  // ---- bytes: UTF-8 and base64 ---------------------------------------------------------------------
  function utf8Encode(str) {
    str = String(str);
    const out = new Uint8Array(str.length * 3);
    let p = 0;
    for (let i = 0; i < str.length; i++) {
      let c = str.charCodeAt(i);
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < str.length) {
        const d = str.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) { c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00); i++; }
        else c = 0xfffd;
      } else if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
      if (c < 0x80) out[p++] = c;
      else if (c < 0x800) { out[p++] = 0xc0 | (c >> 6); out[p++] = 0x80 | (c & 63); }
      else if (c < 0x10000) { out[p++] = 0xe0 | (c >> 12); out[p++] = 0x80 | ((c >> 6) & 63); out[p++] = 0x80 | (c & 63); }
      else {
        out[p++] = 0xf0 | (c >> 18); out[p++] = 0x80 | ((c >> 12) & 63);
        out[p++] = 0x80 | ((c >> 6) & 63); out[p++] = 0x80 | (c & 63);
      }
    }
    return out.slice(0, p);
  }
  function utf8Decode(bytes, fatal) {
    let s = "";
    const chunk = [];
    const flush = () => { s += String.fromCharCode.apply(null, chunk); chunk.length = 0; };
    const bad = () => { if (fatal) throw new TypeError("The encoded data was not valid for encoding utf-8"); return 0xfffd; };
    for (let i = 0; i < bytes.length;) {
      const b = bytes[i];
      let c, n = 0, min = 0;
      if (b < 0x80) { c = b; }
      else if (b >= 0xc2 && b < 0xe0) { c = b & 31; n = 1; min = 0x80; }
      else if (b >= 0xe0 && b < 0xf0) { c = b & 15; n = 2; min = 0x800; }
      else if (b >= 0xf0 && b < 0xf5) { c = b & 7; n = 3; min = 0x10000; }
      else { chunk.push(bad()); i++; if (chunk.length > 8000) flush(); continue; }
      let j = 1;
      for (; j <= n; j++) {
        const x = bytes[i + j];
        if (x === undefined || (x & 0xc0) !== 0x80) break;
        c = (c << 6) | (x & 63);
      }
      if (j <= n || c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) { chunk.push(bad()); i += Math.max(1, j); }
      else {
        i += n + 1;
        if (c >= 0x10000) { c -= 0x10000; chunk.push(0xd800 + (c >> 10), 0xdc00 + (c & 1023)); }
        else chunk.push(c);
      }
      if (chunk.length > 8000) flush();
    }
    flush();
    return s;
  }
  const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const B64_INDEX = new Int16Array(256).fill(-1);
  for (let i = 0; i < 64; i++) B64_INDEX[B64.charCodeAt(i)] = i;
  B64_INDEX[45] = 62; B64_INDEX[95] = 63; // base64url
  function b64Encode(bytes, url) {
    let out = "";
    const parts = [];
    for (let i = 0; i < bytes.length; i += 3) {
      const n = (bytes[i] << 16) | ((bytes[i + 1] || 0) << 8) | (bytes[i + 2] || 0);
      out += B64[n >> 18] + B64[(n >> 12) & 63] +
        (i + 1 < bytes.length ? B64[(n >> 6) & 63] : "=") + (i + 2 < bytes.length ? B64[n & 63] : "=");
      if (out.length > 8192) { parts.push(out); out = ""; }
    }
    parts.push(out);
    let s = parts.join("");
    if (url) s = s.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    return s;
  }
  function b64Decode(str) {
    const clean = String(str).replace(/[\s=]/g, "");
    const out = new Uint8Array(Math.floor(clean.length * 3 / 4));
    let p = 0, acc = 0, bits = 0;
    for (let i = 0; i < clean.length; i++) {
      const v = B64_INDEX[clean.charCodeAt(i) & 255];
      if (v < 0) continue;
      acc = (acc << 6) | v; bits += 6;
      if (bits >= 8) { bits -= 8; out[p++] = (acc >> bits) & 255; }
    }
    return out.slice(0, p);
  }
  const toBytes = (v) => {
    if (v instanceof Uint8Array) return v;
    if (v instanceof ArrayBuffer) return new Uint8Array(v);
    if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    return null;
  };

  // ---- TextEncoder / TextDecoder ---------------------------------------------------------------------
  class TextEncoder {
    get encoding() { return "utf-8"; }
    encode(input = "") { return utf8Encode(input); }
    encodeInto(src, dest) {
      // whole characters only: `read` counts the UTF-16 units whose bytes fitted
      let read = 0, written = 0;
      for (const ch of String(src)) {
        const bytes = utf8Encode(ch);
        if (written + bytes.length > dest.length) break;
        dest.set(bytes, written);
        written += bytes.length;
        read += ch.length;
      }
      return { read, written };
    }
  }
  class TextDecoder {
    constructor(label = "utf-8", options = {}) {
      const l = String(label).toLowerCase().trim();
      if (l !== "utf-8" && l !== "utf8" && l !== "unicode-1-1-utf-8") throw new RangeError(`The "${label}" encoding is not supported`);
      this._fatal = !!options.fatal;
      this._ignoreBOM = !!options.ignoreBOM;
    }
    get encoding() { return "utf-8"; }
    get fatal() { return this._fatal; }
    get ignoreBOM() { return this._ignoreBOM; }
    decode(input) {
      if (input === undefined) return "";
      let bytes = toBytes(input);
      if (!bytes) throw new TypeError("The provided value is not of type '(ArrayBuffer or ArrayBufferView)'");
      if (!this._ignoreBOM && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) bytes = bytes.subarray(3);
      return utf8Decode(bytes, this._fatal);
    }
  }
  define("TextEncoder", TextEncoder);
  define("TextDecoder", TextDecoder);

  // ---- console (goja_nodejs semantics: util.format, levels) ------------------------------------------
  function format(fmt, ...args) {
    if (typeof fmt !== "string") return [fmt, ...args].map((a) => (typeof a === "string" ? a : inspect(a))).join(" ");
    let i = 0;
    let out = fmt.replace(/%[sdj%]/g, (m) => {
      if (m === "%%") return "%";
      if (i >= args.length) return m;
      const a = args[i++];
      if (m === "%s") return String(a);
      if (m === "%d") return String(Number(a));
      try { return JSON.stringify(a); } catch (e) { return "[Circular]"; }
    });
    for (; i < args.length; i++) out += " " + String(args[i]);
    return out;
  }
  function inspect(v) {
    if (typeof v === "string") return v;
    if (v instanceof Error) return v.stack ? `${v.name}: ${v.message}\n${v.stack}` : String(v);
    if (v === undefined || typeof v === "function" || typeof v === "symbol" || typeof v === "bigint") return String(v);
    try { const s = JSON.stringify(v); return s === undefined ? String(v) : s; } catch (e) { return String(v); }
  }
  const log = (level, text) => call("log", level, text);
  const timers = new Map();
  const consoleObj = {
    log: (...a) => log("info", format(...a)),
    info: (...a) => log("info", format(...a)),
    debug: (...a) => log("info", format(...a)), // goja_nodejs: console.debug writes at INFO
    warn: (...a) => log("warn", format(...a)),
    error: (...a) => log("error", format(...a)),
    trace: (...a) => log("trace", format(...a) + "\n" + new Error().stack),
    dir: (v) => log("info", inspect(v)),
    table: (v) => log("info", inspect(v)),
    assert: (cond, ...a) => { if (!cond) log("error", "Assertion failed" + (a.length ? ": " + format(...a) : "")); },
    time: (label = "default") => { timers.set(label, performance.now()); },
    timeEnd: (label = "default") => {
      if (timers.has(label)) { log("info", `${label}: ${(performance.now() - timers.get(label)).toFixed(3)}ms`); timers.delete(label); }
    },
  };
  define("console", consoleObj);

  // ---- timers (driven by the host's per-plugin timer heap) -------------------------------------------
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

  // ---- structuredClone -------------------------------------------------------------------------------
  function structuredClone(value) {
    const seen = new Map();
    const clone = (v) => {
      if (v === null || (typeof v !== "object" && typeof v !== "function")) {
        if (typeof v === "symbol") throw new DOMException(`${String(v)} could not be cloned.`, "DataCloneError");
        return v;
      }
      if (typeof v === "function") throw new DOMException(`${v} could not be cloned.`, "DataCloneError");
      if (seen.has(v)) return seen.get(v);
      let out;
      if (v instanceof Date) out = new Date(v.getTime());
      else if (v instanceof RegExp) out = new RegExp(v.source, v.flags);
      else if (v instanceof ArrayBuffer) out = v.slice(0);
      else if (ArrayBuffer.isView(v)) out = new v.constructor(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength));
      else if (v instanceof Map) { out = new Map(); seen.set(v, out); v.forEach((val, key) => out.set(clone(key), clone(val))); return out; }
      else if (v instanceof Set) { out = new Set(); seen.set(v, out); v.forEach((val) => out.add(clone(val))); return out; }
      else if (v instanceof Error) { out = new (G[v.name] || Error)(v.message); seen.set(v, out); return out; }
      else if (Array.isArray(v)) { out = []; seen.set(v, out); v.forEach((x, i) => { out[i] = clone(x); }); return out; }
      else { out = {}; seen.set(v, out); for (const k of Object.keys(v)) putOwn(out, k, clone(v[k])); return out; }
      seen.set(v, out);
      return out;
    };
    return clone(value);
  }
  define("structuredClone", structuredClone);

  // ---- Event, EventTarget, AbortController -----------------------------------------------------------
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

  // ---- crypto ------------------------------------------------------------------------------------------
  const crypto = {
    getRandomValues(arr) {
      const bytes = toBytes(arr);
      if (!bytes || arr instanceof Float32Array || arr instanceof Float64Array) throw new TypeError("getRandomValues needs an integer typed array");
      if (bytes.length > 65536) throw new DOMException(`The ArrayBufferView's byte length (${bytes.length}) exceeds the number of bytes of entropy available via this API (65536)`, "QuotaExceededError");
      bytes.set(b64Decode(call("random_bytes", bytes.length)));
      return arr;
    },
    randomUUID() {
      const b = b64Decode(call("random_bytes", 16));
      b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
      const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
      return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
    },
  };
  define("crypto", crypto);
  define("global", G);

  // ---- Buffer (goja_nodejs subset, spec §4) ----------------------------------------------------------
  const normEnc = (enc) => {
    const e = String(enc || "utf8").toLowerCase();
    if (e === "utf-8" || e === "utf8") return "utf8";
    if (e === "base64url") return "base64url";
    if (e === "binary") return "latin1";
    if (["hex", "base64", "latin1", "ascii", "ucs2", "ucs-2", "utf16le", "utf-16le"].includes(e)) return e;
    throw new TypeError(`Unknown encoding: ${enc}`);
  };
  class Buffer extends Uint8Array {
    static from(value, encOrOffset, length) {
      if (typeof value === "string") return Buffer._fromString(value, encOrOffset);
      if (value instanceof ArrayBuffer) return new Buffer(value, encOrOffset || 0, length === undefined ? value.byteLength - (encOrOffset || 0) : length);
      if (ArrayBuffer.isView(value)) { const b = new Buffer(value.byteLength); b.set(new Uint8Array(value.buffer, value.byteOffset, value.byteLength)); return b; }
      if (Array.isArray(value)) { const b = new Buffer(value.length); for (let i = 0; i < value.length; i++) b[i] = value[i] & 255; return b; }
      if (value && value.type === "Buffer" && Array.isArray(value.data)) return Buffer.from(value.data);
      throw new TypeError("The first argument must be a string, Buffer, ArrayBuffer, Array, or array-like object.");
    }
    static _fromString(s, enc) {
      const e = normEnc(enc);
      let bytes;
      if (e === "utf8") bytes = utf8Encode(s);
      else if (e === "hex") { const n = Math.floor(s.length / 2); bytes = new Uint8Array(n); for (let i = 0; i < n; i++) { const v = parseInt(s.substr(i * 2, 2), 16); if (Number.isNaN(v)) { bytes = bytes.slice(0, i); break; } bytes[i] = v; } }
      else if (e === "base64" || e === "base64url") bytes = b64Decode(s);
      else if (e === "latin1" || e === "ascii") { bytes = new Uint8Array(s.length); for (let i = 0; i < s.length; i++) bytes[i] = s.charCodeAt(i) & 255; }
      else { bytes = new Uint8Array(s.length * 2); for (let i = 0; i < s.length; i++) { const c = s.charCodeAt(i); bytes[2 * i] = c & 255; bytes[2 * i + 1] = c >> 8; } }
      const b = new Buffer(bytes.length);
      b.set(bytes);
      return b;
    }
    static alloc(size, fill, enc) { const b = new Buffer(size); if (fill !== undefined) b.fill(typeof fill === "string" ? Buffer.from(fill, enc)[0] || 0 : fill); return b; }
    static allocUnsafe(size) { return new Buffer(size); }
    static isBuffer(v) { return v instanceof Buffer; }
    static isEncoding(e) { try { normEnc(e); return true; } catch (x) { return false; } }
    static byteLength(v, enc) { return typeof v === "string" ? Buffer._fromString(v, enc).length : (toBytes(v) || []).length; }
    static concat(list, total) {
      const len = total === undefined ? list.reduce((n, b) => n + b.length, 0) : total;
      const out = Buffer.alloc(len);
      let p = 0;
      for (const b of list) { if (p >= len) break; out.set(b.subarray(0, len - p), p); p += b.length; }
      return out;
    }
    static compare(a, b) { return a.compare(b); }
    toString(enc, start = 0, end = this.length) {
      const view = this.subarray(start, end);
      const e = normEnc(enc);
      if (e === "utf8") return utf8Decode(view, false);
      if (e === "hex") return Array.from(view, (x) => x.toString(16).padStart(2, "0")).join("");
      if (e === "base64") return b64Encode(view, false);
      if (e === "base64url") return b64Encode(view, true);
      if (e === "latin1") return String.fromCharCode.apply(null, Array.from(view));
      if (e === "ascii") return String.fromCharCode.apply(null, Array.from(view, (x) => x & 127));
      let s = ""; for (let i = 0; i + 1 < view.length; i += 2) s += String.fromCharCode(view[i] | (view[i + 1] << 8)); return s;
    }
    toJSON() { return { type: "Buffer", data: Array.from(this) }; }
    equals(other) { if (this.length !== other.length) return false; for (let i = 0; i < this.length; i++) if (this[i] !== other[i]) return false; return true; }
    compare(other) { const n = Math.min(this.length, other.length); for (let i = 0; i < n; i++) if (this[i] !== other[i]) return this[i] < other[i] ? -1 : 1; return this.length === other.length ? 0 : this.length < other.length ? -1 : 1; }
    write(string, offset = 0, length, enc) {
      if (typeof offset === "string") { enc = offset; offset = 0; }
      else if (typeof length === "string") { enc = length; length = undefined; }
      const bytes = Buffer._fromString(string, enc);
      const n = Math.min(bytes.length, this.length - offset, length === undefined ? Infinity : length);
      this.set(bytes.subarray(0, n), offset);
      return n;
    }
    slice(start, end) { return this.subarray(start, end); }
    subarray(start, end) { const u = Uint8Array.prototype.subarray.call(this, start, end); return new Buffer(u.buffer, u.byteOffset, u.length); }
    _dv() { return new DataView(this.buffer, this.byteOffset, this.byteLength); }
  }
  Buffer.poolSize = 8192;
  const numeric = [["Int8", 1], ["UInt8", 1, "Uint8"], ["Int16", 2], ["UInt16", 2, "Uint16"], ["Int32", 4], ["UInt32", 4, "Uint32"],
    ["Float", 4, "Float32"], ["Double", 8, "Float64"], ["BigInt64", 8], ["BigUInt64", 8, "BigUint64"]];
  for (const [name, size, dvName] of numeric) {
    const dv = dvName || name;
    const ends = size === 1 ? [""] : ["LE", "BE"];
    for (const end of ends) {
      const little = end === "LE";
      Buffer.prototype["read" + name + end] = function (offset = 0) {
        if (offset < 0 || offset + size > this.length) throw new RangeError(`The value of "offset" is out of range. It must be >= 0 and <= ${this.length - size}. Received ${offset}`);
        return this._dv()["get" + dv](offset, little);
      };
      Buffer.prototype["write" + name + end] = function (value, offset = 0) {
        if (offset < 0 || offset + size > this.length) throw new RangeError(`The value of "offset" is out of range. It must be >= 0 and <= ${this.length - size}. Received ${offset}`);
        this._dv()["set" + dv](offset, value, little);
        return offset + size;
      };
      if (name.startsWith("UInt") || name.startsWith("BigUInt")) {
        const alias = name.replace("UInt", "Uint");
        Buffer.prototype["read" + alias + end] = Buffer.prototype["read" + name + end];
        Buffer.prototype["write" + alias + end] = Buffer.prototype["write" + name + end];
      }
    }
  }
  define("Buffer", Buffer);

  // ---- URL and URLSearchParams (WHATWG-like, for special and opaque URLs) ---------------------------
  const encodeQ = (s) => encodeURIComponent(s).replace(/%20/g, "+").replace(/[!'()~]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
  const decodeQ = (s) => { try { return decodeURIComponent(s.replace(/\+/g, " ")); } catch (e) { return s; } };
  class URLSearchParams {
    constructor(init = "") {
      this._list = [];
      this._url = null;
      if (typeof init === "string") this._parse(init);
      else if (init && typeof init[Symbol.iterator] === "function") for (const [k, v] of init) this._list.push([String(k), String(v)]);
      else if (init && typeof init === "object") for (const k of Object.keys(init)) this._list.push([k, String(init[k])]);
    }
    _parse(s) {
      this._list = [];
      s = String(s);
      if (s.startsWith("?")) s = s.slice(1);
      for (const part of s.split("&")) {
        if (!part) continue;
        const i = part.indexOf("=");
        this._list.push(i < 0 ? [decodeQ(part), ""] : [decodeQ(part.slice(0, i)), decodeQ(part.slice(i + 1))]);
      }
    }
    _update() { if (this._url) this._url._search = this._list.length ? "?" + this.toString() : ""; }
    get size() { return this._list.length; }
    append(k, v) { this._list.push([String(k), String(v)]); this._update(); }
    delete(k, v) { this._list = this._list.filter(([a, b]) => a !== String(k) || (v !== undefined && b !== String(v))); this._update(); }
    get(k) { const e = this._list.find(([a]) => a === String(k)); return e ? e[1] : null; }
    getAll(k) { return this._list.filter(([a]) => a === String(k)).map(([, b]) => b); }
    has(k, v) { return this._list.some(([a, b]) => a === String(k) && (v === undefined || b === String(v))); }
    set(k, v) {
      k = String(k);
      const i = this._list.findIndex(([a]) => a === k);
      if (i < 0) this._list.push([k, String(v)]);
      else { this._list[i][1] = String(v); this._list = this._list.filter(([a], j) => a !== k || j === i); }
      this._update();
    }
    sort() { this._list.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0)); this._update(); }
    forEach(fn, self) { for (const [k, v] of this._list) fn.call(self, v, k, this); }
    keys() { return this._list.map(([k]) => k)[Symbol.iterator](); }
    values() { return this._list.map(([, v]) => v)[Symbol.iterator](); }
    entries() { return this._list.map(([k, v]) => [k, v])[Symbol.iterator](); }
    [Symbol.iterator]() { return this.entries(); }
    toString() { return this._list.map(([k, v]) => encodeQ(k) + "=" + encodeQ(v)).join("&"); }
  }
  const SPECIAL = { "http:": "80", "https:": "443", "ws:": "80", "wss:": "443", "ftp:": "21", "file:": "" };
  const pathEncode = (s) => s.replace(/[^A-Za-z0-9\-._~!$&'()*+,;=:@\/%]/g, (c) => encodeURIComponent(c));
  function normalizePath(path) {
    const out = [];
    const segs = path.split("/");
    for (let i = 0; i < segs.length; i++) {
      const s = segs[i];
      if (s === "..") { if (out.length > 1) out.pop(); if (i === segs.length - 1) out.push(""); }
      else if (s === ".") { if (i === segs.length - 1) out.push(""); }
      else out.push(s);
    }
    const joined = out.join("/");
    return joined.startsWith("/") ? joined : "/" + joined;
  }
  class URL {
    constructor(input, base) {
      input = String(input).trim().replace(/[\t\n\r]/g, "");
      const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):(.*)$/.exec(input);
      if (m) this._parseAbsolute(m[1].toLowerCase() + ":", m[2]);
      else {
        if (base === undefined) throw new TypeError(`Invalid URL: ${input}`);
        const b = base instanceof URL ? base : new URL(base);
        this._resolve(input, b);
      }
      this._params = new URLSearchParams(this._search);
      this._params._url = this;
    }
    _parseAbsolute(protocol, rest) {
      this._protocol = protocol;
      this._username = ""; this._password = ""; this._hostname = ""; this._port = "";
      let hash = "", search = "";
      const h = rest.indexOf("#");
      if (h >= 0) { hash = rest.slice(h); rest = rest.slice(0, h); }
      const q = rest.indexOf("?");
      if (q >= 0) { search = rest.slice(q); rest = rest.slice(0, q); }
      const special = protocol in SPECIAL;
      if (special) rest = rest.replace(/\\/g, "/");
      if (rest.startsWith("//") || (special && protocol !== "file:")) {
        rest = rest.replace(/^\/*/, "");
        const slash = rest.indexOf("/");
        const authority = slash < 0 ? rest : rest.slice(0, slash);
        rest = slash < 0 ? "" : rest.slice(slash);
        this._setAuthority(authority);
        if (special && protocol !== "file:" && !this._hostname) throw new TypeError("Invalid URL");
        this._pathname = special ? normalizePath(pathEncode(rest || "/")) : pathEncode(rest);
        this._opaque = false;
      } else {
        this._pathname = special ? normalizePath(pathEncode(rest)) : pathEncode(rest);
        this._opaque = !special && !rest.startsWith("/");
      }
      this._search = search === "?" ? "" : search.replace(/[ "<>`#]/g, (c) => encodeURIComponent(c));
      this._hash = hash === "#" ? "" : hash.replace(/[ "<>`]/g, (c) => encodeURIComponent(c));
    }
    _setAuthority(authority) {
      const at = authority.lastIndexOf("@");
      if (at >= 0) {
        const cred = authority.slice(0, at);
        authority = authority.slice(at + 1);
        const c = cred.indexOf(":");
        this._username = c < 0 ? cred : cred.slice(0, c);
        this._password = c < 0 ? "" : cred.slice(c + 1);
      }
      const pm = /^(\[[^\]]*\]|[^:]*)(?::(\d*))?$/.exec(authority);
      if (!pm) throw new TypeError(`Invalid URL: bad host ${authority}`);
      if (/[\s<>^|%]/.test(pm[1]) && !pm[1].startsWith("[")) throw new TypeError(`Invalid URL: bad host ${pm[1]}`);
      this._hostname = pm[1].toLowerCase();
      const port = pm[2] || "";
      if (port && Number(port) > 65535) throw new TypeError("Invalid URL: port out of range");
      this._port = port === SPECIAL[this._protocol] ? "" : port.replace(/^0+(?=\d)/, "");
    }
    _resolve(input, b) {
      this._protocol = b._protocol; this._username = b._username; this._password = b._password;
      this._hostname = b._hostname; this._port = b._port; this._opaque = false;
      if (input.startsWith("//")) { this._parseAbsolute(b._protocol, input); return; }
      let hash = "", search = null;
      const h = input.indexOf("#");
      if (h >= 0) { hash = input.slice(h); input = input.slice(0, h); }
      const q = input.indexOf("?");
      if (q >= 0) { search = input.slice(q); input = input.slice(0, q); }
      if (input === "") { this._pathname = b._pathname; this._search = search === null ? b._search : (search === "?" ? "" : search); }
      else {
        const path = input.startsWith("/") ? input : b._pathname.replace(/[^/]*$/, "") + input;
        this._pathname = normalizePath(pathEncode(path));
        this._search = search === null || search === "?" ? "" : search;
      }
      this._hash = hash === "#" ? "" : hash;
    }
    get protocol() { return this._protocol; }
    set protocol(v) { v = String(v).replace(/:.*$/, "").toLowerCase() + ":"; if (/^[a-z][a-z0-9+.-]*:$/.test(v)) this._protocol = v; }
    get username() { return this._username; }
    set username(v) { this._username = encodeURIComponent(String(v)); }
    get password() { return this._password; }
    set password(v) { this._password = encodeURIComponent(String(v)); }
    get hostname() { return this._hostname; }
    set hostname(v) { this._hostname = String(v).toLowerCase(); }
    get port() { return this._port; }
    set port(v) { v = String(v); this._port = v === SPECIAL[this._protocol] ? "" : v; }
    get host() { return this._hostname + (this._port ? ":" + this._port : ""); }
    set host(v) { this._setAuthority(String(v)); }
    get origin() { return this._protocol in SPECIAL && this._protocol !== "file:" ? `${this._protocol}//${this.host}` : "null"; }
    get pathname() { return this._pathname; }
    set pathname(v) { v = String(v); this._pathname = normalizePath(pathEncode(v.startsWith("/") ? v : "/" + v)); }
    get search() { return this._search; }
    set search(v) { v = String(v); this._search = v === "" || v === "?" ? "" : (v.startsWith("?") ? v : "?" + v); this._params._parse(this._search); }
    get searchParams() { return this._params; }
    get hash() { return this._hash; }
    set hash(v) { v = String(v); this._hash = v === "" || v === "#" ? "" : (v.startsWith("#") ? v : "#" + v); }
    get href() {
      const auth = this._username || this._password ? `${this._username}${this._password ? ":" + this._password : ""}@` : "";
      const slashes = this._opaque ? "" : (this._hostname || this._protocol in SPECIAL ? "//" : "");
      return `${this._protocol}${slashes}${auth}${this.host}${this._pathname}${this._search}${this._hash}`;
    }
    set href(v) { const u = new URL(v); Object.assign(this, u); this._params = new URLSearchParams(this._search); this._params._url = this; }
    toString() { return this.href; }
    toJSON() { return this.href; }
    static canParse(u, b) { try { new URL(u, b); return true; } catch (e) { return false; } }
    static parse(u, b) { try { return new URL(u, b); } catch (e) { return null; } }
  }
  define("URL", URL);
  define("URLSearchParams", URLSearchParams);

  // ---- require (built-in modules only; SiYuan's file loader is not offered: [better] §4) ------------
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

  // =====================================================================================================
  // The `siyuan` global (spec §3). Built by __kplug.init(config) before kernel.js runs.
  // =====================================================================================================
  const rpcMethods = new Map();  // name -> {fn, descriptions}
  const tools = new Map();       // kind + "\0" + local name -> handler
  let siyuan = null;

  // Over bytes, or over text the host already decoded (valid UTF-8 crosses the boundary as a string, which
  // is much cheaper than base64); the other form is derived on first use.
  function dataObject(bytes, text) {
    const getText = () => (text !== undefined ? text : (text = utf8Decode(bytes, false)));
    const getBytes = () => bytes || (bytes = utf8Encode(text));
    return {
      text: () => Promise.resolve().then(getText),
      json: () => Promise.resolve().then(() => {
        try { return JSON.parse(getText()); } catch (e) { throw goError(e.message); }
      }),
      buffer: () => Promise.resolve().then(() => Buffer.from(getBytes())),
      arrayBuffer: () => Promise.resolve().then(() => getBytes().slice().buffer),
    };
  }
  // a host payload {text} or {base64}
  const dataFromHost = (p) => (typeof p.text === "string" ? dataObject(null, p.text) : dataObject(b64Decode(p.base64)));
  K.dataObject = (b64) => dataObject(b64Decode(b64));

  // JS -> JSON the way SiYuan's host exports values (§3.0), [better]: clear errors for what cannot encode
  function exportValue(v, seen = new Set()) {
    if (v === undefined || v === null) return null;
    switch (typeof v) {
      case "number":
        if (!Number.isFinite(v)) throw new TypeError(`cannot encode ${v} as JSON`);
        return v;
      case "bigint": return Number(v);
      case "string": case "boolean": return v;
      case "function": throw new TypeError("cannot encode a function as JSON");
      case "symbol": throw new TypeError("cannot encode a symbol as JSON");
    }
    if (v instanceof Date) return v.toISOString();
    if (v instanceof Uint8Array) return b64Encode(v, false);
    if (v instanceof ArrayBuffer) return {};
    if (typeof v.toJSON === "function" && !(v instanceof Buffer)) return exportValue(v.toJSON(), seen);
    if (seen.has(v)) throw new TypeError("cannot encode a cyclic structure as JSON");
    seen.add(v);
    let out;
    if (Array.isArray(v)) out = v.map((x) => exportValue(x, seen));
    else if (v instanceof Map) { out = {}; for (const [k, x] of v) putOwn(out, String(k), exportValue(x, seen)); }
    else { out = {}; for (const k of Object.keys(v)) putOwn(out, k, exportValue(v[k], seen)); }
    seen.delete(v);
    return out;
  }
  // a "__proto__" key (JSON.parse makes it an own property) must stay a key, not become the copy's prototype
  function putOwn(o, k, x) {
    if (k === "__proto__") Object.defineProperty(o, k, { value: x, writable: true, enumerable: true, configurable: true });
    else o[k] = x;
  }
  const toText = (x) => {
    if (typeof x === "string") return x;
    if (x === undefined || x === null) return String(x);
    try {
      const s = JSON.stringify(x);
      if (s !== undefined) return s;
      return typeof x === "function" ? "null" : String(x); // Go encodes an exported function as null
    } catch (e) { return String(x); }
  };

  function makeEvent() {
    const event = {
      handler: null,
      emit(...args) {
        if (args.length < 2) return reject("topic and event required");
        const topic = String(args[0]);
        if (!topic) return reject("topic required");
        let data;
        try { data = structuredClone(args[1]); } catch (e) { data = args[1]; }
        return Promise.resolve().then(() => {
          if (topic === "runtime") deliver(data);
          else if (topic === "plugin") log("debug", `event on topic plugin: ${toText(data)}`);
        });
      },
    };
    return Object.seal(event);
  }
  function deliver(msg) {
    const ev = siyuan && siyuan.event;
    const h = ev && ev.handler;
    if (typeof h !== "function") return;
    try {
      const r = h.call(ev, msg);
      if (r && typeof r.then === "function") r.then(undefined, (e) => log("error", `siyuan.event.handler rejected: ${inspect(e)}`));
    } catch (e) {
      log("error", `siyuan.event.handler threw: ${inspect(e)}`);
    }
  }

  function makeLogger() {
    const make = (level) => (...args) => { log(level, args.map(toText).join(" ")); return undefined; };
    return Object.freeze({ trace: make("trace"), debug: make("debug"), info: make("info"), warn: make("warn"), error: make("error") });
  }

  function makeStorage() {
    // get and put settle through one reaction each (hostAsync's catch plus a then would be two): every job
    // counts in the fixed cost of a put (docs/adr/0003-host-benchmark.md)
    const hostFailed = (e) => { throw goError(e && e.message !== undefined ? e.message : e); };
    const toUndefined = () => undefined;
    const watcher = Object.freeze({
      add(path) {
        if (typeof path !== "string") return reject("path required");
        return hostAsync("watcher_add", path).then(() => undefined);
      },
      remove(path) {
        if (typeof path !== "string") return reject("path required");
        return hostAsync("watcher_remove", path).then(() => undefined);
      },
    });
    return Object.freeze({
      get(path) {
        if (typeof path !== "string") return reject("path required");
        return callAsync("storage_get", path).then(dataFromHost, hostFailed);
      },
      put(...args) {
        if (args.length < 2) return reject("path and content required");
        const value = args[1];
        const bytes = typeof value === "string" ? null : toBytes(value); // [better] binary content is written as bytes
        const content = bytes ? b64Encode(bytes, false) : String(value);
        return callAsync("storage_put", String(args[0]), content, !!bytes).then(toUndefined, hostFailed);
      },
      remove(...args) {
        if (args.length < 1) return reject("path required");
        return hostAsync("storage_remove", String(args[0])).then(() => undefined);
      },
      list(...args) {
        if (args.length < 1) return reject("path required");
        return hostAsync("storage_list", String(args[0]));
      },
      watcher,
    });
  }

  // Bound methods and tools are mirrored in the host, outside the sandbox's memory limit: a plugin may have this
  // many of each.
  const MAX_BOUND = 10000;

  function makeRpc() {
    return Object.freeze({
      bind(...args) {
        if (args.length < 2) return reject("method name and function required");
        if (typeof args[0] !== "string") return reject("first argument must be method name string");
        if (typeof args[1] !== "function") return reject("second argument must be a function");
        if (!rpcMethods.has(args[0]) && rpcMethods.size >= MAX_BOUND) {
          return reject(`too many methods: ${MAX_BOUND} are bound; unbind some before binding more`);
        }
        const descriptions = args.slice(2).map((d) => String(d));
        rpcMethods.set(args[0], { fn: args[1], descriptions });
        call("rpc_bind", args[0], descriptions);
        return Promise.resolve(undefined);
      },
      unbind(...args) {
        if (args.length < 1) return reject("method name required");
        if (typeof args[0] !== "string") return reject("first argument must be method name string");
        rpcMethods.delete(args[0]);
        call("rpc_unbind", args[0]);
        return Promise.resolve(undefined);
      },
      broadcast(...args) {
        if (args.length < 1) return reject("method required");
        if (typeof args[0] !== "string") return reject("first argument must be method name string");
        let params;
        try { params = args[1] === undefined ? null : exportValue(args[1]); } catch (e) { return reject(e.message); }
        return hostAsync("rpc_broadcast", args[0], args[1] !== undefined, params).then(() => undefined);
      },
    });
  }

  const sanitize = (s) => String(s).replace(/[^0-9A-Za-z]/g, "_");
  function hash12(text) {
    // FNV-1a 64-bit over UTF-8, hex: stable, short, no host call needed
    let h = 0xcbf29ce484222325n;
    for (const b of utf8Encode(text)) { h ^= BigInt(b); h = (h * 0x100000001b3n) & 0xffffffffffffffffn; }
    return h.toString(16).padStart(16, "0").slice(0, 12);
  }
  function makeMcp(pluginName) {
    return Object.freeze({
      registerTool(...args) {
        if (args.length < 3) return reject("registerTool requires 3 arguments: name, config, handler");
        const [name, config, handler] = args;
        if (typeof name !== "string") return reject("first argument must be a tool name string");
        if (config === null || typeof config !== "object") return reject("second argument must be a config object");
        if (typeof handler !== "function") return reject("third argument must be a handler function");
        if (typeof config.description !== "string") return reject("config.description is required and must be a string");
        if (config.inputSchema === undefined || config.inputSchema === null) return reject("config.inputSchema is required");
        if (config.readOnly !== undefined && typeof config.readOnly !== "boolean") return reject("config.readOnly must be a boolean");
        const record = {
          name: `plugin__${sanitize(pluginName)}__${sanitize(name)}`,
          title: typeof config.title === "string" ? config.title : "",
          description: config.description,
          readOnly: !!config.readOnly,
          inputSchema: exportValue(config.inputSchema),
          outputSchema: config.outputSchema === undefined ? null : exportValue(config.outputSchema),
        };
        if (!tools.has("mcp\0" + name) && tools.size >= MAX_BOUND) return reject(`too many tools: ${MAX_BOUND} are registered`);
        try { tools.set("mcp\0" + name, handler); return Promise.resolve(call("tool_register", "mcp", name, record)); }
        catch (e) { tools.delete("mcp\0" + name); return reject(e.message); }
      },
      unregisterTool(...args) {
        if (args.length < 1) return reject("unregisterTool requires 1 argument: name");
        if (typeof args[0] !== "string") return reject("first argument must be a tool name string");
        tools.delete("mcp\0" + args[0]);
        call("tool_unregister", "mcp", args[0]);
        return Promise.resolve(undefined);
      },
    });
  }
  function makeAgent(pluginName) {
    return Object.freeze({
      registerCapability(...args) {
        if (args.length < 3) return reject("registerCapability requires 3 arguments: name, config, handler");
        const [name, config, handler] = args;
        if (typeof name !== "string") return reject("first argument must be a capability name string");
        if (config === null || typeof config !== "object") return reject("second argument must be a config object");
        if (typeof handler !== "function") return reject("third argument must be a handler function");
        if (typeof config.description !== "string") return reject("config.description is required and must be a string");
        if (config.inputSchema === undefined || config.inputSchema === null) return reject("config.inputSchema is required");
        const cfg = exportValue(config);
        const id = `${pluginName}:${name}`;
        const record = Object.assign({ id }, cfg, {
          name: `plugin__${sanitize(pluginName)}__${sanitize(name)}__${hash12(pluginName + "\0" + name)}`,
        });
        if (!tools.has("agent\0" + name) && tools.size >= MAX_BOUND) return reject(`too many tools: ${MAX_BOUND} are registered`);
        try { tools.set("agent\0" + name, handler); return Promise.resolve(call("tool_register", "agent", name, record)); }
        catch (e) { tools.delete("agent\0" + name); return reject(e.message); }
      },
      unregisterCapability(...args) {
        if (args.length < 1) return reject("unregisterCapability requires 1 argument: name");
        if (typeof args[0] !== "string") return reject("first argument must be a capability name string");
        tools.delete("agent\0" + args[0]);
        call("tool_unregister", "agent", args[0]);
        return Promise.resolve(undefined);
      },
    });
  }

  function checkPath(path) {
    if (typeof path !== "string") return "path required";
    if (!path.startsWith("/")) return "path must start with /";
    return null;
  }
  // siyuan.client.socket (§3.7): the host dials and reads on its loop (client_socket.py) and posts every frame
  // here as __kplug.socketEvent(id, event). [better] browser close semantics: one onclose, onerror on failure.
  const clientSockets = new Map();  // id -> event sink of an opened socket
  let nextSocketId = 1;
  function makeSocket(path, protocols) {
    const url = call("socket_url", path);
    const id = nextSocketId++;
    const protos = protocols === undefined || protocols === null ? [] :
      (Array.isArray(protocols) ? protocols.map(String) : [String(protocols)]);
    let readyState = 0, protocol = "", opening = null, queued = [];
    const ws = {
      binaryType: "arraybuffer",
      get bufferedAmount() { return 0; },
      extensions: "",
      get protocol() { return protocol; },
      get readyState() { return readyState; },
      url,
      onopen: null, onmessage: null, onping: null, onpong: null, onclose: null, onerror: null,
      open() {
        if (readyState === 1) return Promise.resolve(undefined);
        if (readyState === 2) return reject("WebSocket is closing");
        if (readyState === 3) return reject("WebSocket is closed");
        if (!opening) {
          clientSockets.set(id, sink);
          opening = hostAsync("socket_open", id, path, protos).then((r) => {
            if (readyState !== 0) throw goError("context canceled");
            protocol = r.protocol; readyState = 1;
            fire("open", { type: "open" });
            const early = queued; queued = [];
            early.forEach(handle);
          }, (e) => {
            readyState = 3; clientSockets.delete(id);
            fire("error", { type: "error", error: e });
            throw e;
          });
        }
        return opening;
      },
      send(data) {
        if (readyState === 0) return reject("WebSocket not yet connected");
        if (readyState !== 1) return reject(`WebSocket is not open (state: ${readyState})`);
        if (data instanceof ArrayBuffer) return hostAsync("socket_send", id, b64Encode(new Uint8Array(data), false), true);
        return hostAsync("socket_send", id, String(data), false);
      },
      ping(data) { return readyState === 1 ? hostAsync("socket_ping", id, data === undefined ? "" : String(data)) : reject("WebSocket not yet connected"); },
      pong(data) { return readyState === 1 ? hostAsync("socket_pong", id, data === undefined ? "" : String(data)) : reject("WebSocket not yet connected"); },
      close(code = 1000, reason = "") {
        if (readyState === 1) { readyState = 2; return hostAsync("socket_close", id, Number(code), String(reason)); }
        if (readyState === 0) {
          readyState = 3; clientSockets.delete(id);
          return opening ? hostAsync("socket_close", id, Number(code), String(reason)) : Promise.resolve(undefined);
        }
        return Promise.resolve(undefined);
      },
    };
    Object.seal(ws);
    function fire(name, ev) {
      const h = ws["on" + name];
      if (typeof h !== "function") return;
      try { h.call(ws, ev); } catch (e) { log("error", `siyuan.client.socket on${name} threw: ${inspect(e)}`); }
    }
    function handle(ev) {
      switch (ev.type) {
        case "text": fire("message", { type: "text", data: ev.data }); break;
        case "binary": fire("message", { type: "binary", data: b64Decode(ev.data).buffer }); break;
        case "error": fire("error", { type: "error", error: goError(ev.error) }); break;
        case "close":
          readyState = 3; clientSockets.delete(id);
          fire("close", { type: "close", code: ev.code, reason: ev.reason, wasClean: ev.wasClean });
          break;
      }
    }
    function sink(ev) { if (readyState === 0) queued.push(ev); else handle(ev); }
    return ws;
  }
  // siyuan.client.event (§3.7): the host subscribes on its loop (client_events.py) and posts every event here as
  // __kplug.eventSourceEvent(id, event). [better] onopen on HTTP 200, onclose once at the end (clean EOF,
  // failure or close()), onerror only when the subscription fails; close() stops the host task at once.
  const eventSources = new Map();  // id -> event sink of a subscription
  let nextEventSourceId = 1;
  function makeEventSource(path) {
    const id = nextEventSourceId++;
    let readyState = 0;
    const es = {
      get readyState() { return readyState; },
      url: path,
      onopen: null, onmessage: null, onclose: null, onerror: null,
      close() {
        if (readyState === 2) return;
        readyState = 2; eventSources.delete(id);
        call("event_close", id);
        Promise.resolve().then(() => fire("close", { type: "close" }));
      },
    };
    Object.seal(es);
    function fire(name, ev) {
      const h = es["on" + name];
      if (typeof h !== "function") return;
      try { h.call(es, ev); } catch (e) { log("error", `siyuan.client.event on${name} threw: ${inspect(e)}`); }
    }
    eventSources.set(id, (ev) => {
      switch (ev.type) {
        case "open": readyState = 1; fire("open", { type: "open" }); break;
        case "connecting": readyState = 0; break;
        case "message": fire("message", { type: ev.event, data: ev.data, lastEventId: ev.lastEventId }); break;
        case "error": fire("error", { type: "error", error: goError(ev.error) }); break;
        case "close": readyState = 2; eventSources.delete(id); fire("close", { type: "close" }); break;
      }
    });
    try { call("event_open", id, path); } catch (e) { eventSources.delete(id); throw e; }
    return es;
  }
  function makeClient() {
    return Object.freeze({
      fetch(path, init) {
        const bad = checkPath(path);
        if (bad) return reject(bad);
        init = init || {};
        const req = { method: typeof init.method === "string" ? init.method : "GET", headers: {} };
        if (init.headers && typeof init.headers === "object") {
          for (const k of Object.keys(init.headers)) req.headers[k] = String(init.headers[k]);
        }
        if (typeof init.body === "string") req.body = init.body;
        else if (init.body instanceof ArrayBuffer) { req.body = b64Encode(new Uint8Array(init.body), false); req.bodyIsBase64 = true; }
        return hostAsync("fetch", path, req).then((r) => {
          return Object.assign({ url: r.url, ok: r.status >= 200 && r.status < 300, status: r.status, statusText: r.statusText, headers: r.headers }, dataFromHost(r.body));
        });
      },
      socket(path, protocols) {
        const bad = checkPath(path);
        if (bad) return reject(bad);
        return Promise.resolve().then(() => makeSocket(path, protocols)).catch((e) => { throw goError(e.message); });
      },
      event(path) {
        const bad = checkPath(path);
        if (bad) return reject(bad);
        return Promise.resolve().then(() => makeEventSource(path)).catch((e) => { throw goError(e.message); });
      },
    });
  }

  function makeServer() {
    const slot = () => Object.seal({ handler: null });
    return Object.freeze({ private: Object.freeze({ http: slot(), ws: slot(), es: slot() }) });
  }

  const makeResolver = (kind) => ({ resolve: (template) => (typeof template === "string" ? call("resolve", kind, template) : "") });

  K.init = (config) => {
    const lifecycle = Object.seal({ onload: null, onloaded: null, onrunning: null, onunload: null });
    const plugin = Object.freeze({
      name: config.name,
      version: config.version,
      displayName: config.displayName,
      platform: config.platform,
      i18n: config.i18n === undefined ? null : config.i18n,
      lifecycle,
    });
    siyuan = Object.freeze({
      plugin,
      event: makeEvent(),
      logger: makeLogger(),
      storage: makeStorage(),
      rpc: makeRpc(),
      mcp: makeMcp(config.name),
      agent: makeAgent(config.name),
      client: makeClient(),
      server: makeServer(),
      secrets: Object.freeze(makeResolver("secrets")),
      vars: Object.freeze(makeResolver("vars")),
    });
    // [better] a plugin cannot replace the binding (host lookups use the captured object anyway). It stays
    // configurable, and re-assigning the same object is accepted, because real bundles start with
    // `const siyuan = globalThis.siyuan` (a SyntaxError over a non-configurable global) or, compiled to ES5 in
    // strict mode, `var siyuan = globalThis.siyuan` (a TypeError over a read-only one).
    const current = siyuan;
    Object.defineProperty(G, "siyuan", {
      get: () => current,
      set: (value) => {
        if (value !== current) throw new TypeError("siyuan is read-only: the host keeps the object it created");
      },
      configurable: true,
      enumerable: true,
    });
  };

  K.hook = (name) => {
    const fn = siyuan.plugin.lifecycle[name];
    if (typeof fn !== "function") return { ok: true, missing: true };
    const r = fn.call(siyuan.plugin.lifecycle);
    return r instanceof Promise ? r.then(() => ({ ok: true })) : { ok: true };
  };

  function notFound(method) {
    const e = new Error(`method [${method}] not found`);
    e.name = "KplugMethodNotFound";
    return e;
  }
  K.rpc = (method, params, hasParams) => {
    const entry = rpcMethods.get(method);
    if (!entry) throw notFound(method);
    let r;
    if (!hasParams) r = entry.fn.call(G);
    else if (Array.isArray(params)) r = entry.fn.apply(G, params);
    else r = entry.fn.call(G, params);
    return r instanceof Promise ? r.then((v) => exportValue(v)) : exportValue(r);
  };
  K.methods = () => Array.from(rpcMethods, ([name, m]) => ({ name, descriptions: m.descriptions }));
  K.event = (type, detail) => deliver({ id: crypto.randomUUID(), type, detail: detail === undefined ? null : detail });
  K.socketEvent = (id, ev) => { const sink = clientSockets.get(id); if (sink) sink(ev); };
  K.eventSourceEvent = (id, ev) => { const sink = eventSources.get(id); if (sink) sink(ev); };
  K.tool = (kind, name, args) => {
    const handler = tools.get(kind + "\0" + name);
    if (!handler) throw new Error(`tool [${name}] is not registered`);
    const marshal = (v) => {
      try { return exportValue(v); } catch (e) { const err = new Error(e.message); err.name = "KplugMarshalError"; throw err; }
    };
    const r = handler.call(G, args);
    return r instanceof Promise ? r.then(marshal) : marshal(r);
  };

  // server.private ws slot (§3.8.3): request.port over the accepted connection (host half: private_ports.py).
  // Frames that arrive before the read loop starts wait here; [better] close semantics as siyuan.client.socket.
  const serverPorts = new Map();  // port id -> event sink
  function makeServerSocket(id) {
    let readyState = 0, started = false, queued = [];
    const port = {
      binaryType: "arraybuffer",
      get bufferedAmount() { return 0; },
      get protocol() { return ""; },
      get readyState() { return readyState; },
      onopen: null, onmessage: null, onping: null, onpong: null, onclose: null, onerror: null,
      open() { start(); return Promise.resolve(undefined); },
      send(data) {
        if (readyState > 1) return reject(`WebSocket is not open (state: ${readyState})`);
        if (data instanceof ArrayBuffer) return hostAsync("port_send", id, b64Encode(new Uint8Array(data), false), true);
        return hostAsync("port_send", id, data === undefined ? "" : String(data), false);
      },
      ping(data) { return readyState > 1 ? reject(`WebSocket is not open (state: ${readyState})`) : hostAsync("port_ping", id, data === undefined ? "" : String(data)); },
      pong(data) { return readyState > 1 ? reject(`WebSocket is not open (state: ${readyState})`) : hostAsync("port_pong", id, data === undefined ? "" : String(data)); },
      close(code = 1000, reason = "") {
        if (readyState > 1) return Promise.resolve(undefined);
        readyState = 2;
        return hostAsync("port_close", id, Number(code), String(reason));
      },
    };
    Object.seal(port);
    function fire(name, ev) {
      const h = port["on" + name];
      if (typeof h !== "function") return;
      try { h.call(port, ev); } catch (e) { log("error", `siyuan.server.private.ws port on${name} threw: ${inspect(e)}`); }
    }
    function handle(ev) {
      switch (ev.type) {
        case "text": fire("message", { type: "text", data: ev.data }); break;
        case "binary": fire("message", { type: "binary", data: b64Decode(ev.data).buffer }); break;
        case "ping": case "pong": fire(ev.type, { type: ev.type, data: ev.data }); break;
        case "error": fire("error", { type: "error", error: goError(ev.error) }); break;
        case "close":
          readyState = 3; serverPorts.delete(id);
          fire("close", { type: "close", code: ev.code, reason: ev.reason, wasClean: ev.wasClean });
          break;
      }
    }
    function start() {
      if (started) return;
      started = true;
      if (readyState === 0) readyState = 1;
      fire("open", { type: "open" });
      const early = queued; queued = [];
      early.forEach(handle);
    }
    serverPorts.set(id, (ev) => { if (!started) queued.push(ev); else handle(ev); });
    return { port, start };
  }
  // server.private es slot (§3.8.4): send() is synchronous; the host encodes (gin-contrib/sse) and flushes
  function makeServerEvents(id) {
    let closed = false;
    const port = {
      onopen: null, onclose: null,
      send(event) {
        if (event === null || typeof event !== "object") throw goError("invalid event object");
        if (event.data === undefined) throw goError("event.data is required");
        const d = event.data;
        const bytes = d instanceof Uint8Array ? d : null;
        const data = bytes ? { text: utf8Decode(bytes, false) } :
          d !== null && typeof d === "object" ? { json: exportValue(d) } : { text: d === null ? "<nil>" : String(d) };
        const out = { data };
        if (typeof event.event === "string") out.event = event.event;
        if (typeof event.id === "string") out.id = event.id;
        if (typeof event.retry === "number") out.retry = event.retry;
        if (!closed) call("port_sse_send", id, out);
        return undefined;
      },
      close() { if (!closed) { closed = true; call("port_sse_close", id); } },
    };
    Object.seal(port);
    function fire(name, ev) {
      const h = port["on" + name];
      if (typeof h !== "function") return;
      try { h.call(port, ev); } catch (e) { log("error", `siyuan.server.private.es port on${name} threw: ${inspect(e)}`); }
    }
    serverPorts.set(id, (ev) => { if (ev.type === "close") { closed = true; serverPorts.delete(id); fire("close", { type: "close" }); } });
    return { port, start: () => fire("open", { type: "open" }) };
  }
  K.portEvent = (id, ev) => { const sink = serverPorts.get(id); if (sink) sink(ev); };

  // server.private HTTP slot (§3.8): request JSON from the host, response back as JSON (raw data as base64)
  K.http = (slotName, req) => {
    const slotObj = siyuan.server.private[slotName];
    const label = `siyuan.server[private][${slotName}].handler`;
    if (!slotObj || slotObj.handler === null || slotObj.handler === undefined) throw new Error(`${label} is not set`);
    if (typeof slotObj.handler !== "function") throw new Error(`${label} is not a function`);
    const body = req.request.body || {};
    if (body.dataBase64 !== undefined) body.data = dataObject(b64Decode(body.dataBase64));
    delete body.dataBase64;
    if (body.form && body.form.files) {
      for (const field of Object.keys(body.form.files)) {
        for (const f of body.form.files[field]) { f.data = dataObject(b64Decode(f.dataBase64 || "")); delete f.dataBase64; }
      }
    }
    if (slotName !== "http") {
      // the ws/es port: after the handler succeeds, the read loop starts (ws) / onopen fires (es)
      const id = req.port;
      const made = slotName === "ws" ? makeServerSocket(id) : makeServerEvents(id);
      req.port = made.port;
      const started = () => { made.start(); return null; };
      const failed = (e) => { serverPorts.delete(id); throw e; };
      let r2;
      try { r2 = slotObj.handler.call(slotObj, req); } catch (e) { failed(e); }
      return r2 instanceof Promise ? r2.then(started, failed) : started();
    }
    const r = slotObj.handler.call(slotObj, req);
    const finish = (res) => {
      if (res === null || typeof res !== "object") throw new Error("invalid response format");
      const out = exportValue(Object.assign({}, res, { body: undefined }));
      const b = res.body;
      if (b && typeof b === "object") {
        out.body = {};
        for (const kind of Object.keys(b)) {
          if (kind === "raw" && b.raw) {
            const bytes = toBytes(b.raw.data);
            out.body.raw = { contentType: String(b.raw.contentType || "application/octet-stream"), base64: true,
              data: b64Encode(bytes || utf8Encode(String(b.raw.data === undefined ? "" : b.raw.data)), false) };
          } else out.body[kind] = exportValue(b[kind]);
        }
      } else out.body = null;
      return out;
    };
    return r instanceof Promise ? r.then(finish) : finish(r);
  };

  // dev mode: run code in the plugin's global scope and return its (JSON-exported) value
  K.devEval = (code) => {
    const r = (0, eval)(code);
    return r instanceof Promise ? r.then((v) => exportValue(v)) : exportValue(r);
  };

  Object.freeze(K);
})(globalThis);
