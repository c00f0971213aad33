// WHATWG Streams: what a ReadableStream does with its reader: tee, pipeTo / pipeThrough, async iteration, and
// ReadableStream.from. pipeTo uses the writable stream's records (streams_writable.js, a later part).
function rsTee(s) {
  const r = acquireReader(s);
  let reading = false, readAgain = false, canceled1 = false, canceled2 = false, reason1, reason2;
  let branch1, branch2;
  const cancelDone = deferred();
  const pull = () => {
    if (reading) { readAgain = true; return resolved(undefined); }
    reading = true;
    readerRead(r, {
      chunk: (chunk) => queueMicrotask(() => {
        readAgain = false;
        if (!canceled1) rcEnqueue(branch1.controller, chunk);
        if (!canceled2) rcEnqueue(branch2.controller, chunk);
        reading = false;
        if (readAgain) pull();
      }),
      close: () => {
        reading = false;
        if (!canceled1) rcClose(branch1.controller);
        if (!canceled2) rcClose(branch2.controller);
        if (!canceled1 || !canceled2) cancelDone.resolve(undefined);
      },
      error: () => { reading = false; },
    });
    return resolved(undefined);
  };
  const cancelBoth = () => cancelDone.resolve(rsCancel(s, [reason1, reason2]));
  const cancel1 = (reason) => { canceled1 = true; reason1 = reason; if (canceled2) cancelBoth(); return cancelDone.promise; };
  const cancel2 = (reason) => { canceled2 = true; reason2 = reason; if (canceled1) cancelBoth(); return cancelDone.promise; };
  branch1 = createReadableStream(noop, pull, cancel1);
  branch2 = createReadableStream(noop, pull, cancel2);
  r.closed.promise.catch((e) => {
    rcError(branch1.controller, e);
    rcError(branch2.controller, e);
    if (!canceled1 || !canceled2) cancelDone.resolve(undefined);
  });
  return [branch1.obj, branch2.obj];
}

function rsPipeTo(source, dest, preventClose, preventAbort, preventCancel, signal) {
  const reader = acquireReader(source);
  const writer = acquireWriter(dest);
  source.disturbed = true;
  let shuttingDown = false;
  let currentWrite = resolved(undefined);
  const done = deferred();
  let onAbort;

  const finalize = (isError, error) => {
    writerRelease(writer);
    readerRelease(reader);
    if (signal !== undefined) signal.removeEventListener("abort", onAbort);
    if (isError) done.reject(error); else done.resolve(undefined);
  };
  const waitForWrites = () => {
    const seen = currentWrite;
    return currentWrite.then(() => (seen !== currentWrite ? waitForWrites() : undefined));
  };
  const afterWrites = (then) => {
    if (dest.state === "writable" && !wsCloseQueuedOrInFlight(dest)) waitForWrites().then(then);
    else then();
  };
  const shutdownWithAction = (action, isError, error) => {
    if (shuttingDown) return;
    shuttingDown = true;
    afterWrites(() => {
      let p;
      try { p = resolved(action()); } catch (e) { p = Promise.reject(e); }
      p.then(() => finalize(isError, error), (e) => finalize(true, e));
    });
  };
  const shutdown = (isError, error) => {
    if (shuttingDown) return;
    shuttingDown = true;
    afterWrites(() => finalize(isError, error));
  };

  if (signal !== undefined) {
    onAbort = () => {
      const error = signal.reason;
      const actions = [];
      if (!preventAbort) actions.push(() => (dest.state === "writable" ? wsAbort(dest, error) : resolved(undefined)));
      if (!preventCancel) actions.push(() => (source.state === "readable" ? rsCancel(source, error) : resolved(undefined)));
      shutdownWithAction(() => Promise.all(actions.map((a) => a())), true, error);
    };
    if (signal.aborted) { onAbort(); return done.promise; }
    signal.addEventListener("abort", onAbort);
  }

  // the error and close propagation of the standard, checked now and whenever a state changes
  const sourceErrored = (e) => {
    if (!preventAbort) shutdownWithAction(() => wsAbort(dest, e), true, e);
    else shutdown(true, e);
  };
  const destErrored = (e) => {
    if (!preventCancel) shutdownWithAction(() => rsCancel(source, e), true, e);
    else shutdown(true, e);
  };
  const sourceClosed = () => {
    if (!preventClose) shutdownWithAction(() => writerCloseWithErrorPropagation(writer));
    else shutdown();
  };
  const destClosed = () => {
    const e = new TypeError("the destination writable stream closed before all data could be piped to it");
    if (!preventCancel) shutdownWithAction(() => rsCancel(source, e), true, e);
    else shutdown(true, e);
  };
  if (source.state === "errored") sourceErrored(source.storedError);
  else reader.closed.promise.then(() => { if (!shuttingDown) sourceClosed(); }, sourceErrored);
  if (dest.state === "errored" || dest.state === "erroring") destErrored(dest.storedError);
  else writer.closed.promise.then(noop, destErrored);
  if (!shuttingDown) {
    if (source.state === "closed") sourceClosed();
    else if (wsCloseQueuedOrInFlight(dest) || dest.state === "closed") destClosed();
  }

  const step = () => {
    if (shuttingDown) return;
    writer.ready.promise.then(() => {
      if (shuttingDown) return;
      readerRead(reader, {
        chunk: (chunk) => {
          currentWrite = handled(writerWrite(writer, chunk).then(noop, noop));
          step();
        },
        close: noop,
        error: noop,
      });
    }, noop);
  };
  step();
  return done.promise;
}

// ---- async iteration --------------------------------------------------------------------------------
const ASYNC_ITERATOR_PROTO = Object.getPrototypeOf(Object.getPrototypeOf(async function* () {}).prototype);
const RS_ITER = new WeakMap();
const ReadableStreamAsyncIteratorPrototype = Object.create(ASYNC_ITERATOR_PROTO, {
  next: { writable: true, configurable: true, value: function next() {
    const it = RS_ITER.get(this);
    if (it === undefined) return rejected(new TypeError("Illegal invocation"));
    const run = () => {
      if (it.finished) return { value: undefined, done: true };
      if (it.reader.stream === undefined) return Promise.reject(new TypeError("The iterator's reader was released"));
      return readerReadPromise(it.reader).then((result) => {
        if (result.done) { it.finished = true; readerRelease(it.reader); }
        return result;
      }, (e) => { it.finished = true; if (it.reader.stream !== undefined) readerRelease(it.reader); throw e; });
    };
    it.ongoing = it.ongoing ? it.ongoing.then(run, run) : resolved(undefined).then(run);
    return it.ongoing;
  } },
  return: { writable: true, configurable: true, value: function (value) {
    const it = RS_ITER.get(this);
    if (it === undefined) return rejected(new TypeError("Illegal invocation"));
    const run = () => {
      if (it.finished) return { value, done: true };
      it.finished = true;
      const r = it.reader;
      if (r.stream === undefined) return Promise.reject(new TypeError("The iterator's reader was released"));
      if (!it.preventCancel) {
        const p = rsCancel(r.stream, value);
        readerRelease(r);
        return p.then(() => ({ value, done: true }));
      }
      readerRelease(r);
      return { value, done: true };
    };
    it.ongoing = it.ongoing ? it.ongoing.then(run, run) : resolved(undefined).then(run);
    return it.ongoing;
  } },
});
function rsValues(options) {
  const s = slotOf(RS, this, "ReadableStream");
  const preventCancel = options != null && !!checkDictionary(options, "options").preventCancel;
  const it = Object.create(ReadableStreamAsyncIteratorPrototype);
  RS_ITER.set(it, { reader: acquireReader(s), preventCancel, finished: false, ongoing: undefined });
  return it;
}

// ---- ReadableStream.from(asyncIterable | iterable) -----------------------------------------------
function rsFrom(iterable) {
  if (iterable == null) throw new TypeError("ReadableStream.from needs an iterable or async iterable");
  if (RS.has(iterable)) {
    const src = RS.get(iterable);
    const r = acquireReader(src);
    return createReadableStream(noop, (c) => readerReadPromise(r).then((res) => {
      if (res.done) rcClose(RS_CONTROLLER.get(c)); else rcEnqueue(RS_CONTROLLER.get(c), res.value);
    }), (reason) => rsCancel(src, reason), 0).obj;
  }
  let method = iterable[Symbol.asyncIterator];
  let sync = false;
  if (method == null) { method = iterable[Symbol.iterator]; sync = true; }
  if (typeof method !== "function") throw new TypeError("ReadableStream.from needs an iterable or async iterable");
  const iterator = method.call(iterable);
  if (iterator === null || typeof iterator !== "object") throw new TypeError("the iterator method returned a non-object");
  const next = iterator.next;
  let s;
  const pull = () => promiseCall(next, iterator).then((result) => {
    if (result === null || typeof result !== "object") throw new TypeError("iterator result is not an object");
    if (result.done) { rcClose(s.controller); return undefined; }
    return (sync ? resolved(result.value) : resolved(undefined).then(() => result.value)).then((v) => rcEnqueue(s.controller, v));
  });
  const cancel = (reason) => {
    let ret;
    try { ret = iterator.return; } catch (e) { return Promise.reject(e); }
    if (ret == null) return resolved(undefined);
    return promiseCall(ret, iterator, reason).then((r) => {
      if (r === null || typeof r !== "object") throw new TypeError("iterator return() result is not an object");
    });
  };
  s = createReadableStream(noop, pull, cancel, 0);
  return s.obj;
}

Object.defineProperties(ReadableStream.prototype, {
  tee: { writable: true, configurable: true, value: function tee() { return rsTee(slotOf(RS, this, "ReadableStream")); } },
  pipeTo: { writable: true, configurable: true, value: function pipeTo(destination, options) {
    const s = RS.get(this);
    if (s === undefined) return rejected(new TypeError("Illegal invocation"));
    const dest = typeof destination === "object" && destination !== null ? WS.get(destination) : undefined;
    if (dest === undefined) return rejected(new TypeError("pipeTo's destination must be a WritableStream"));
    let o;
    try { o = checkDictionary(options, "options"); } catch (e) { return rejected(e); }
    const signal = o.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) return rejected(new TypeError("signal must be an AbortSignal"));
    if (rsLocked(s)) return rejected(new TypeError("Cannot pipe a locked ReadableStream"));
    if (dest.writer !== undefined) return rejected(new TypeError("Cannot pipe to a locked WritableStream"));
    return rsPipeTo(s, dest, !!o.preventClose, !!o.preventAbort, !!o.preventCancel, signal);
  } },
  pipeThrough: { writable: true, configurable: true, value: function pipeThrough(transform, options) {
    const s = slotOf(RS, this, "ReadableStream");
    const readable = transform == null ? undefined : transform.readable;
    const writable = transform == null ? undefined : transform.writable;
    const rs = RS.get(readable), ws = WS.get(writable);
    if (rs === undefined || ws === undefined) throw new TypeError("pipeThrough needs { readable, writable } streams");
    const o = checkDictionary(options, "options");
    if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) throw new TypeError("signal must be an AbortSignal");
    if (rsLocked(s)) throw new TypeError("Cannot pipe a locked ReadableStream");
    if (ws.writer !== undefined) throw new TypeError("Cannot pipe to a locked WritableStream");
    handled(rsPipeTo(s, ws, !!o.preventClose, !!o.preventAbort, !!o.preventCancel, o.signal));
    return readable;
  } },
  values: { writable: true, configurable: true, value: rsValues },
  [Symbol.asyncIterator]: { writable: true, configurable: true, value: rsValues },
});
Object.defineProperty(ReadableStream, "from", { writable: true, configurable: true, value: function from(x) { return rsFrom(x); } });
