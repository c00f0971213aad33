// crypto: getRandomValues and randomUUID over the host's random_bytes op.
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
