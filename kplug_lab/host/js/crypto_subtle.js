// crypto.subtle: Web Crypto (changes page §2.10). Nothing cryptographic happens here: this part checks WebIDL
// types, sends byte arguments to the host as base64 and keys as handles (host/ops/crypto.py does the rest, with
// the key material in a per-plugin table there), and turns the host's answers into values or errors. Every method
// is async, so it never throws synchronously; errors are DOMExceptions with the Web Crypto names, or TypeError.
const DOMExc = G.DOMException;
const cryptoError = (name, message) => {
  if (name === "TypeError") return new TypeError(message);
  return new DOMExc(message, name);
};
const BYTE_MEMBERS = ["iv", "counter", "additionalData", "salt", "info", "label", "publicExponent", "context"];
const NUMBER_MEMBERS = ["length", "tagLength", "iterations", "saltLength", "modulusLength"];
const FORMATS = ["raw", "pkcs8", "spki", "jwk"];
const USAGES = ["encrypt", "decrypt", "sign", "verify", "deriveKey", "deriveBits", "wrapKey", "unwrapKey"];
const bytesArg = (v, what) => {
  const b = toBytes(v);
  if (!b) throw new TypeError(`${what} is not a BufferSource (an ArrayBuffer or a view of one)`);
  return b64Encode(b);
};

// ---- CryptoKey: an opaque handle; its slots live in this WeakMap, never on the object ----
const keySlots = new WeakMap();
const HANDLE = Symbol("CryptoKey");
const keyReaper = typeof FinalizationRegistry === "function"
  ? new FinalizationRegistry((id) => { try { call("crypto_key_drop", id); } catch { /* the plugin is stopping */ } })
  : null;
class CryptoKey {
  constructor(token, info) {
    if (token !== HANDLE) throw new TypeError("Illegal constructor");
    const algorithm = Object.assign({}, info.algorithm);
    if (typeof algorithm.publicExponent === "string") algorithm.publicExponent = b64Decode(algorithm.publicExponent);
    if (algorithm.hash) algorithm.hash = Object.assign({}, algorithm.hash);
    if (algorithm.length === null) delete algorithm.length;
    keySlots.set(this, { id: info.id, type: info.type, extractable: info.extractable, algorithm,
      usages: info.usages.slice() });
    if (keyReaper) keyReaper.register(this, info.id);
  }
  get type() { return slots(this).type; }
  get extractable() { return slots(this).extractable; }
  get algorithm() { return slots(this).algorithm; }
  get usages() { return slots(this).usages; }
  get [Symbol.toStringTag]() { return "CryptoKey"; }
}
function slots(key) {
  const s = keySlots.get(key);
  if (!s) throw new TypeError("Illegal invocation: not a CryptoKey");
  return s;
}
const keyId = (key, what) => {
  const s = keySlots.get(key);
  if (!s) throw new TypeError(`${what} is not of type 'CryptoKey'`);
  return s.id;
};
const makeKey = (info) => new CryptoKey(HANDLE, info);
const makeKeys = (info) => (info && info.publicKey
  ? { publicKey: makeKey(info.publicKey), privateKey: makeKey(info.privateKey) }
  : makeKey(info));

// ---- arguments --------------------------------------------------------------------------------------
function algorithmArg(alg, what = "algorithm") {
  if (typeof alg === "string") return { name: alg };
  if (alg === null || typeof alg !== "object") throw new TypeError(`${what} must be an object or a string`);
  if (alg.name === undefined) throw new TypeError(`${what}: name is required`);
  const out = { name: String(alg.name) };
  for (const m of BYTE_MEMBERS) if (alg[m] !== undefined) out[m] = bytesArg(alg[m], `${what}.${m}`);
  for (const m of NUMBER_MEMBERS) {
    if (alg[m] === undefined) continue;
    const n = Number(alg[m]);
    if (!Number.isFinite(n)) throw new TypeError(`${what}.${m} must be a finite number`);
    out[m] = Math.trunc(n);
  }
  if (alg.length === null) out.length = null;
  if (alg.hash !== undefined) out.hash = algorithmArg(alg.hash, `${what}.hash`).name;
  if (alg.namedCurve !== undefined) out.namedCurve = String(alg.namedCurve);
  if (alg.public !== undefined) out.public = keyId(alg.public, `${what}.public`);
  return out;
}
function usagesArg(usages) {
  if (usages === null || typeof usages !== "object" || typeof usages[Symbol.iterator] !== "function") {
    throw new TypeError("keyUsages must be a sequence of KeyUsage strings");
  }
  const out = [];
  for (const u of usages) {
    const s = String(u);
    if (!USAGES.includes(s)) throw new TypeError(`'${s}' is not a valid KeyUsage`);
    out.push(s);
    if (out.length > 16) throw new TypeError("keyUsages has too many entries");
  }
  return out;
}
function formatArg(format) {
  const f = String(format);
  if (!FORMATS.includes(f)) throw new TypeError(`'${f}' is not a valid KeyFormat (raw, pkcs8, spki, jwk)`);
  return f;
}
function jwkArg(jwk) {
  if (jwk === null || typeof jwk !== "object") throw new TypeError("keyData must be a JsonWebKey object for jwk");
  const out = {};
  for (const m of ["kty", "use", "alg", "crv", "x", "y", "d", "n", "e", "p", "q", "dp", "dq", "qi", "k"]) {
    if (jwk[m] !== undefined) out[m] = String(jwk[m]);
  }
  if (jwk.ext !== undefined) out.ext = Boolean(jwk.ext);
  if (jwk.key_ops !== undefined) out.key_ops = Array.from(jwk.key_ops, String);
  return out;
}
const keyDataArg = (format, data) => (format === "jwk" ? jwkArg(data) : bytesArg(data, "keyData"));
const buffer = (text) => { const b = b64Decode(text); return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength); };

// one host operation: its answer is {value} or {error, message}
async function subtleOp(op, ...args) {
  let answer;
  try {
    answer = await callAsync(op, ...args);
  } catch (e) {
    throw cryptoError("OperationError", e && e.message !== undefined ? e.message : String(e));
  }
  if (answer.error) throw cryptoError(answer.error, answer.message);
  return answer.value;
}
const required = (args, n, method) => {
  if (args.length < n) throw new TypeError(`Failed to execute '${method}' on 'SubtleCrypto': ${n} arguments required, but only ${args.length} present.`);
};

class SubtleCrypto {
  async digest(...a) {
    required(a, 2, "digest");
    return buffer(await subtleOp("crypto_digest", algorithmArg(a[0]), bytesArg(a[1], "data")));
  }
  async encrypt(...a) {
    required(a, 3, "encrypt");
    return buffer(await subtleOp("crypto_encrypt", algorithmArg(a[0]), keyId(a[1], "key"), bytesArg(a[2], "data")));
  }
  async decrypt(...a) {
    required(a, 3, "decrypt");
    return buffer(await subtleOp("crypto_decrypt", algorithmArg(a[0]), keyId(a[1], "key"), bytesArg(a[2], "data")));
  }
  async sign(...a) {
    required(a, 3, "sign");
    return buffer(await subtleOp("crypto_sign", algorithmArg(a[0]), keyId(a[1], "key"), bytesArg(a[2], "data")));
  }
  async verify(...a) {
    required(a, 4, "verify");
    return subtleOp("crypto_verify", algorithmArg(a[0]), keyId(a[1], "key"), bytesArg(a[2], "signature"),
      bytesArg(a[3], "data"));
  }
  async generateKey(...a) {
    required(a, 3, "generateKey");
    return makeKeys(await subtleOp("crypto_generate_key", algorithmArg(a[0]), Boolean(a[1]), usagesArg(a[2])));
  }
  async deriveBits(...a) {
    required(a, 2, "deriveBits");
    const length = a[2] === undefined || a[2] === null ? null : Number(a[2]);
    if (length !== null && !Number.isFinite(length)) throw new TypeError("length must be a number or null");
    return buffer(await subtleOp("crypto_derive_bits", algorithmArg(a[0]), keyId(a[1], "baseKey"), length));
  }
  async deriveKey(...a) {
    required(a, 5, "deriveKey");
    return makeKey(await subtleOp("crypto_derive_key", algorithmArg(a[0]), keyId(a[1], "baseKey"),
      algorithmArg(a[2], "derivedKeyType"), Boolean(a[3]), usagesArg(a[4])));
  }
  async importKey(...a) {
    required(a, 5, "importKey");
    const format = formatArg(a[0]);
    return makeKey(await subtleOp("crypto_import_key", format, keyDataArg(format, a[1]), algorithmArg(a[2]),
      Boolean(a[3]), usagesArg(a[4])));
  }
  async exportKey(...a) {
    required(a, 2, "exportKey");
    const format = formatArg(a[0]);
    const value = await subtleOp("crypto_export_key", format, keyId(a[1], "key"));
    return format === "jwk" ? value : buffer(value);
  }
  async wrapKey(...a) {
    required(a, 4, "wrapKey");
    return buffer(await subtleOp("crypto_wrap_key", formatArg(a[0]), keyId(a[1], "key"),
      keyId(a[2], "wrappingKey"), algorithmArg(a[3], "wrapAlgorithm")));
  }
  async unwrapKey(...a) {
    required(a, 7, "unwrapKey");
    return makeKey(await subtleOp("crypto_unwrap_key", formatArg(a[0]), bytesArg(a[1], "wrappedKey"),
      keyId(a[2], "unwrappingKey"), algorithmArg(a[3], "unwrapAlgorithm"),
      algorithmArg(a[4], "unwrappedKeyAlgorithm"), Boolean(a[5]), usagesArg(a[6])));
  }
  get [Symbol.toStringTag]() { return "SubtleCrypto"; }
}
Object.defineProperty(crypto, "subtle", { value: new SubtleCrypto(), enumerable: true, configurable: false,
  writable: false });
