// Values between the plugin and the host: data objects (the .text() / .json() / .buffer() / .arrayBuffer() /
// .bytes() / .blob() bodies of storage, fetch and private requests) and exportValue, JS -> JSON the way SiYuan's
// host exports.

// Over bytes, or over text the host already decoded (valid UTF-8 crosses the boundary as a string, which
// is much cheaper than base64); the other form is derived on first use. `type` is the MIME type blob() gets
// (SiYuan: "" for storage, the Content-Type of a request body or an uploaded part).
function dataObject(bytes, text, type = "") {
  const getText = () => (text !== undefined ? text : (text = utf8Decode(bytes, false)));
  const getBytes = () => bytes || (bytes = utf8Encode(text));
  return {
    text: () => Promise.resolve().then(getText),
    json: () => Promise.resolve().then(() => {
      try { return JSON.parse(getText()); } catch (e) { throw goError(e.message); }
    }),
    buffer: () => Promise.resolve().then(() => Buffer.from(getBytes())),
    arrayBuffer: () => Promise.resolve().then(() => getBytes().slice().buffer),
    bytes: () => Promise.resolve().then(() => getBytes().slice()),
    blob: () => Promise.resolve().then(() => blobOf(getBytes().slice(), type)),
  };
}
// a host payload {text} or {base64}
const dataFromHost = (p, type) =>
  (typeof p.text === "string" ? dataObject(null, p.text, type) : dataObject(b64Decode(p.base64), undefined, type));
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
