// console (goja_nodejs semantics: util.format, levels) and siyuan.logger (spec §3.3); both write through the `log` op.
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
// text past the host's longest log line (which the log op answers with) is cut here, before it crosses the boundary
let logLineMax = Infinity;
const sizeText = (n) => (n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KiB`
  : n < 1073741824 ? `${(n / 1048576).toFixed(1)} MiB` : `${(n / 1073741824).toFixed(1)} GiB`);
const log = (level, text) => {
  if (typeof text === "string" && text.length > logLineMax) {
    const room = Math.max(1, logLineMax - 64); // the marker fits in the line too
    const code = text.charCodeAt(room - 1);
    const keep = code >= 0xd800 && code <= 0xdbff ? room - 1 : room; // not half a surrogate pair
    text = `${text.slice(0, keep)}… [truncated ${sizeText(text.length - keep)}]`;
  }
  const max = call("log", level, text);
  if (typeof max === "number" && max > 0) logLineMax = max;
};
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

// a logger argument as SiYuan's logger writes it: strings as they are, other values as JSON
const toText = (x) => {
  if (typeof x === "string") return x;
  if (x === undefined || x === null) return String(x);
  try {
    const s = JSON.stringify(x);
    if (s !== undefined) return s;
    return typeof x === "function" ? "null" : String(x); // Go encodes an exported function as null
  } catch (e) { return String(x); }
};
function makeLogger() {
  const make = (level) => (...args) => { log(level, args.map(toText).join(" ")); return undefined; };
  return Object.freeze({ trace: make("trace"), debug: make("debug"), info: make("info"), warn: make("warn"), error: make("error") });
}
