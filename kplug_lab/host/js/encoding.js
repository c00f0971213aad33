// Bytes: UTF-8 and base64 codecs used by every later part, and TextEncoder (TextDecoder: text_decoder.js).
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

// ---- TextEncoder ---------------------------------------------------------------------------------
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
define("TextEncoder", TextEncoder);
