// WHATWG Streams: ReadableStream, its default controller and default reader (the records and abstract operations
// of the standard's §4). Byte sources (`type: "bytes"`) run as default streams: there is no BYOB reader.
const RS = new WeakMap();          // ReadableStream -> stream record
const RS_READER = new WeakMap();   // ReadableStreamDefaultReader -> reader record
const RS_CONTROLLER = new WeakMap(); // ReadableStreamDefaultController -> controller record

const rsLocked = (s) => s.reader !== undefined;

function makeReadableStream(obj) {
  const s = { obj, state: "readable", storedError: undefined, reader: undefined, disturbed: false, controller: undefined };
  RS.set(obj, s);
  return s;
}

// ---- the controller --------------------------------------------------------------------------------
function setUpReadableController(s, start, pull, cancel, hwm, size) {
  const c = {
    stream: s, queue: new SizedQueue(), started: false, closeRequested: false, pulling: false, pullAgain: false,
    hwm, size, pull, cancel, obj: Object.create(ReadableStreamDefaultController.prototype),
  };
  RS_CONTROLLER.set(c.obj, c);
  s.controller = c;
  const startResult = start(c.obj);
  resolved(startResult).then(() => { c.started = true; rcCallPullIfNeeded(c); }, (e) => rcError(c, e));
  return c;
}
function rcClearAlgorithms(c) { c.pull = undefined; c.cancel = undefined; c.size = undefined; }
const rcCanCloseOrEnqueue = (c) => !c.closeRequested && c.stream.state === "readable";
function rcDesiredSize(c) {
  const state = c.stream.state;
  if (state === "errored") return null;
  if (state === "closed") return 0;
  return c.hwm - c.queue.total;
}
function rcShouldCallPull(c) {
  if (!rcCanCloseOrEnqueue(c) || !c.started) return false;
  if (rsLocked(c.stream) && c.stream.reader.requests.length > 0) return true;
  return rcDesiredSize(c) > 0;
}
function rcCallPullIfNeeded(c) {
  if (!rcShouldCallPull(c)) return;
  if (c.pulling) { c.pullAgain = true; return; }
  c.pulling = true;
  c.pull(c.obj).then(() => {
    c.pulling = false;
    if (c.pullAgain) { c.pullAgain = false; rcCallPullIfNeeded(c); }
  }, (e) => rcError(c, e));
}
function rcClose(c) {
  if (!rcCanCloseOrEnqueue(c)) return;
  c.closeRequested = true;
  if (c.queue.length === 0) { rcClearAlgorithms(c); rsClose(c.stream); }
}
function rcEnqueue(c, chunk) {
  if (!rcCanCloseOrEnqueue(c)) return;
  const s = c.stream;
  if (rsLocked(s) && s.reader.requests.length > 0) {
    s.reader.requests.shift().chunk(chunk);
  } else {
    let size;
    try { size = c.size(chunk); } catch (e) { rcError(c, e); throw e; }
    try { c.queue.push(chunk, size); } catch (e) { rcError(c, e); throw e; }
  }
  rcCallPullIfNeeded(c);
}
function rcError(c, e) {
  if (c.stream.state !== "readable") return;
  c.queue.reset();
  rcClearAlgorithms(c);
  rsError(c.stream, e);
}
function rcCancelSteps(c, reason) {
  c.queue.reset();
  const result = c.cancel(reason);
  rcClearAlgorithms(c);
  return result;
}
function rcPullSteps(c, request) {
  if (c.queue.length > 0) {
    const chunk = c.queue.shift();
    if (c.closeRequested && c.queue.length === 0) { rcClearAlgorithms(c); rsClose(c.stream); }
    else rcCallPullIfNeeded(c);
    request.chunk(chunk);
  } else {
    c.stream.reader.requests.push(request);
    rcCallPullIfNeeded(c);
  }
}

class ReadableStreamDefaultController {
  constructor() { throw new TypeError("Illegal constructor"); }
  get desiredSize() { return rcDesiredSize(slotOf(RS_CONTROLLER, this, "ReadableStreamDefaultController")); }
  close() {
    const c = slotOf(RS_CONTROLLER, this, "ReadableStreamDefaultController");
    if (!rcCanCloseOrEnqueue(c)) throw new TypeError("The stream is not in a state that permits close");
    rcClose(c);
  }
  enqueue(chunk) {
    const c = slotOf(RS_CONTROLLER, this, "ReadableStreamDefaultController");
    if (!rcCanCloseOrEnqueue(c)) throw new TypeError("The stream is not in a state that permits enqueue");
    rcEnqueue(c, chunk);
  }
  error(e) { rcError(slotOf(RS_CONTROLLER, this, "ReadableStreamDefaultController"), e); }
}

// ---- the stream's state changes ------------------------------------------------------------------
function rsClose(s) {
  s.state = "closed";
  const r = s.reader;
  if (r === undefined) return;
  r.closed.resolve(undefined);
  const requests = r.requests;
  r.requests = [];
  for (const req of requests) req.close();
}
function rsError(s, e) {
  s.state = "errored";
  s.storedError = e;
  const r = s.reader;
  if (r === undefined) return;
  r.closed.reject(e);
  handled(r.closed.promise);
  const requests = r.requests;
  r.requests = [];
  for (const req of requests) req.error(e);
}
function rsCancel(s, reason) {
  s.disturbed = true;
  if (s.state === "closed") return resolved(undefined);
  if (s.state === "errored") return Promise.reject(s.storedError);
  rsClose(s);
  return rcCancelSteps(s.controller, reason).then(noop);
}

// ---- the reader ----------------------------------------------------------------------------------
function acquireReader(s) {
  if (rsLocked(s)) throw new TypeError("ReadableStream is locked to a reader");
  const r = { stream: s, requests: [], closed: deferred(), obj: undefined };
  s.reader = r;
  if (s.state === "closed") r.closed.resolve(undefined);
  else if (s.state === "errored") { r.closed.reject(s.storedError); handled(r.closed.promise); }
  return r;
}
// read with callbacks (chunk / close / error): what tee and pipeTo use
function readerRead(r, request) {
  const s = r.stream;
  s.disturbed = true;
  if (s.state === "closed") request.close();
  else if (s.state === "errored") request.error(s.storedError);
  else rcPullSteps(s.controller, request);
}
function readerReadPromise(r) {
  const d = deferred();
  readerRead(r, {
    chunk: (value) => d.resolve({ value, done: false }),
    close: () => d.resolve({ value: undefined, done: true }),
    error: (e) => d.reject(e),
  });
  return d.promise;
}
function readerRelease(r) {
  const s = r.stream;
  const e = new TypeError("The reader's lock was released");
  if (s.state === "readable") r.closed.reject(e);
  else { r.closed = deferred(); r.closed.reject(e); }
  handled(r.closed.promise);
  s.reader = undefined;
  r.stream = undefined;
  const requests = r.requests;
  r.requests = [];
  for (const req of requests) req.error(e);
}

class ReadableStreamDefaultReader {
  constructor(stream) {
    const r = acquireReader(slotOf(RS, stream, "ReadableStream"));
    r.obj = this;
    RS_READER.set(this, r);
  }
  get closed() {
    const r = RS_READER.get(this);
    return r === undefined ? rejected(new TypeError("Illegal invocation")) : r.closed.promise;
  }
  read() {
    const r = RS_READER.get(this);
    if (r === undefined) return rejected(new TypeError("Illegal invocation"));
    if (r.stream === undefined) return rejected(new TypeError("The reader has no stream: its lock was released"));
    return readerReadPromise(r);
  }
  releaseLock() {
    const r = slotOf(RS_READER, this, "ReadableStreamDefaultReader");
    if (r.stream !== undefined) readerRelease(r);
  }
  cancel(reason) {
    const r = RS_READER.get(this);
    if (r === undefined) return rejected(new TypeError("Illegal invocation"));
    if (r.stream === undefined) return rejected(new TypeError("The reader has no stream: its lock was released"));
    return rsCancel(r.stream, reason);
  }
}

// ---- the stream ----------------------------------------------------------------------------------
// a stream of the standard's CreateReadableStream: algorithms given directly, not from an underlying source
function createReadableStream(start, pull, cancel, hwm = 1, size = () => 1) {
  const s = makeReadableStream(Object.create(ReadableStream.prototype));
  setUpReadableController(s, start, pull, cancel, hwm, size);
  return s;
}

class ReadableStream {
  constructor(underlyingSource, strategy) {
    const source = underlyingSource === undefined ? null : checkDictionary(underlyingSource, "underlyingSource");
    strategy = checkDictionary(strategy, "strategy");
    const cancel = sourceMethod(source, "cancel");
    const pull = sourceMethod(source, "pull");
    const start = sourceMethod(source, "start");
    const type = source === null ? undefined : source.type;
    if (type !== undefined && String(type) !== "bytes") throw new TypeError(`'${type}' is not a valid stream type`);
    const size = extractSizeAlgorithm(strategy);
    const hwm = extractHighWaterMark(strategy, type === undefined ? 1 : 0);
    if (type !== undefined && strategy.size !== undefined) throw new RangeError("A byte stream cannot have a size function");
    const s = makeReadableStream(this);
    setUpReadableController(s,
      (ctrl) => (start === undefined ? undefined : start.call(source, ctrl)),
      (ctrl) => promiseCall(pull, source, ctrl),
      (reason) => promiseCall(cancel, source, reason),
      hwm, size);
  }
  get locked() { return rsLocked(slotOf(RS, this, "ReadableStream")); }
  cancel(reason) {
    const s = RS.get(this);
    if (s === undefined) return rejected(new TypeError("Illegal invocation"));
    if (rsLocked(s)) return rejected(new TypeError("Cannot cancel a locked ReadableStream"));
    return rsCancel(s, reason);
  }
  getReader(options) {
    const s = slotOf(RS, this, "ReadableStream");
    const mode = options == null ? undefined : checkDictionary(options, "options").mode;
    if (mode !== undefined) {
      if (String(mode) === "byob") throw new TypeError("BYOB readers are not supported: use the default reader");
      throw new TypeError(`'${mode}' is not a valid reader mode`);
    }
    return new ReadableStreamDefaultReader(this, s);
  }
}
for (const C of [ReadableStream, ReadableStreamDefaultReader, ReadableStreamDefaultController]) {
  Object.defineProperty(C.prototype, Symbol.toStringTag, { value: C.name, configurable: true });
}
define("ReadableStream", ReadableStream);
define("ReadableStreamDefaultReader", ReadableStreamDefaultReader);
define("ReadableStreamDefaultController", ReadableStreamDefaultController);
