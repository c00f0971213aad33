// siyuan.client: fetch (SiYuan v3.8, changes page §2.7; host half host/ops/fetch.py: fetch_open / fetch_read /
// fetch_cancel), and the entry points of socket (client_socket.js) and event (client_events.js).
function checkPath(path) {
  if (typeof path !== "string") return "path required";
  if (!path.startsWith("/")) return "path must start with /";
  return null;
}

const BODY_ALREADY_READ = "body stream already read";
let fetchSeq = 0;

const hasHeader = (headers, name) => Object.keys(headers).some((k) => k.toLowerCase() === name);
const payloadBytes = (p) => (typeof p.text === "string" ? utf8Encode(p.text) : b64Decode(p.base64));

// init.body as the host takes it ({body} text, or {body, bodyIsBase64}), and the Content-Type it implies
function encodeFetchBody(body) {
  if (body === undefined || body === null) return { req: {}, type: "" };
  if (typeof body === "string") return { req: { body }, type: "" };
  let bytes, type = "";
  if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) bytes = toBytes(body);
  else if (isBlob(body)) { bytes = blobBytes(body); type = BLOB.get(body).type; }
  else if (FORM.has(body)) {
    const boundary = "----kplugFormBoundary" + b64Decode(call("random_bytes", 12)).reduce((s, x) => s + x.toString(16).padStart(2, "0"), "");
    bytes = encodeMultipart(body, boundary);
    type = `multipart/form-data; boundary=${boundary}`;
  } else if (body instanceof URLSearchParams) {
    return { req: { body: body.toString() }, type: "application/x-www-form-urlencoded;charset=UTF-8" };
  } else return { req: { body: String(body) }, type: "" };
  return { req: { body: b64Encode(bytes, false), bodyIsBase64: true }, type };
}

// every chunk of a stream the plugin has not read, joined
function readAllBytes(s) {
  const r = acquireReader(s);
  const chunks = [];
  const next = () => readerReadPromise(r).then(({ value, done }) => {
    if (!done) { chunks.push(value); return next(); }
    const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of chunks) { out.set(c, at); at += c.length; }
    return out;
  });
  return next();
}

// the Response: `body` streams the host's chunks as the plugin reads (high-water mark 0: nothing is asked for
// before a read); the body is consumed once, by the stream or by one of the reading methods
function makeFetchResponse(r, rid, ended) {
  let ctrl, finished = false;
  const finish = () => { if (!finished) { finished = true; ended(); } };
  let s;
  if (r.body !== undefined) {  // a plugin route the host answered: the whole body is here
    const bytes = payloadBytes(r.body);
    s = createReadableStream((c) => { ctrl = RS_CONTROLLER.get(c); }, () => {
      if (bytes.length) rcEnqueue(ctrl, bytes);
      rcClose(ctrl);
      finish();
      return resolved(undefined);
    }, () => { finish(); return resolved(undefined); }, 0);
  } else {
    s = createReadableStream((c) => { ctrl = RS_CONTROLLER.get(c); }, () =>
      hostAsync("fetch_read", rid).then((p) => {
        if (p === null) { rcClose(ctrl); finish(); } else rcEnqueue(ctrl, payloadBytes(p));
      }, (e) => { finish(); throw e; }),
    () => { finish(); return hostAsync("fetch_cancel", rid).then(() => undefined); }, 0);
  }
  let claimed = false;
  const consume = (then) => {
    if (claimed || rsLocked(s) || s.disturbed) return rejected(new TypeError(BODY_ALREADY_READ));
    claimed = true;
    return readAllBytes(s).then(then);
  };
  const contentType = String(r.headers["Content-Type"] || "").toLowerCase();
  const response = {
    url: r.url, ok: r.status >= 200 && r.status < 300, status: r.status, statusText: r.statusText, headers: r.headers,
    get body() { return s.obj; },
    get bodyUsed() { return claimed || s.disturbed; },
    text: () => consume((b) => utf8Decode(b, false)),
    json: () => consume((b) => {
      try { return JSON.parse(utf8Decode(b, false)); } catch (e) { throw goError(e.message); }
    }),
    buffer: () => consume((b) => Buffer.from(b)),
    arrayBuffer: () => consume((b) => b.buffer),
    bytes: () => consume((b) => b),
    blob: () => consume((b) => blobOf(b, contentType)),
  };
  // an abort after the headers: the body errors with the reason and the connection is closed
  const abort = (reason) => {
    if (finished) return;
    finish();
    rcError(ctrl, reason);
    hostAsync("fetch_cancel", rid).catch(noop);
  };
  return { response, abort };
}

function clientFetch(path, init) {
  const bad = checkPath(path);
  if (bad) return reject(bad);
  init = init || {};
  const signal = init.signal;
  if (signal !== undefined && signal !== null && !(signal instanceof AbortSignal)) return reject("signal must be an AbortSignal");
  let timeout;
  if (init.timeout !== undefined && init.timeout !== null) {
    if (typeof init.timeout !== "number" || !Number.isFinite(init.timeout) || init.timeout < 0) {
      return reject("timeout must be a non-negative finite number");
    }
    timeout = init.timeout / 1000;
  }
  if (signal && signal.aborted) return Promise.reject(signal.reason);
  const req = { method: typeof init.method === "string" ? init.method : "GET", headers: {} };
  if (init.headers && typeof init.headers === "object") {
    for (const k of Object.keys(init.headers)) req.headers[k] = String(init.headers[k]);
  }
  let encoded;
  try { encoded = encodeFetchBody(init.body); } catch (e) { return Promise.reject(e); }
  Object.assign(req, encoded.req);
  if (encoded.type && !hasHeader(req.headers, "content-type")) req.headers["Content-Type"] = encoded.type;
  if (timeout !== undefined) req.timeout = timeout;
  const rid = ++fetchSeq;
  return new Promise((resolve, fail) => {
    let state = "opening", made = null;
    const onAbort = () => {
      if (state === "opening") {
        state = "aborted";
        fail(signal.reason);
        hostAsync("fetch_cancel", rid).catch(noop);
      } else if (made) made.abort(signal.reason);
    };
    const done = () => { if (signal) signal.removeEventListener("abort", onAbort); };
    if (signal) signal.addEventListener("abort", onAbort);
    hostAsync("fetch_open", rid, path, req).then((r) => {
      if (state !== "opening") { hostAsync("fetch_cancel", rid).catch(noop); return; }
      state = "open";
      made = makeFetchResponse(r, rid, done);
      resolve(made.response);
    }, (e) => {
      done();
      if (state === "opening") { state = "failed"; fail(e); }
    });
  });
}

function makeClient() {
  return Object.freeze({
    fetch: clientFetch,
    socket(path, protocols) {
      const bad = checkPath(path);
      if (bad) return reject(bad);
      return Promise.resolve().then(() => makeSocket(path, protocols)).catch((e) => { throw goError(e.message); });
    },
    event(path) {
      const bad = checkPath(path);
      if (bad) return reject(bad);
      return Promise.resolve().then(() => makeEventSource(path)).catch((e) => { throw goError(e.message); });
    },
  });
}
