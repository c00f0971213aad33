// Buffer (goja_nodejs subset, spec §4).
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
