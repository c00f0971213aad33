// WHATWG Streams: WritableStreamDefaultWriter (the standard's §5.3), on the records of streams_writable.js.
const WS_WRITER = new WeakMap();

function acquireWriter(ws) {
  if (ws.writer !== undefined) throw new TypeError("WritableStream is locked to a writer");
  const w = { stream: ws, ready: pending(), closed: pending() };
  ws.writer = w;
  const state = ws.state;
  if (state === "writable") {
    if (wsCloseQueuedOrInFlight(ws) || !ws.backpressure) w.ready.resolve(undefined);
  } else if (state === "erroring") {
    w.ready.reject(ws.storedError);
    handled(w.ready.promise);
  } else if (state === "closed") {
    w.ready.resolve(undefined);
    w.closed.resolve(undefined);
  } else {
    w.ready.reject(ws.storedError);
    w.closed.reject(ws.storedError);
    handled(w.ready.promise);
    handled(w.closed.promise);
  }
  return w;
}
function writerEnsureReadyRejected(w, e) {
  if (w.ready.state !== "pending") w.ready = pending();
  w.ready.reject(e);
  handled(w.ready.promise);
}
function writerEnsureClosedRejected(w, e) {
  if (w.closed.state !== "pending") w.closed = pending();
  w.closed.reject(e);
  handled(w.closed.promise);
}
function writerRelease(w) {
  const e = new TypeError("The writer's lock was released");
  writerEnsureReadyRejected(w, e);
  writerEnsureClosedRejected(w, e);
  w.stream.writer = undefined;
  w.stream = undefined;
}
function writerWrite(w, chunk) {
  const ws = w.stream;
  const c = ws.controller;
  const size = wcChunkSize(c, chunk);
  if (ws !== w.stream) return rejected(new TypeError("The writer's lock was released"));
  if (ws.state === "errored") return Promise.reject(ws.storedError);
  if (wsCloseQueuedOrInFlight(ws) || ws.state === "closed") {
    return rejected(new TypeError("The stream is closing or closed and cannot be written to"));
  }
  if (ws.state === "erroring") return Promise.reject(ws.storedError);
  const d = pending();
  ws.writeRequests.push(d);
  wcWrite(c, chunk, size);
  return d.promise;
}
function writerCloseWithErrorPropagation(w) {
  const ws = w.stream;
  if (wsCloseQueuedOrInFlight(ws) || ws.state === "closed") return resolved(undefined);
  if (ws.state === "errored") return Promise.reject(ws.storedError);
  return wsClose(ws);
}

const released = () => rejected(new TypeError("The writer has no stream: its lock was released"));
class WritableStreamDefaultWriter {
  constructor(stream) {
    const w = acquireWriter(slotOf(WS, stream, "WritableStream"));
    WS_WRITER.set(this, w);
  }
  get closed() {
    const w = WS_WRITER.get(this);
    return w === undefined ? rejected(new TypeError("Illegal invocation")) : w.closed.promise;
  }
  get ready() {
    const w = WS_WRITER.get(this);
    return w === undefined ? rejected(new TypeError("Illegal invocation")) : w.ready.promise;
  }
  get desiredSize() {
    const w = slotOf(WS_WRITER, this, "WritableStreamDefaultWriter");
    if (w.stream === undefined) throw new TypeError("The writer has no stream: its lock was released");
    const state = w.stream.state;
    if (state === "errored" || state === "erroring") return null;
    if (state === "closed") return 0;
    return wcDesiredSize(w.stream.controller);
  }
  abort(reason) {
    const w = WS_WRITER.get(this);
    if (w === undefined) return rejected(new TypeError("Illegal invocation"));
    return w.stream === undefined ? released() : wsAbort(w.stream, reason);
  }
  close() {
    const w = WS_WRITER.get(this);
    if (w === undefined) return rejected(new TypeError("Illegal invocation"));
    if (w.stream === undefined) return released();
    if (wsCloseQueuedOrInFlight(w.stream)) return rejected(new TypeError("The stream is already closing"));
    return wsClose(w.stream);
  }
  releaseLock() {
    const w = slotOf(WS_WRITER, this, "WritableStreamDefaultWriter");
    if (w.stream !== undefined) writerRelease(w);
  }
  write(chunk) {
    const w = WS_WRITER.get(this);
    if (w === undefined) return rejected(new TypeError("Illegal invocation"));
    return w.stream === undefined ? released() : writerWrite(w, chunk);
  }
}
for (const C of [WritableStream, WritableStreamDefaultWriter, WritableStreamDefaultController]) {
  Object.defineProperty(C.prototype, Symbol.toStringTag, { value: C.name, configurable: true });
}
define("WritableStream", WritableStream);
define("WritableStreamDefaultWriter", WritableStreamDefaultWriter);
define("WritableStreamDefaultController", WritableStreamDefaultController);
