// siyuan.server.private (spec §3.8): the http, ws and es slots, and the ports a ws or es handler is given.
function makeServer() {
  const slot = () => Object.seal({ handler: null });
  return Object.freeze({ private: Object.freeze({ http: slot(), ws: slot(), es: slot() }) });
}

// server.private ws slot (§3.8.3): request.port over the accepted connection (host half: private_ports.py).
// Frames that arrive before the read loop starts wait here; [better] close semantics as siyuan.client.socket.
const serverPorts = new Map();  // port id -> event sink
function makeServerSocket(id) {
  let readyState = 0, started = false, queued = [];
  const port = {
    binaryType: "arraybuffer",
    get bufferedAmount() { return 0; },
    get protocol() { return ""; },
    get readyState() { return readyState; },
    onopen: null, onmessage: null, onping: null, onpong: null, onclose: null, onerror: null,
    open() { start(); return Promise.resolve(undefined); },
    send(data) {
      if (readyState > 1) return reject(`WebSocket is not open (state: ${readyState})`);
      if (data instanceof ArrayBuffer) return hostAsync("port_send", id, b64Encode(new Uint8Array(data), false), true);
      return hostAsync("port_send", id, data === undefined ? "" : String(data), false);
    },
    ping(data) { return readyState > 1 ? reject(`WebSocket is not open (state: ${readyState})`) : hostAsync("port_ping", id, data === undefined ? "" : String(data)); },
    pong(data) { return readyState > 1 ? reject(`WebSocket is not open (state: ${readyState})`) : hostAsync("port_pong", id, data === undefined ? "" : String(data)); },
    close(code = 1000, reason = "") {
      if (readyState > 1) return Promise.resolve(undefined);
      readyState = 2;
      return hostAsync("port_close", id, Number(code), String(reason));
    },
  };
  Object.seal(port);
  function fire(name, ev) {
    const h = port["on" + name];
    if (typeof h !== "function") return;
    try { h.call(port, ev); } catch (e) { log("error", `siyuan.server.private.ws port on${name} threw: ${inspect(e)}`); }
  }
  function handle(ev) {
    switch (ev.type) {
      case "text": fire("message", { type: "text", data: ev.data }); break;
      case "binary": fire("message", { type: "binary", data: b64Decode(ev.data).buffer }); break;
      case "ping": case "pong": fire(ev.type, { type: ev.type, data: ev.data }); break;
      case "error": fire("error", { type: "error", error: goError(ev.error) }); break;
      case "close":
        readyState = 3; serverPorts.delete(id);
        fire("close", { type: "close", code: ev.code, reason: ev.reason, wasClean: ev.wasClean });
        break;
    }
  }
  function start() {
    if (started) return;
    started = true;
    if (readyState === 0) readyState = 1;
    fire("open", { type: "open" });
    const early = queued; queued = [];
    early.forEach(handle);
  }
  serverPorts.set(id, (ev) => { if (!started) queued.push(ev); else handle(ev); });
  return { port, start };
}
// server.private es slot (§3.8.4): send() is synchronous; the host encodes (gin-contrib/sse) and flushes
function makeServerEvents(id) {
  let closed = false;
  const port = {
    onopen: null, onclose: null,
    send(event) {
      if (event === null || typeof event !== "object") throw goError("invalid event object");
      if (event.data === undefined) throw goError("event.data is required");
      const d = event.data;
      const bytes = d instanceof Uint8Array ? d : null;
      const data = bytes ? { text: utf8Decode(bytes, false) } :
        d !== null && typeof d === "object" ? { json: exportValue(d) } : { text: d === null ? "<nil>" : String(d) };
      const out = { data };
      if (typeof event.event === "string") out.event = event.event;
      if (typeof event.id === "string") out.id = event.id;
      if (typeof event.retry === "number") out.retry = event.retry;
      if (!closed) call("port_sse_send", id, out);
      return undefined;
    },
    close() { if (!closed) { closed = true; call("port_sse_close", id); } },
  };
  Object.seal(port);
  function fire(name, ev) {
    const h = port["on" + name];
    if (typeof h !== "function") return;
    try { h.call(port, ev); } catch (e) { log("error", `siyuan.server.private.es port on${name} threw: ${inspect(e)}`); }
  }
  serverPorts.set(id, (ev) => { if (ev.type === "close") { closed = true; serverPorts.delete(id); fire("close", { type: "close" }); } });
  return { port, start: () => fire("open", { type: "open" }) };
}
K.portEvent = (id, ev) => { const sink = serverPorts.get(id); if (sink) sink(ev); };

// server.private body.stream (changes page §2.8): a ReadableStream or an (async) iterable of string or
// BufferSource chunks; the host pulls one chunk at a time (K.streamRead) as fast as the client takes them, and
// cancels (K.streamCancel) when the client leaves
const bodyStreams = new Map();  // id -> { next() -> Promise<{value, done}>, cancel(reason) }
let bodyStreamSeq = 0;
function openBodyStream(spec) {
  const src = spec.stream;
  let source;
  if (RS.has(src)) {
    const s = RS.get(src);
    const r = acquireReader(s);
    source = { next: () => readerReadPromise(r), cancel: (reason) => rsCancel(s, reason) };
  } else if (src !== null && typeof src === "object" && typeof (src[Symbol.asyncIterator] || src[Symbol.iterator]) === "function") {
    const it = (src[Symbol.asyncIterator] || src[Symbol.iterator]).call(src);
    source = { next: () => Promise.resolve(it.next()), cancel: () => (typeof it.return === "function" ? it.return() : undefined) };
  } else throw new TypeError("body.stream.stream must be a ReadableStream or an async iterable");
  const id = ++bodyStreamSeq;
  bodyStreams.set(id, source);
  return { contentType: String(spec.contentType || "application/octet-stream"), id };
}
K.streamRead = (id) => {
  const source = bodyStreams.get(id);
  if (source === undefined) return null;
  return source.next().then(({ value, done }) => {
    if (done) { bodyStreams.delete(id); return null; }
    const bytes = typeof value === "string" ? utf8Encode(value) : toBytes(value);
    if (!bytes) throw new TypeError("a body.stream chunk must be a string or a BufferSource");
    return b64Encode(bytes, false);
  }, (e) => { bodyStreams.delete(id); throw e; });
};
K.streamCancel = (id, reason) => {
  const source = bodyStreams.get(id);
  bodyStreams.delete(id);
  return source === undefined ? null : Promise.resolve(source.cancel(reason)).then(() => null);
};

// server.private HTTP slot (§3.8): request JSON from the host, response back as JSON (raw data as base64)
K.http = (slotName, req) => {
  const slotObj = siyuan.server.private[slotName];
  const label = `siyuan.server[private][${slotName}].handler`;
  if (!slotObj || slotObj.handler === null || slotObj.handler === undefined) throw new Error(`${label} is not set`);
  if (typeof slotObj.handler !== "function") throw new Error(`${label} is not a function`);
  const body = req.request.body || {};
  if (body.dataBase64 !== undefined) body.data = dataObject(b64Decode(body.dataBase64), undefined, req.request.contentType);
  delete body.dataBase64;
  if (body.form && body.form.files) {
    for (const field of Object.keys(body.form.files)) {
      for (const f of body.form.files[field]) {
        const partType = f.headers && f.headers["Content-Type"] ? f.headers["Content-Type"][0] : "";
        f.data = dataObject(b64Decode(f.dataBase64 || ""), undefined, partType);
        delete f.dataBase64;
      }
    }
  }
  if (slotName !== "http") {
    // the ws/es port: after the handler succeeds, the read loop starts (ws) / onopen fires (es)
    const id = req.port;
    const made = slotName === "ws" ? makeServerSocket(id) : makeServerEvents(id);
    req.port = made.port;
    const started = () => { made.start(); return null; };
    const failed = (e) => { serverPorts.delete(id); throw e; };
    let r2;
    try { r2 = slotObj.handler.call(slotObj, req); } catch (e) { failed(e); }
    return r2 instanceof Promise ? r2.then(started, failed) : started();
  }
  const r = slotObj.handler.call(slotObj, req);
  const finish = (res) => {
    if (res === null || typeof res !== "object") throw new Error("invalid response format");
    const out = exportValue(Object.assign({}, res, { body: undefined }));
    const b = res.body;
    if (b && typeof b === "object") {
      out.body = {};
      for (const kind of Object.keys(b)) {
        if (kind === "raw" && b.raw) {
          const bytes = toBytes(b.raw.data);
          out.body.raw = { contentType: String(b.raw.contentType || "application/octet-stream"), base64: true,
            data: b64Encode(bytes || utf8Encode(String(b.raw.data === undefined ? "" : b.raw.data)), false) };
        } else if (kind === "stream") {
          if (b.stream) out.body.stream = openBodyStream(b.stream);
        } else out.body[kind] = exportValue(b[kind]);
      }
    } else out.body = null;
    return out;
  };
  return r instanceof Promise ? r.then(finish) : finish(r);
};
