// crypto: getRandomValues and randomUUID over the host's random_bytes op (crypto.subtle: crypto_subtle.js).
const INTEGER_ARRAYS = [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array,
  BigInt64Array, BigUint64Array];
const crypto = {
  getRandomValues(arr) {
    if (!ArrayBuffer.isView(arr)) throw new TypeError("Failed to execute 'getRandomValues' on 'Crypto': parameter 1 is not of type 'ArrayBufferView'.");
    if (!INTEGER_ARRAYS.some((T) => arr instanceof T)) throw new DOMException("The provided ArrayBufferView is of type '" + arr.constructor.name + "', which is not an integer array type.", "TypeMismatchError");
    const bytes = toBytes(arr);
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
