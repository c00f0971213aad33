// Blob and File (W3C File API, https://w3c.github.io/FileAPI/): immutable bytes with a MIME type, and a named,
// dated Blob. The bytes live in a WeakMap, copied once at construction; `blobBytes(b)` is how later parts
// (FormData, data objects, fetch bodies) read them without a copy.
const BLOB = new WeakMap(); // Blob -> { bytes: Uint8Array, type: string }
const BLOB_CHUNK = 65536;   // the size of the chunks blob.stream() gives

const blobBytes = (b) => slotOf(BLOB, b, "Blob").bytes;
const isBlob = (x) => typeof x === "object" && x !== null && BLOB.has(x);
// a USVString: lone surrogates become U+FFFD
const toUSV = (s) => String(s).replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd");
// a type outside printable ASCII is the empty string; otherwise it is lowercased
const blobType = (t) => {
  if (t === undefined) return "";
  const s = String(t);
  return /^[\x20-\x7e]*$/.test(s) ? s.toLowerCase() : "";
};
function blobPartsBytes(parts, endings) {
  if (parts === undefined) return new Uint8Array(0);
  if (parts === null || typeof parts !== "object" || typeof parts[Symbol.iterator] !== "function") {
    throw new TypeError("Failed to construct 'Blob': The provided value cannot be converted to a sequence.");
  }
  const chunks = [];
  let total = 0;
  for (const part of parts) {
    let bytes;
    if (isBlob(part)) bytes = blobBytes(part);
    else if (part instanceof ArrayBuffer) bytes = new Uint8Array(part.slice(0));
    else if (ArrayBuffer.isView(part)) bytes = new Uint8Array(part.buffer, part.byteOffset, part.byteLength).slice();
    else {
      let s = toUSV(part);
      if (endings === "native") s = s.replace(/\r\n|\r/g, "\n");
      bytes = utf8Encode(s);
    }
    chunks.push(bytes);
    total += bytes.length;
  }
  if (chunks.length === 1) return chunks[0]; // already a copy, or a Blob's bytes (immutable, so shared)
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) { out.set(c, at); at += c.length; }
  return out;
}
function relativeIndex(value, size) {
  if (value === undefined) return undefined;
  let n = Math.trunc(Number(value)) || 0;
  if (n < 0) n = Math.max(size + n, 0);
  return Math.min(n, size);
}

class Blob {
  constructor(blobParts, options) {
    const o = options == null ? {} : checkDictionary(options, "options");
    const endings = o.endings === undefined ? "transparent" : String(o.endings);
    if (endings !== "transparent" && endings !== "native") {
      throw new TypeError(`Failed to construct 'Blob': '${endings}' is not a valid value for endings`);
    }
    const type = blobType(o.type);
    BLOB.set(this, { bytes: blobPartsBytes(blobParts, endings), type });
  }
  get size() { return blobBytes(this).length; }
  get type() { return slotOf(BLOB, this, "Blob").type; }
  slice(start, end, contentType) {
    const bytes = blobBytes(this);
    const from = relativeIndex(start, bytes.length) || 0;
    const to = end === undefined ? bytes.length : relativeIndex(end, bytes.length);
    const out = Object.create(Blob.prototype);
    BLOB.set(out, { bytes: bytes.subarray(from, Math.max(from, to)), type: blobType(contentType) });
    return out;
  }
  text() {
    try { return resolved(utf8Decode(stripUtf8Bom(blobBytes(this)), false)); } catch (e) { return rejected(e); }
  }
  arrayBuffer() {
    try { return resolved(blobBytes(this).slice().buffer); } catch (e) { return rejected(e); }
  }
  bytes() {
    try { return resolved(blobBytes(this).slice()); } catch (e) { return rejected(e); }
  }
  stream() {
    const bytes = blobBytes(this);
    let at = 0;
    return createReadableStream(noop, (c) => {
      const rc = RS_CONTROLLER.get(c);
      if (at >= bytes.length) { rcClose(rc); return resolved(undefined); }
      const end = Math.min(at + BLOB_CHUNK, bytes.length);
      rcEnqueue(rc, bytes.slice(at, end));
      at = end;
      if (at >= bytes.length) rcClose(rc);
      return resolved(undefined);
    }, () => resolved(undefined), 0).obj;
  }
}
const stripUtf8Bom = (b) => (b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf ? b.subarray(3) : b);
// a Blob over bytes the caller hands over (not copied): for data objects and response bodies
function blobOf(bytes, type) {
  const b = Object.create(Blob.prototype);
  BLOB.set(b, { bytes, type: blobType(type) });
  return b;
}

const FILE = new WeakMap(); // File -> { name, lastModified }
class File extends Blob {
  constructor(fileBits, fileName, options) {
    if (arguments.length < 2) {
      throw new TypeError(`Failed to construct 'File': 2 arguments required, but only ${arguments.length} present.`);
    }
    super(fileBits, options);
    const o = options == null ? {} : options;
    const lastModified = o.lastModified === undefined ? Date.now() : Math.trunc(Number(o.lastModified)) || 0;
    FILE.set(this, { name: toUSV(fileName), lastModified });
  }
  get name() { return slotOf(FILE, this, "File").name; }
  get lastModified() { return slotOf(FILE, this, "File").lastModified; }
}
Object.defineProperty(Blob.prototype, Symbol.toStringTag, { value: "Blob", configurable: true });
Object.defineProperty(File.prototype, Symbol.toStringTag, { value: "File", configurable: true });
define("Blob", Blob);
define("File", File);
