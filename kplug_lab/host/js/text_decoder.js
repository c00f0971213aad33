// TextDecoder (WHATWG Encoding, https://encoding.spec.whatwg.org/): UTF-8, UTF-16LE and UTF-16BE, as SiYuan's
// host decodes; `fatal`, `ignoreBOM`, and `decode(bytes, {stream: true})`, which keeps a sequence split across
// chunks for the next call. The decoders are the standard's byte-at-a-time state machines.
const ENCODING_LABELS = {
  "utf-8": ["unicode-1-1-utf-8", "unicode11utf8", "unicode20utf8", "utf-8", "utf8", "x-unicode20utf8"],
  "utf-16be": ["unicodefffe", "utf-16be"],
  "utf-16le": ["csunicode", "iso-10646-ucs-2", "ucs-2", "unicode", "unicodefeff", "utf-16", "utf-16le"],
};
const ENCODING_OF_LABEL = new Map();
for (const name of Object.keys(ENCODING_LABELS)) for (const label of ENCODING_LABELS[name]) ENCODING_OF_LABEL.set(label, name);
const DECODE_ERROR = -1;

// Each decoder: `byte(b, out)` pushes UTF-16 code units to the array `out`, DECODE_ERROR for an error;
// `end(out)` is the end of the stream.
function utf8Decoder() {
  let cp = 0, seen = 0, needed = 0, lower = 0x80, upper = 0xbf;
  const reset = () => { cp = 0; seen = 0; needed = 0; lower = 0x80; upper = 0xbf; };
  const self = {
    byte(b, out) {
      if (needed === 0) {
        if (b <= 0x7f) out.push(b);
        else if (b >= 0xc2 && b <= 0xdf) { needed = 1; cp = b & 0x1f; }
        else if (b >= 0xe0 && b <= 0xef) {
          if (b === 0xe0) lower = 0xa0;
          if (b === 0xed) upper = 0x9f;
          needed = 2; cp = b & 0xf;
        } else if (b >= 0xf0 && b <= 0xf4) {
          if (b === 0xf0) lower = 0x90;
          if (b === 0xf4) upper = 0x8f;
          needed = 3; cp = b & 0x7;
        } else out.push(DECODE_ERROR);
        return;
      }
      if (b < lower || b > upper) {
        reset();
        out.push(DECODE_ERROR);      // the error comes first, then the byte is read again
        self.byte(b, out);
        return;
      }
      lower = 0x80; upper = 0xbf;
      cp = (cp << 6) | (b & 0x3f);
      if (++seen === needed) {
        if (cp >= 0x10000) { const c = cp - 0x10000; out.push(0xd800 + (c >> 10), 0xdc00 + (c & 0x3ff)); }
        else out.push(cp);
        reset();
      }
    },
    end(out) { if (needed !== 0) { reset(); out.push(DECODE_ERROR); } },
  };
  return self;
}
function utf16Decoder(bigEndian) {
  let leadByte = -1, leadSurrogate = -1;
  const unit = (u, out) => {
    if (leadSurrogate !== -1) {
      const lead = leadSurrogate;
      leadSurrogate = -1;
      if (u >= 0xdc00 && u <= 0xdfff) { out.push(lead, u); return; }
      out.push(DECODE_ERROR);
    }
    if (u >= 0xd800 && u <= 0xdbff) leadSurrogate = u;
    else if (u >= 0xdc00 && u <= 0xdfff) out.push(DECODE_ERROR);
    else out.push(u);
  };
  return {
    byte(b, out) {
      if (leadByte === -1) { leadByte = b; return; }
      const u = bigEndian ? (leadByte << 8) | b : leadByte | (b << 8);
      leadByte = -1;
      unit(u, out);
    },
    end(out) {
      if (leadByte !== -1 || leadSurrogate !== -1) { leadByte = -1; leadSurrogate = -1; out.push(DECODE_ERROR); }
    },
  };
}
const newDecoder = (encoding) => (encoding === "utf-8" ? utf8Decoder() : utf16Decoder(encoding === "utf-16be"));

const DECODER = new WeakMap();
class TextDecoder {
  constructor(label = "utf-8", options) {
    const o = options == null ? {} : checkDictionary(options, "options");
    const key = String(label).replace(/^[\t\n\f\r ]+|[\t\n\f\r ]+$/g, "").toLowerCase();
    const encoding = ENCODING_OF_LABEL.get(key);
    if (encoding === undefined) throw new RangeError(`The "${label}" encoding is not supported`);
    DECODER.set(this, {
      encoding, fatal: !!o.fatal, ignoreBOM: !!o.ignoreBOM, decoder: newDecoder(encoding), bomSeen: false,
      doNotFlush: false,
    });
  }
  get encoding() { return slotOf(DECODER, this, "TextDecoder").encoding; }
  get fatal() { return slotOf(DECODER, this, "TextDecoder").fatal; }
  get ignoreBOM() { return slotOf(DECODER, this, "TextDecoder").ignoreBOM; }
  decode(input, options) {
    const d = slotOf(DECODER, this, "TextDecoder");
    let bytes = new Uint8Array(0);
    if (input !== undefined) {
      bytes = toBytes(input);
      if (!bytes) throw new TypeError("The provided value is not of type '(ArrayBuffer or ArrayBufferView)'");
    }
    const stream = options == null ? false : !!checkDictionary(options, "options").stream;
    if (!d.doNotFlush) { d.decoder = newDecoder(d.encoding); d.bomSeen = false; }
    d.doNotFlush = stream;
    const units = [];
    const decoder = d.decoder;
    for (let i = 0; i < bytes.length; i++) decoder.byte(bytes[i], units);
    if (!stream) decoder.end(units);
    for (let i = 0; i < units.length; i++) {
      if (units[i] !== DECODE_ERROR) continue;
      if (d.fatal) {
        d.decoder = newDecoder(d.encoding);
        throw new TypeError(`The encoded data was not valid for encoding ${d.encoding}`);
      }
      units[i] = 0xfffd;
    }
    let start = 0;
    if (!d.bomSeen && units.length > 0) {
      d.bomSeen = true;
      if (!d.ignoreBOM && units[0] === 0xfeff) start = 1;
    }
    let s = "";
    for (let i = start; i < units.length; i += 8192) s += String.fromCharCode.apply(null, units.slice(i, Math.min(i + 8192, units.length)));
    return s;
  }
}
Object.defineProperty(TextDecoder.prototype, Symbol.toStringTag, { value: "TextDecoder", configurable: true });
define("TextDecoder", TextDecoder);
