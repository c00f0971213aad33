"""WHATWG Streams in a real plugin VM: ReadableStream (readers, tee, pipeTo/pipeThrough, async iteration, from),
WritableStream (writers, backpressure, close, abort), TransformStream and the queuing strategies.

Conformance: cases ported (assertions, not files) from the web-platform-tests ``streams/``:
readable-streams/{general,default-reader,tee,templated,async-iterator,from,cancel}.any.js,
writable-streams/{general,backpressure,aborting,close,write}.any.js, transform-streams/{general,backpressure,
errors,terminate}.any.js, piping/{general,close-propagation-forward,error-propagation-forward,abort}.any.js,
queuing-strategies.any.js.
"""

from __future__ import annotations

from kplug_testing import Host
from siyuan_probe import run, started


async def test_readable_stream_reads_queues_and_reports_desired_size(host: Host) -> None:
    await started(host)
    got = await run(host, """
      let ctrl;
      const pulls = [];
      const rs = new ReadableStream({ start(c) { ctrl = c; c.enqueue("a"); }, pull(c) { pulls.push(c.desiredSize); } },
                                    { highWaterMark: 3 });
      const sizes = [ctrl.desiredSize];
      ctrl.enqueue("b");
      sizes.push(ctrl.desiredSize);
      await Promise.resolve();
      const r = rs.getReader();
      const locked = [rs.locked, (() => { try { rs.getReader(); return "no error"; } catch (e) { return e.name; } })()];
      const reads = [await r.read(), await r.read()];
      ctrl.close();
      const after = [await r.read(), ctrl.desiredSize, await r.closed];
      r.releaseLock();
      return {
        sizes, pulls: pulls.length > 0, locked, reads, after, unlocked: rs.locked,
        closeAgain: (() => { try { ctrl.close(); return "no error"; } catch (e) { return e.name; } })(),
        badType: (() => { try { new ReadableStream({ type: "nope" }); } catch (e) { return e.name; } })(),
        badHwm: (() => { try { new ReadableStream({}, { highWaterMark: -1 }); } catch (e) { return e.name; } })(),
        tags: [String(rs), Object.prototype.toString.call(r)],
        illegal: (() => { try { new ReadableStreamDefaultController(); } catch (e) { return e.name; } })(),
        byob: (() => { try { rs.getReader({ mode: "byob" }); } catch (e) { return e.name; } })(),
      };
    """)
    assert got["sizes"] == [2, 1]
    assert got["pulls"]
    assert got["locked"] == [True, "TypeError"]
    assert got["reads"] == [{"value": "a", "done": False}, {"value": "b", "done": False}]
    assert got["after"] == [{"value": None, "done": True}, 0, None]
    assert got["unlocked"] is False
    assert got["closeAgain"] == "TypeError" and got["badType"] == "TypeError" and got["badHwm"] == "RangeError"
    assert got["tags"] == ["[object ReadableStream]", "[object ReadableStreamDefaultReader]"]
    assert got["illegal"] == "TypeError" and got["byob"] == "TypeError"


async def test_errors_cancel_and_release_lock_settle_pending_reads(host: Host) -> None:
    await started(host)
    got = await run(host, """
      const out = {};
      let c1;
      const errored = new ReadableStream({ start(c) { c1 = c; } });
      const r1 = errored.getReader();
      const pending = r1.read().then(() => "resolved", (e) => "rejected:" + e);
      c1.error("boom");
      out.errored = [await pending, await r1.closed.then(() => "ok", (e) => "closed:" + e),
                     await r1.read().then(() => "ok", (e) => "again:" + e)];
      let reason;
      const cancelled = new ReadableStream({ cancel(r) { reason = r; return "ignored"; } });
      out.cancel = [await cancelled.cancel("why"), reason];
      const rs = new ReadableStream();
      const r2 = rs.getReader();
      const waiting = r2.read().then(() => "resolved", (e) => e.name);
      r2.releaseLock();
      out.released = [await waiting, await r2.closed.then(() => "ok", (e) => e.name), rs.locked,
                      await r2.read().then(() => "ok", (e) => e.name)];
      const throwingStart = (() => { try { new ReadableStream({ start() { throw new Error("start"); } }); }
                                    catch (e) { return e.message; } })();
      const rejecting = new ReadableStream({ start() { return Promise.reject(new Error("async start")); } });
      out.start = [throwingStart, await rejecting.getReader().read().then(() => "ok", (e) => e.message)];
      const locked = new ReadableStream(); locked.getReader();
      out.cancelLocked = await locked.cancel().then(() => "ok", (e) => e.name);
      const badSize = new ReadableStream({}, { size() { return -1; } });
      let ctrlErr;
      const bs = new ReadableStream({ start(c) { try { c.enqueue("x"); } catch (e) { ctrlErr = e.name; } } },
        { size: () => NaN });
      out.badSize = [ctrlErr, await bs.getReader().closed.then(() => "ok", (e) => e.name), badSize.locked];
      return out;
    """)
    assert got["errored"] == ["rejected:boom", "closed:boom", "again:boom"]
    assert got["cancel"] == [None, "why"]
    assert got["released"] == ["TypeError", "TypeError", False, "TypeError"]
    assert got["start"] == ["start", "async start"]
    assert got["cancelLocked"] == "TypeError"
    assert got["badSize"] == ["RangeError", "RangeError", False]


async def test_tee_gives_both_branches_every_chunk_and_cancels_the_source_with_both_reasons(host: Host) -> None:
    await started(host)
    got = await run(host, """
      const [a, b] = new ReadableStream({ start(c) { c.enqueue("a"); c.enqueue("b"); c.close(); } }).tee();
      const all = async (s) => { const out = []; for await (const x of s) out.push(x); return out; };
      const both = await Promise.all([all(a), all(b)]);
      let reason;
      const src = new ReadableStream({ cancel(r) { reason = r; } });
      const [x, y] = src.tee();
      const locked = src.locked;
      const first = x.cancel("r1");
      let firstDone = false; first.then(() => { firstDone = true; });
      await Promise.resolve(); await Promise.resolve();
      const beforeSecond = firstDone;
      await y.cancel("r2");
      await first;
      let c;
      const err = new ReadableStream({ start(ctrl) { c = ctrl; } });
      const [e1, e2] = err.tee();
      c.error(new Error("src"));
      const errors = await Promise.all([e1, e2].map((s) => s.getReader().read().then(() => "ok", (e) => e.message)));
      return { both, locked, beforeSecond, reason, errors };
    """)
    assert got["both"] == [["a", "b"], ["a", "b"]]
    assert got["locked"] is True and got["beforeSecond"] is False
    assert got["reason"] == ["r1", "r2"]
    assert got["errors"] == ["src", "src"]


async def test_async_iteration_and_readable_stream_from(host: Host) -> None:
    await started(host)
    got = await run(host, """
      const out = {};
      async function* gen() { yield 1; yield Promise.resolve(2); yield 3; }
      const collect = async (s) => { const r = []; for await (const x of s) r.push(x); return r; };
      out.fromAsync = await collect(ReadableStream.from(gen()));
      out.fromArray = await collect(ReadableStream.from([Promise.resolve("p"), "q"]));
      out.fromString = await collect(ReadableStream.from("ab"));
      out.fromBad = [null, 1, {}].map((x) => { try { ReadableStream.from(x); return "no error";
        } catch (e) { return e.name; } });
      let returned = false;
      const it = { [Symbol.iterator]() { let i = 0; return { next: () => ({ value: i++, done: false }),
        return: () => { returned = true; return {}; } }; } };
      const s = ReadableStream.from(it);
      for await (const x of s) { if (x === 2) break; }
      out.breakCancels = [returned, s.locked];
      let cancelled = false;
      const keep = new ReadableStream({ start(c) { c.enqueue(1); c.enqueue(2); }, cancel() { cancelled = true; } });
      for await (const x of keep.values({ preventCancel: true })) { break; }
      out.preventCancel = [cancelled, keep.locked, (await keep.getReader().read()).value];
      const iter = ReadableStream.from([1])[Symbol.asyncIterator]();
      out.iterProto = [typeof iter.next, typeof iter.return,
        Object.getPrototypeOf(Object.getPrototypeOf(iter)) ===
          Object.getPrototypeOf(Object.getPrototypeOf(async function* () {}).prototype)];
      out.nextAfterEnd = [await iter.next(), await iter.next(), await iter.return("v")];
      return out;
    """)
    assert got["fromAsync"] == [1, 2, 3]
    assert got["fromArray"] == ["p", "q"] and got["fromString"] == ["a", "b"]
    assert got["fromBad"] == ["TypeError", "TypeError", "TypeError"]
    assert got["breakCancels"] == [True, False]
    assert got["preventCancel"] == [False, False, 2]
    assert got["iterProto"] == ["function", "function", True]
    assert got["nextAfterEnd"] == [{"value": 1, "done": False}, {"value": None, "done": True},
                                   {"value": "v", "done": True}]


async def test_writable_stream_backpressure_close_and_abort(host: Host) -> None:
    await started(host)
    got = await run(host, """
      const out = {};
      const log = [];
      let release;
      const ws = new WritableStream({
        write(chunk) { log.push("write:" + chunk); return new Promise((r) => { release = r; }); },
        close() { log.push("close"); },
      }, new CountQueuingStrategy({ highWaterMark: 2 }));
      const w = ws.getWriter();
      out.initial = w.desiredSize;
      const p1 = w.write("a"), p2 = w.write("b");
      out.afterTwo = w.desiredSize;
      let ready = false; w.ready.then(() => { ready = true; });
      await Promise.resolve(); await Promise.resolve();
      out.readyWhileFull = ready;
      release(); await p1;
      await Promise.resolve();
      release(); await p2;
      out.readyAfterDrain = [ready, w.desiredSize];
      const closed = w.close();
      out.writeAfterClose = await w.write("c").then(() => "ok", (e) => e.name);
      await closed;
      out.log = log;
      out.closedState = [await w.closed, w.desiredSize];
      w.releaseLock();
      out.releasedWriter = await w.write("d").then(() => "ok", (e) => e.name);

      let abortReason;
      const slow = new WritableStream({ write() { return new Promise(() => {}); }, abort(r) { abortReason = r; } });
      const sw = slow.getWriter();
      sw.write("x");
      const queued = sw.write("y").then(() => "ok", (e) => "rejected:" + e);
      const aborted = sw.abort("stop");
      out.abortSignal = null;
      out.abort = [await queued, await sw.closed.then(() => "ok", (e) => "closed:" + e)];
      out.abortedBeforeSettle = abortReason === undefined;
      let signalReason;
      const sig = new WritableStream({ start(c) { c.signal.addEventListener("abort",
        () => { signalReason = c.signal.reason; }); } });
      await sig.abort("via signal");
      out.signal = signalReason;
      const failing = new WritableStream({ write() { throw new Error("sink failed"); } });
      const fw = failing.getWriter();
      out.sinkError = [await fw.write(1).then(() => "ok", (e) => e.message), await fw.closed.then(() => "ok",
        (e) => e.message),
                       fw.desiredSize];
      out.lockRules = [(() => { const s = new WritableStream(); s.getWriter(); try { s.getWriter();
        } catch (e) { return e.name; } })(),
                       await (() => { const s = new WritableStream(); s.getWriter(); return s.close().then(() => "ok",
                         (e) => e.name); })()];
      out.badType = (() => { try { new WritableStream({ type: "bytes" }); } catch (e) { return e.name; } })();
      void aborted;
      return out;
    """)
    assert got["initial"] == 2 and got["afterTwo"] == 0 and got["readyWhileFull"] is False
    assert got["readyAfterDrain"] == [True, 2]
    assert got["writeAfterClose"] == "TypeError"
    assert got["log"] == ["write:a", "write:b", "close"]
    assert got["closedState"] == [None, 0]
    assert got["releasedWriter"] == "TypeError"
    assert got["abort"] == ["rejected:stop", "closed:stop"]
    assert got["signal"] == "via signal"
    assert got["sinkError"] == ["sink failed", "sink failed", None]
    assert got["lockRules"] == ["TypeError", "TypeError"]
    assert got["badType"] == "RangeError"


async def test_transform_stream_pipe_through_and_pipe_to_propagation(host: Host) -> None:
    await started(host)
    got = await run(host, """
      const out = {};
      const upper = new TransformStream({
        transform(chunk, c) { c.enqueue(String(chunk).toUpperCase()); },
        flush(c) { c.enqueue("!"); },
      });
      const sink = [];
      await ReadableStream.from(["a", "b"]).pipeThrough(upper).pipeTo(new WritableStream({ write(c) { sink.push(c);
        } }));
      out.piped = sink;
      const identity = new TransformStream();
      const w = identity.writable.getWriter();
      w.write("x"); w.close();
      const r = identity.readable.getReader();
      out.identity = [await r.read(), await r.read()];
      const bp = new TransformStream();
      const bw = bp.writable.getWriter();
      out.transformBackpressure = [bw.desiredSize];
      bw.write("held");
      out.transformBackpressure.push(bw.desiredSize, bp.readable.getReader() ? "reader" : "");
      const failing = new TransformStream({ transform() { throw new Error("bad chunk"); } });
      const fw = failing.writable.getWriter();
      // the readable side must be read (pulled) before a write reaches the transformer: readable highWaterMark 0
      out.transformError = await Promise.all([fw.write("x").then(() => "ok", (e) => e.message),
                                              failing.readable.getReader().read().then(() => "ok", (e) => e.message)]);
      const term = new TransformStream({ start(c) { c.enqueue("last"); c.terminate(); } });
      const tr = term.readable.getReader();
      out.terminate = [await tr.read(), await tr.read(),
                       await term.writable.getWriter().write("late").then(() => "ok", (e) => e.name)];

      let cancelled;
      const src = new ReadableStream({ start(c) { c.enqueue(1); }, cancel(r) { cancelled = r; } });
      const dest = new WritableStream({ write() { throw new Error("dest failed"); } });
      out.destError = [await src.pipeTo(dest).then(() => "ok", (e) => e.message),
        String(cancelled && cancelled.message)];
      let aborted;
      const erroring = new ReadableStream({ start(c) { c.error(new Error("src failed")); } });
      out.srcError = [await erroring.pipeTo(new WritableStream({ abort(r) { aborted = r.message;
        } })).then(() => "ok", (e) => e.message), aborted];
      let closedDest = false;
      await ReadableStream.from([1]).pipeTo(new WritableStream({ close() { closedDest = true; } }),
        { preventClose: true });
      out.preventClose = closedDest;
      const ac = new AbortController();
      const forever = new ReadableStream();
      const piping = forever.pipeTo(new WritableStream(), { signal: ac.signal });
      ac.abort(new Error("user abort"));
      out.signal = [await piping.then(() => "ok", (e) => e.message), forever.locked];
      out.lockedPipe = await (() => { const s = new ReadableStream(); s.getReader();
        return s.pipeTo(new WritableStream()).then(() => "ok", (e) => e.name); })();
      out.badTransformer = (() => { try { new TransformStream({ readableType: "bytes" }); } catch (e) { return e.name;
        } })();
      return out;
    """)
    assert got["piped"] == ["A", "B", "!"]
    assert got["identity"] == [{"value": "x", "done": False}, {"value": None, "done": True}]
    assert got["transformBackpressure"][0] == 1
    assert got["transformError"] == ["bad chunk", "bad chunk"]
    assert got["terminate"] == [{"value": "last", "done": False}, {"value": None, "done": True}, "TypeError"]
    assert got["destError"] == ["dest failed", "dest failed"]
    assert got["srcError"] == ["src failed", "src failed"]
    assert got["preventClose"] is False
    assert got["signal"] == ["user abort", False]
    assert got["lockedPipe"] == "TypeError"
    assert got["badTransformer"] == "RangeError"


async def test_queuing_strategies(host: Host) -> None:
    await started(host)
    got = await run(host, """
      const b = new ByteLengthQueuingStrategy({ highWaterMark: 16 });
      const c = new CountQueuingStrategy({ highWaterMark: 4 });
      return {
        values: [b.highWaterMark, b.size(new Uint8Array(5)), c.highWaterMark, c.size("anything"),
                 b.size === new ByteLengthQueuingStrategy({ highWaterMark: 1 }).size],
        tags: [String(b), String(c)],
        missing: [() => new CountQueuingStrategy(), () => new ByteLengthQueuingStrategy({})].map((f) => { try { f();
          return "no error"; } catch (e) { return e.name; } }),
        bytes: await (async () => {
          let ctrl;
          new ReadableStream({ start(x) { ctrl = x; } }, new ByteLengthQueuingStrategy({ highWaterMark: 10 }));
          ctrl.enqueue(new Uint8Array(4));
          return ctrl.desiredSize;
        })(),
      };
    """)
    assert got["values"] == [16, 5, 4, 1, True]
    assert got["tags"] == ["[object ByteLengthQueuingStrategy]", "[object CountQueuingStrategy]"]
    assert got["missing"] == ["TypeError", "TypeError"]
    assert got["bytes"] == 6
