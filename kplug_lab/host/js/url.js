// URL and URLSearchParams (WHATWG-like, for special and opaque URLs).
const encodeQ = (s) => encodeURIComponent(s).replace(/%20/g, "+").replace(/[!'()~]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
const decodeQ = (s) => { try { return decodeURIComponent(s.replace(/\+/g, " ")); } catch (e) { return s; } };
class URLSearchParams {
  constructor(init = "") {
    this._list = [];
    this._url = null;
    if (typeof init === "string") this._parse(init);
    else if (init && typeof init[Symbol.iterator] === "function") for (const [k, v] of init) this._list.push([String(k), String(v)]);
    else if (init && typeof init === "object") for (const k of Object.keys(init)) this._list.push([k, String(init[k])]);
  }
  _parse(s) {
    this._list = [];
    s = String(s);
    if (s.startsWith("?")) s = s.slice(1);
    for (const part of s.split("&")) {
      if (!part) continue;
      const i = part.indexOf("=");
      this._list.push(i < 0 ? [decodeQ(part), ""] : [decodeQ(part.slice(0, i)), decodeQ(part.slice(i + 1))]);
    }
  }
  _update() { if (this._url) this._url._search = this._list.length ? "?" + this.toString() : ""; }
  get size() { return this._list.length; }
  append(k, v) { this._list.push([String(k), String(v)]); this._update(); }
  delete(k, v) { this._list = this._list.filter(([a, b]) => a !== String(k) || (v !== undefined && b !== String(v))); this._update(); }
  get(k) { const e = this._list.find(([a]) => a === String(k)); return e ? e[1] : null; }
  getAll(k) { return this._list.filter(([a]) => a === String(k)).map(([, b]) => b); }
  has(k, v) { return this._list.some(([a, b]) => a === String(k) && (v === undefined || b === String(v))); }
  set(k, v) {
    k = String(k);
    const i = this._list.findIndex(([a]) => a === k);
    if (i < 0) this._list.push([k, String(v)]);
    else { this._list[i][1] = String(v); this._list = this._list.filter(([a], j) => a !== k || j === i); }
    this._update();
  }
  sort() { this._list.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0)); this._update(); }
  forEach(fn, self) { for (const [k, v] of this._list) fn.call(self, v, k, this); }
  keys() { return this._list.map(([k]) => k)[Symbol.iterator](); }
  values() { return this._list.map(([, v]) => v)[Symbol.iterator](); }
  entries() { return this._list.map(([k, v]) => [k, v])[Symbol.iterator](); }
  [Symbol.iterator]() { return this.entries(); }
  toString() { return this._list.map(([k, v]) => encodeQ(k) + "=" + encodeQ(v)).join("&"); }
}
const SPECIAL = { "http:": "80", "https:": "443", "ws:": "80", "wss:": "443", "ftp:": "21", "file:": "" };
const pathEncode = (s) => s.replace(/[^A-Za-z0-9\-._~!$&'()*+,;=:@\/%]/g, (c) => encodeURIComponent(c));
function normalizePath(path) {
  const out = [];
  const segs = path.split("/");
  for (let i = 0; i < segs.length; i++) {
    const s = segs[i];
    if (s === "..") { if (out.length > 1) out.pop(); if (i === segs.length - 1) out.push(""); }
    else if (s === ".") { if (i === segs.length - 1) out.push(""); }
    else out.push(s);
  }
  const joined = out.join("/");
  return joined.startsWith("/") ? joined : "/" + joined;
}
class URL {
  constructor(input, base) {
    input = String(input).trim().replace(/[\t\n\r]/g, "");
    const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):(.*)$/.exec(input);
    if (m) this._parseAbsolute(m[1].toLowerCase() + ":", m[2]);
    else {
      if (base === undefined) throw new TypeError(`Invalid URL: ${input}`);
      const b = base instanceof URL ? base : new URL(base);
      this._resolve(input, b);
    }
    this._params = new URLSearchParams(this._search);
    this._params._url = this;
  }
  _parseAbsolute(protocol, rest) {
    this._protocol = protocol;
    this._username = ""; this._password = ""; this._hostname = ""; this._port = "";
    let hash = "", search = "";
    const h = rest.indexOf("#");
    if (h >= 0) { hash = rest.slice(h); rest = rest.slice(0, h); }
    const q = rest.indexOf("?");
    if (q >= 0) { search = rest.slice(q); rest = rest.slice(0, q); }
    const special = protocol in SPECIAL;
    if (special) rest = rest.replace(/\\/g, "/");
    if (rest.startsWith("//") || (special && protocol !== "file:")) {
      rest = rest.replace(/^\/*/, "");
      const slash = rest.indexOf("/");
      const authority = slash < 0 ? rest : rest.slice(0, slash);
      rest = slash < 0 ? "" : rest.slice(slash);
      this._setAuthority(authority);
      if (special && protocol !== "file:" && !this._hostname) throw new TypeError("Invalid URL");
      this._pathname = special ? normalizePath(pathEncode(rest || "/")) : pathEncode(rest);
      this._opaque = false;
    } else {
      this._pathname = special ? normalizePath(pathEncode(rest)) : pathEncode(rest);
      this._opaque = !special && !rest.startsWith("/");
    }
    this._search = search === "?" ? "" : search.replace(/[ "<>`#]/g, (c) => encodeURIComponent(c));
    this._hash = hash === "#" ? "" : hash.replace(/[ "<>`]/g, (c) => encodeURIComponent(c));
  }
  _setAuthority(authority) {
    const at = authority.lastIndexOf("@");
    if (at >= 0) {
      const cred = authority.slice(0, at);
      authority = authority.slice(at + 1);
      const c = cred.indexOf(":");
      this._username = c < 0 ? cred : cred.slice(0, c);
      this._password = c < 0 ? "" : cred.slice(c + 1);
    }
    const pm = /^(\[[^\]]*\]|[^:]*)(?::(\d*))?$/.exec(authority);
    if (!pm) throw new TypeError(`Invalid URL: bad host ${authority}`);
    if (/[\s<>^|%]/.test(pm[1]) && !pm[1].startsWith("[")) throw new TypeError(`Invalid URL: bad host ${pm[1]}`);
    this._hostname = pm[1].toLowerCase();
    const port = pm[2] || "";
    if (port && Number(port) > 65535) throw new TypeError("Invalid URL: port out of range");
    this._port = port === SPECIAL[this._protocol] ? "" : port.replace(/^0+(?=\d)/, "");
  }
  _resolve(input, b) {
    this._protocol = b._protocol; this._username = b._username; this._password = b._password;
    this._hostname = b._hostname; this._port = b._port; this._opaque = false;
    if (input.startsWith("//")) { this._parseAbsolute(b._protocol, input); return; }
    let hash = "", search = null;
    const h = input.indexOf("#");
    if (h >= 0) { hash = input.slice(h); input = input.slice(0, h); }
    const q = input.indexOf("?");
    if (q >= 0) { search = input.slice(q); input = input.slice(0, q); }
    if (input === "") { this._pathname = b._pathname; this._search = search === null ? b._search : (search === "?" ? "" : search); }
    else {
      const path = input.startsWith("/") ? input : b._pathname.replace(/[^/]*$/, "") + input;
      this._pathname = normalizePath(pathEncode(path));
      this._search = search === null || search === "?" ? "" : search;
    }
    this._hash = hash === "#" ? "" : hash;
  }
  get protocol() { return this._protocol; }
  set protocol(v) { v = String(v).replace(/:.*$/, "").toLowerCase() + ":"; if (/^[a-z][a-z0-9+.-]*:$/.test(v)) this._protocol = v; }
  get username() { return this._username; }
  set username(v) { this._username = encodeURIComponent(String(v)); }
  get password() { return this._password; }
  set password(v) { this._password = encodeURIComponent(String(v)); }
  get hostname() { return this._hostname; }
  set hostname(v) { this._hostname = String(v).toLowerCase(); }
  get port() { return this._port; }
  set port(v) { v = String(v); this._port = v === SPECIAL[this._protocol] ? "" : v; }
  get host() { return this._hostname + (this._port ? ":" + this._port : ""); }
  set host(v) { this._setAuthority(String(v)); }
  get origin() { return this._protocol in SPECIAL && this._protocol !== "file:" ? `${this._protocol}//${this.host}` : "null"; }
  get pathname() { return this._pathname; }
  set pathname(v) { v = String(v); this._pathname = normalizePath(pathEncode(v.startsWith("/") ? v : "/" + v)); }
  get search() { return this._search; }
  set search(v) { v = String(v); this._search = v === "" || v === "?" ? "" : (v.startsWith("?") ? v : "?" + v); this._params._parse(this._search); }
  get searchParams() { return this._params; }
  get hash() { return this._hash; }
  set hash(v) { v = String(v); this._hash = v === "" || v === "#" ? "" : (v.startsWith("#") ? v : "#" + v); }
  get href() {
    const auth = this._username || this._password ? `${this._username}${this._password ? ":" + this._password : ""}@` : "";
    const slashes = this._opaque ? "" : (this._hostname || this._protocol in SPECIAL ? "//" : "");
    return `${this._protocol}${slashes}${auth}${this.host}${this._pathname}${this._search}${this._hash}`;
  }
  set href(v) { const u = new URL(v); Object.assign(this, u); this._params = new URLSearchParams(this._search); this._params._url = this; }
  toString() { return this.href; }
  toJSON() { return this.href; }
  static canParse(u, b) { try { new URL(u, b); return true; } catch (e) { return false; } }
  static parse(u, b) { try { return new URL(u, b); } catch (e) { return null; } }
}
define("URL", URL);
define("URLSearchParams", URLSearchParams);
