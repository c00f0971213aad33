// FormData (XHR standard, https://xhr.spec.whatwg.org/#interface-formdata) without a form element: an ordered
// list of (name, value) entries, a value being a string or a File; and its multipart/form-data encoding
// (`encodeMultipart`), for request bodies.
const FORM = new WeakMap(); // FormData -> [{ name, value }]
const formEntries = (fd) => slotOf(FORM, fd, "FormData");

function formEntry(name, value, filename, withFilename) {
  name = toUSV(name);
  if (!isBlob(value)) {
    if (withFilename) throw new TypeError("Failed to execute on 'FormData': parameter 2 is not of type 'Blob'.");
    return { name, value: toUSV(value) };
  }
  const isFile = FILE.has(value);
  if (isFile && filename === undefined) return { name, value };
  const options = { type: value.type };
  if (isFile) options.lastModified = value.lastModified;
  const fileName = filename !== undefined ? filename : isFile ? value.name : "blob";
  return { name, value: new File([value], fileName, options) };
}
const needArgs = (n, got, method) => {
  if (got < n) throw new TypeError(`Failed to execute '${method}' on 'FormData': ${n} arguments required, but only ${got} present.`);
};

class FormData {
  constructor(form) {
    if (form !== undefined) throw new TypeError("Failed to construct 'FormData': there are no form elements here");
    FORM.set(this, []);
  }
  append(name, value, filename) {
    const list = formEntries(this);
    needArgs(2, arguments.length, "append");
    list.push(formEntry(name, value, filename, arguments.length > 2));
  }
  set(name, value, filename) {
    const list = formEntries(this);
    needArgs(2, arguments.length, "set");
    const entry = formEntry(name, value, filename, arguments.length > 2);
    const first = list.findIndex((e) => e.name === entry.name);
    if (first < 0) { list.push(entry); return; }
    list[first] = entry;
    for (let i = list.length - 1; i > first; i--) if (list[i].name === entry.name) list.splice(i, 1);
  }
  get(name) {
    const list = formEntries(this);
    needArgs(1, arguments.length, "get");
    const key = toUSV(name);
    const e = list.find((x) => x.name === key);
    return e === undefined ? null : e.value;
  }
  getAll(name) {
    const list = formEntries(this);
    needArgs(1, arguments.length, "getAll");
    const key = toUSV(name);
    return list.filter((x) => x.name === key).map((x) => x.value);
  }
  has(name) {
    const list = formEntries(this);
    needArgs(1, arguments.length, "has");
    const key = toUSV(name);
    return list.some((x) => x.name === key);
  }
  delete(name) {
    const list = formEntries(this);
    needArgs(1, arguments.length, "delete");
    const key = toUSV(name);
    for (let i = list.length - 1; i >= 0; i--) if (list[i].name === key) list.splice(i, 1);
  }
  forEach(callback, thisArg) {
    const list = formEntries(this);
    if (typeof callback !== "function") throw new TypeError("FormData.forEach: the callback is not a function");
    for (let i = 0; i < list.length; i++) callback.call(thisArg, list[i].value, list[i].name, this);
  }
  entries() { return formIterator(this, (e) => [e.name, e.value]); }
  keys() { return formIterator(this, (e) => e.name); }
  values() { return formIterator(this, (e) => e.value); }
}
Object.defineProperty(FormData.prototype, Symbol.iterator, {
  value: FormData.prototype.entries, writable: true, configurable: true,
});
Object.defineProperty(FormData.prototype, Symbol.toStringTag, { value: "FormData", configurable: true });

// a live iterator, as WebIDL's: it walks the list by index, so entries added while iterating are seen
const ITERATOR_PROTO = Object.getPrototypeOf(Object.getPrototypeOf([][Symbol.iterator]()));
const FORM_ITER = new WeakMap();
const FormDataIteratorPrototype = Object.create(ITERATOR_PROTO, {
  next: { writable: true, configurable: true, value: function next() {
    const it = slotOf(FORM_ITER, this, "FormData Iterator");
    const list = FORM.get(it.form);
    if (it.index >= list.length) return { value: undefined, done: true };
    return { value: it.pick(list[it.index++]), done: false };
  } },
  [Symbol.toStringTag]: { value: "FormData Iterator", configurable: true },
});
function formIterator(fd, pick) {
  formEntries(fd);
  const it = Object.create(FormDataIteratorPrototype);
  FORM_ITER.set(it, { form: fd, index: 0, pick });
  return it;
}

// multipart/form-data (RFC 7578, as the HTML standard encodes it): names and filenames with `"` CR LF escaped,
// string values with newlines normalised to CRLF. Returns the bytes; the caller picks the boundary.
function encodeMultipart(fd, boundary) {
  const escape = (s) => s.replace(/\r\n|\r|\n/g, "\r\n").replace(/\n/g, "%0A").replace(/\r/g, "%0D").replace(/"/g, "%22");
  const escapeName = (s) => s.replace(/\n/g, "%0A").replace(/\r/g, "%0D").replace(/"/g, "%22");
  const parts = [];
  for (const { name, value } of formEntries(fd)) {
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${escape(name)}"`;
    if (typeof value === "string") {
      parts.push(utf8Encode(`${head}\r\n\r\n${value.replace(/\r\n|\r|\n/g, "\r\n")}\r\n`));
    } else {
      head += `; filename="${escapeName(value.name)}"\r\nContent-Type: ${value.type || "application/octet-stream"}\r\n\r\n`;
      parts.push(utf8Encode(head), blobBytes(value), utf8Encode("\r\n"));
    }
  }
  parts.push(utf8Encode(`--${boundary}--\r\n`));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}
define("FormData", FormData);
