// WHATWG Streams: TransformStream and its default controller (the standard's §6), a writable side and a readable
// side joined by the transformer, with the writable side held back while the readable side is full.
const TS = new WeakMap();            // TransformStream -> record
const TS_CONTROLLER = new WeakMap(); // TransformStreamDefaultController -> controller record

function createWritableStream(start, write, close, abort, hwm, size) {
  const ws = makeWritableStream(Object.create(WritableStream.prototype));
  setUpWritableController(ws, start, write, close, abort, hwm, size);
  return ws;
}

function tsSetBackpressure(ts, backpressure) {
  if (ts.backpressureChange !== undefined) ts.backpressureChange.resolve(undefined);
  ts.backpressureChange = deferred();
  ts.backpressure = backpressure;
}
function tsUnblockWrite(ts) { if (ts.backpressure) tsSetBackpressure(ts, false); }
function tsClearAlgorithms(c) { c.transform = undefined; c.flush = undefined; c.cancel = undefined; }
function tsErrorWritableAndUnblockWrite(ts, e) {
  tsClearAlgorithms(ts.controller);
  wcErrorIfNeeded(ts.writable.controller, e);
  tsUnblockWrite(ts);
}
function tsError(ts, e) {
  rcError(ts.readable.controller, e);
  tsErrorWritableAndUnblockWrite(ts, e);
}
function tcEnqueue(c, chunk) {
  const ts = c.stream;
  const rc = ts.readable.controller;
  if (!rcCanCloseOrEnqueue(rc)) throw new TypeError("The readable side is not in a state that permits enqueue");
  try { rcEnqueue(rc, chunk); } catch (e) { tsErrorWritableAndUnblockWrite(ts, e); throw ts.readable.storedError; }
  const backpressure = !rcShouldCallPull(rc);
  if (backpressure !== ts.backpressure) tsSetBackpressure(ts, true);
}
function tcPerformTransform(c, chunk) {
  return c.transform(chunk).catch((r) => { tsError(c.stream, r); throw r; });
}
// the finishing step shared by close, abort and cancel: run it once, remember its promise
function tsFinish(c, algorithm, settle) {
  if (c.finish !== undefined) return c.finish.promise;
  c.finish = deferred();
  const result = algorithm();
  tsClearAlgorithms(c);
  result.then(() => settle(c.finish, undefined), (r) => settle(c.finish, r, true));
  return c.finish.promise;
}
function tsSinkWrite(ts, chunk) {
  const c = ts.controller;
  if (!ts.backpressure) return tcPerformTransform(c, chunk);
  return ts.backpressureChange.promise.then(() => {
    if (ts.writable.state === "erroring") throw ts.writable.storedError;
    return tcPerformTransform(c, chunk);
  });
}
function tsSinkAbort(ts, reason) {
  const c = ts.controller, readable = ts.readable;
  return tsFinish(c, () => c.cancel(reason), (finish, r, failed) => {
    if (failed) { rcError(readable.controller, r); finish.reject(r); }
    else if (readable.state === "errored") finish.reject(readable.storedError);
    else { rcError(readable.controller, reason); finish.resolve(undefined); }
  });
}
function tsSinkClose(ts) {
  const c = ts.controller, readable = ts.readable;
  return tsFinish(c, () => c.flush(), (finish, r, failed) => {
    if (failed) { rcError(readable.controller, r); finish.reject(r); }
    else if (readable.state === "errored") finish.reject(readable.storedError);
    else { rcClose(readable.controller); finish.resolve(undefined); }
  });
}
function tsSourcePull(ts) {
  tsSetBackpressure(ts, false);
  return ts.backpressureChange.promise;
}
function tsSourceCancel(ts, reason) {
  const c = ts.controller, writable = ts.writable;
  return tsFinish(c, () => c.cancel(reason), (finish, r, failed) => {
    if (failed) { wcErrorIfNeeded(writable.controller, r); tsUnblockWrite(ts); finish.reject(r); }
    else if (writable.state === "errored") finish.reject(writable.storedError);
    else { wcErrorIfNeeded(writable.controller, reason); tsUnblockWrite(ts); finish.resolve(undefined); }
  });
}

class TransformStreamDefaultController {
  constructor() { throw new TypeError("Illegal constructor"); }
  get desiredSize() {
    return rcDesiredSize(slotOf(TS_CONTROLLER, this, "TransformStreamDefaultController").stream.readable.controller);
  }
  enqueue(chunk) { tcEnqueue(slotOf(TS_CONTROLLER, this, "TransformStreamDefaultController"), chunk); }
  error(reason) { tsError(slotOf(TS_CONTROLLER, this, "TransformStreamDefaultController").stream, reason); }
  terminate() {
    const ts = slotOf(TS_CONTROLLER, this, "TransformStreamDefaultController").stream;
    rcClose(ts.readable.controller);
    tsErrorWritableAndUnblockWrite(ts, new TypeError("The transform stream has been terminated"));
  }
}

class TransformStream {
  constructor(transformer, writableStrategy, readableStrategy) {
    const t = transformer === undefined ? null : checkDictionary(transformer, "transformer");
    writableStrategy = checkDictionary(writableStrategy, "writableStrategy");
    readableStrategy = checkDictionary(readableStrategy, "readableStrategy");
    const cancel = sourceMethod(t, "cancel");
    const flush = sourceMethod(t, "flush");
    if (t !== null && t.readableType !== undefined) throw new RangeError("Invalid readableType specified");
    const start = sourceMethod(t, "start");
    const transform = sourceMethod(t, "transform");
    if (t !== null && t.writableType !== undefined) throw new RangeError("Invalid writableType specified");
    const readableHWM = extractHighWaterMark(readableStrategy, 0);
    const readableSize = extractSizeAlgorithm(readableStrategy);
    const writableHWM = extractHighWaterMark(writableStrategy, 1);
    const writableSize = extractSizeAlgorithm(writableStrategy);

    const started = deferred();
    const ts = { obj: this, backpressure: undefined, backpressureChange: undefined, controller: undefined };
    const startAlgorithm = () => started.promise;
    ts.writable = createWritableStream(startAlgorithm, (chunk) => tsSinkWrite(ts, chunk), () => tsSinkClose(ts),
      (reason) => tsSinkAbort(ts, reason), writableHWM, writableSize);
    ts.readable = createReadableStream(startAlgorithm, () => tsSourcePull(ts), (reason) => tsSourceCancel(ts, reason),
      readableHWM, readableSize);
    tsSetBackpressure(ts, true);
    const c = { stream: ts, finish: undefined, obj: Object.create(TransformStreamDefaultController.prototype) };
    TS_CONTROLLER.set(c.obj, c);
    ts.controller = c;
    c.transform = transform !== undefined ? (chunk) => promiseCall(transform, t, chunk, c.obj) : (chunk) => {
      try { tcEnqueue(c, chunk); return resolved(undefined); } catch (e) { return Promise.reject(e); }
    };
    c.flush = () => promiseCall(flush, t, c.obj);
    c.cancel = (reason) => promiseCall(cancel, t, reason);
    TS.set(this, ts);
    started.resolve(start === undefined ? undefined : start.call(t, c.obj));
  }
  get readable() { return slotOf(TS, this, "TransformStream").readable.obj; }
  get writable() { return slotOf(TS, this, "TransformStream").writable.obj; }
}
for (const C of [TransformStream, TransformStreamDefaultController]) {
  Object.defineProperty(C.prototype, Symbol.toStringTag, { value: C.name, configurable: true });
}
define("TransformStream", TransformStream);
define("TransformStreamDefaultController", TransformStreamDefaultController);
