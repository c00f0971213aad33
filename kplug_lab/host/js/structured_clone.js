// structuredClone (the subset a plugin's data needs: no transfer list).
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
