// WHATWG Streams, shared pieces: promise helpers, the queue-with-sizes, queuing strategies and their extraction.
// The stream classes keep their internal slots in WeakMaps (not properties), so a plugin cannot read or forge them;
// the abstract operations of the standard (https://streams.spec.whatwg.org/) work on those records.
const deferred = () => {
  const d = {};
  d.promise = new Promise((resolve, reject) => { d.resolve = resolve; d.reject = reject; });
  return d;
};
const noop = () => {};
const handled = (p) => { p.then(noop, noop); return p; };
const resolved = (v) => Promise.resolve(v);
const rejected = (e) => handled(Promise.reject(e));
// call `method` of `obj` (if any) and turn a throw into a rejection, as the standard's "promise call"
const promiseCall = (fn, thisArg, ...args) => {
  if (fn === undefined) return resolved(undefined);
  try { return Promise.resolve(fn.apply(thisArg, args)); } catch (e) { return Promise.reject(e); }
};
const sourceMethod = (obj, name) => {
  const fn = obj == null ? undefined : obj[name];
  if (fn !== undefined && typeof fn !== "function") throw new TypeError(`${name} must be a function`);
  return fn;
};
const slotOf = (map, x, what) => {
  const s = typeof x === "object" && x !== null ? map.get(x) : undefined;
  if (s === undefined) throw new TypeError(`Illegal invocation: not a ${what}`);
  return s;
};

// A FIFO of {value, size} with a running total; the head index keeps dequeueing O(1).
class SizedQueue {
  constructor() { this.reset(); }
  reset() { this.items = []; this.head = 0; this.total = 0; }
  get length() { return this.items.length - this.head; }
  push(value, size) {
    if (typeof size !== "number" || Number.isNaN(size) || size < 0 || size === Infinity) {
      throw new RangeError("The chunk size must be a finite, non-negative number");
    }
    this.items.push({ value, size });
    this.total += size;
  }
  peek() { return this.items[this.head].value; }
  shift() {
    const item = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head > 1024 && this.head * 2 > this.items.length) { this.items = this.items.slice(this.head); this.head = 0; }
    this.total -= item.size;
    if (this.total < 0) this.total = 0;
    return item.value;
  }
}

function extractHighWaterMark(strategy, fallback) {
  const hwm = strategy == null ? undefined : strategy.highWaterMark;
  if (hwm === undefined) return fallback;
  const n = Number(hwm);
  if (Number.isNaN(n) || n < 0) throw new RangeError("highWaterMark must be a non-negative number");
  return n;
}
function extractSizeAlgorithm(strategy) {
  const size = strategy == null ? undefined : strategy.size;
  if (size === undefined) return () => 1;
  if (typeof size !== "function") throw new TypeError("size must be a function");
  return (chunk) => size(chunk);
}
function checkDictionary(value, what) {
  if (value !== undefined && value !== null && typeof value !== "object" && typeof value !== "function") {
    throw new TypeError(`${what} must be an object`);
  }
  return value == null ? {} : value;
}

const byteLengthSize = function size(chunk) { return chunk.byteLength; };
const countSize = function size() { return 1; };
class ByteLengthQueuingStrategy {
  #hwm;
  constructor(init) {
    if (init === null || typeof init !== "object" || init.highWaterMark === undefined) {
      throw new TypeError("ByteLengthQueuingStrategy needs { highWaterMark }");
    }
    this.#hwm = Number(init.highWaterMark);
  }
  get highWaterMark() { return this.#hwm; }
  get size() { return byteLengthSize; }
}
class CountQueuingStrategy {
  #hwm;
  constructor(init) {
    if (init === null || typeof init !== "object" || init.highWaterMark === undefined) {
      throw new TypeError("CountQueuingStrategy needs { highWaterMark }");
    }
    this.#hwm = Number(init.highWaterMark);
  }
  get highWaterMark() { return this.#hwm; }
  get size() { return countSize; }
}
for (const C of [ByteLengthQueuingStrategy, CountQueuingStrategy]) {
  Object.defineProperty(C.prototype, Symbol.toStringTag, { value: C.name, configurable: true });
}
define("ByteLengthQueuingStrategy", ByteLengthQueuingStrategy);
define("CountQueuingStrategy", CountQueuingStrategy);
