// WHATWG Streams: WritableStream and its default controller (the standard's §5); the writer is streams_writer.js.
const WS = new WeakMap();            // WritableStream -> stream record
const WS_CONTROLLER = new WeakMap(); // WritableStreamDefaultController -> controller record
const CLOSE_SENTINEL = {};

// a deferred that knows whether it settled (the writer's ready/closed are replaced only while pending)
const pending = () => {
  const d = deferred();
  const resolve = d.resolve, reject = d.reject;
  d.state = "pending";
  d.resolve = (v) => { if (d.state === "pending") { d.state = "resolved"; resolve(v); } };
  d.reject = (e) => { if (d.state === "pending") { d.state = "rejected"; reject(e); } };
  return d;
};

function makeWritableStream(obj) {
  const ws = {
    obj, state: "writable", storedError: undefined, writer: undefined, controller: undefined, writeRequests: [],
    inFlightWriteRequest: undefined, closeRequest: undefined, inFlightCloseRequest: undefined,
    pendingAbortRequest: undefined, backpressure: false,
  };
  WS.set(obj, ws);
  return ws;
}
const wsCloseQueuedOrInFlight = (ws) => ws.closeRequest !== undefined || ws.inFlightCloseRequest !== undefined;
const wsHasOperationInFlight = (ws) => ws.inFlightWriteRequest !== undefined || ws.inFlightCloseRequest !== undefined;

function wsAbort(ws, reason) {
  if (ws.state === "closed" || ws.state === "errored") return resolved(undefined);
  ws.controller.abortController.abort(reason);
  if (ws.state === "closed" || ws.state === "errored") return resolved(undefined);
  if (ws.pendingAbortRequest !== undefined) return ws.pendingAbortRequest.promise.promise;
  const wasAlreadyErroring = ws.state === "erroring";
  const d = pending();
  ws.pendingAbortRequest = { promise: d, reason: wasAlreadyErroring ? undefined : reason, wasAlreadyErroring };
  if (!wasAlreadyErroring) wsStartErroring(ws, reason);
  return d.promise;
}
function wsClose(ws) {
  if (ws.state === "closed" || ws.state === "errored") {
    return rejected(new TypeError(`Cannot close a ${ws.state} WritableStream`));
  }
  const d = pending();
  ws.closeRequest = d;
  if (ws.writer !== undefined && ws.backpressure && ws.state === "writable") ws.writer.ready.resolve(undefined);
  const c = ws.controller;
  c.queue.push(CLOSE_SENTINEL, 0);
  wcAdvanceQueueIfNeeded(c);
  return d.promise;
}
function wsDealWithRejection(ws, e) {
  if (ws.state === "writable") wsStartErroring(ws, e);
  else wsFinishErroring(ws);
}
function wsStartErroring(ws, reason) {
  const c = ws.controller;
  ws.state = "erroring";
  ws.storedError = reason;
  if (ws.writer !== undefined) writerEnsureReadyRejected(ws.writer, reason);
  if (!wsHasOperationInFlight(ws) && c.started) wsFinishErroring(ws);
}
function wsFinishErroring(ws) {
  ws.state = "errored";
  ws.controller.queue.reset();
  const e = ws.storedError;
  for (const req of ws.writeRequests) req.reject(e);
  ws.writeRequests = [];
  const abort = ws.pendingAbortRequest;
  if (abort === undefined) { wsRejectCloseAndClosedIfNeeded(ws); return; }
  ws.pendingAbortRequest = undefined;
  if (abort.wasAlreadyErroring) { abort.promise.reject(e); wsRejectCloseAndClosedIfNeeded(ws); return; }
  const c = ws.controller;
  const result = c.abort(abort.reason);
  wcClearAlgorithms(c);
  result.then(() => { abort.promise.resolve(undefined); wsRejectCloseAndClosedIfNeeded(ws); },
    (r) => { abort.promise.reject(r); wsRejectCloseAndClosedIfNeeded(ws); });
}
function wsFinishInFlightWrite(ws) { ws.inFlightWriteRequest.resolve(undefined); ws.inFlightWriteRequest = undefined; }
function wsFinishInFlightWriteWithError(ws, e) {
  ws.inFlightWriteRequest.reject(e);
  ws.inFlightWriteRequest = undefined;
  wsDealWithRejection(ws, e);
}
function wsFinishInFlightClose(ws) {
  ws.inFlightCloseRequest.resolve(undefined);
  ws.inFlightCloseRequest = undefined;
  if (ws.state === "erroring") {
    ws.storedError = undefined;
    if (ws.pendingAbortRequest !== undefined) {
      ws.pendingAbortRequest.promise.resolve(undefined);
      ws.pendingAbortRequest = undefined;
    }
  }
  ws.state = "closed";
  if (ws.writer !== undefined) ws.writer.closed.resolve(undefined);
}
function wsFinishInFlightCloseWithError(ws, e) {
  ws.inFlightCloseRequest.reject(e);
  ws.inFlightCloseRequest = undefined;
  if (ws.pendingAbortRequest !== undefined) {
    ws.pendingAbortRequest.promise.reject(e);
    ws.pendingAbortRequest = undefined;
  }
  wsDealWithRejection(ws, e);
}
function wsRejectCloseAndClosedIfNeeded(ws) {
  if (ws.closeRequest !== undefined) {
    ws.closeRequest.reject(ws.storedError);
    ws.closeRequest = undefined;
  }
  if (ws.writer !== undefined) { ws.writer.closed.reject(ws.storedError); handled(ws.writer.closed.promise); }
}
function wsUpdateBackpressure(ws, backpressure) {
  const w = ws.writer;
  if (w !== undefined && backpressure !== ws.backpressure) {
    if (backpressure) w.ready = pending();
    else w.ready.resolve(undefined);
  }
  ws.backpressure = backpressure;
}

// ---- the controller --------------------------------------------------------------------------------
function setUpWritableController(ws, start, write, close, abort, hwm, size) {
  const c = {
    stream: ws, queue: new SizedQueue(), started: false, hwm, size, write, close, abort,
    abortController: new AbortController(), obj: Object.create(WritableStreamDefaultController.prototype),
  };
  WS_CONTROLLER.set(c.obj, c);
  ws.controller = c;
  wsUpdateBackpressure(ws, wcDesiredSize(c) <= 0);
  const startResult = start(c.obj);
  resolved(startResult).then(() => { c.started = true; wcAdvanceQueueIfNeeded(c); },
    (r) => { c.started = true; wsDealWithRejection(ws, r); });
  return c;
}
const wcDesiredSize = (c) => c.hwm - c.queue.total;
function wcClearAlgorithms(c) { c.write = undefined; c.close = undefined; c.abort = undefined; c.size = undefined; }
function wcChunkSize(c, chunk) {
  if (c.size === undefined) return 1;
  try { return c.size(chunk); } catch (e) { wcErrorIfNeeded(c, e); return 1; }
}
function wcWrite(c, chunk, size) {
  try { c.queue.push(chunk, size); } catch (e) { wcErrorIfNeeded(c, e); return; }
  const ws = c.stream;
  if (!wsCloseQueuedOrInFlight(ws) && ws.state === "writable") wsUpdateBackpressure(ws, wcDesiredSize(c) <= 0);
  wcAdvanceQueueIfNeeded(c);
}
function wcAdvanceQueueIfNeeded(c) {
  const ws = c.stream;
  if (!c.started || ws.inFlightWriteRequest !== undefined) return;
  if (ws.state === "erroring") { wsFinishErroring(ws); return; }
  if (c.queue.length === 0) return;
  const value = c.queue.peek();
  if (value === CLOSE_SENTINEL) wcProcessClose(c);
  else wcProcessWrite(c, value);
}
function wcErrorIfNeeded(c, e) { if (c.stream.state === "writable") wcError(c, e); }
function wcError(c, e) { wcClearAlgorithms(c); wsStartErroring(c.stream, e); }
function wcProcessClose(c) {
  const ws = c.stream;
  ws.inFlightCloseRequest = ws.closeRequest;
  ws.closeRequest = undefined;
  c.queue.shift();
  const sinkClose = c.close();
  wcClearAlgorithms(c);
  sinkClose.then(() => wsFinishInFlightClose(ws), (r) => wsFinishInFlightCloseWithError(ws, r));
}
function wcProcessWrite(c, chunk) {
  const ws = c.stream;
  ws.inFlightWriteRequest = ws.writeRequests.shift();
  c.write(chunk).then(() => {
    wsFinishInFlightWrite(ws);
    c.queue.shift();
    if (!wsCloseQueuedOrInFlight(ws) && ws.state === "writable") wsUpdateBackpressure(ws, wcDesiredSize(c) <= 0);
    wcAdvanceQueueIfNeeded(c);
  }, (r) => {
    if (ws.state === "writable") wcClearAlgorithms(c);
    wsFinishInFlightWriteWithError(ws, r);
  });
}

class WritableStreamDefaultController {
  constructor() { throw new TypeError("Illegal constructor"); }
  get signal() { return slotOf(WS_CONTROLLER, this, "WritableStreamDefaultController").abortController.signal; }
  error(e) {
    const c = slotOf(WS_CONTROLLER, this, "WritableStreamDefaultController");
    if (c.stream.state === "writable") wcError(c, e);
  }
}

// ---- the stream ----------------------------------------------------------------------------------
class WritableStream {
  constructor(underlyingSink, strategy) {
    const sink = underlyingSink === undefined ? null : checkDictionary(underlyingSink, "underlyingSink");
    strategy = checkDictionary(strategy, "strategy");
    const abort = sourceMethod(sink, "abort");
    const close = sourceMethod(sink, "close");
    const start = sourceMethod(sink, "start");
    if (sink !== null && sink.type !== undefined) throw new RangeError("Invalid type is specified");
    const write = sourceMethod(sink, "write");
    const size = extractSizeAlgorithm(strategy);
    const hwm = extractHighWaterMark(strategy, 1);
    const ws = makeWritableStream(this);
    let ctrl;
    setUpWritableController(ws,
      (c) => { ctrl = c; return start === undefined ? undefined : start.call(sink, c); },
      (chunk) => promiseCall(write, sink, chunk, ctrl),
      () => promiseCall(close, sink),
      (reason) => promiseCall(abort, sink, reason),
      hwm, size);
  }
  get locked() { return slotOf(WS, this, "WritableStream").writer !== undefined; }
  abort(reason) {
    const ws = WS.get(this);
    if (ws === undefined) return rejected(new TypeError("Illegal invocation"));
    if (ws.writer !== undefined) return rejected(new TypeError("Cannot abort a locked WritableStream"));
    return wsAbort(ws, reason);
  }
  close() {
    const ws = WS.get(this);
    if (ws === undefined) return rejected(new TypeError("Illegal invocation"));
    if (ws.writer !== undefined) return rejected(new TypeError("Cannot close a locked WritableStream"));
    if (wsCloseQueuedOrInFlight(ws)) return rejected(new TypeError("The stream is already closing"));
    return wsClose(ws);
  }
  getWriter() { return new WritableStreamDefaultWriter(this); }
}
