// kplug_lab's `kplug` global: durable queues, schedules and key-value state (docs/guarantees.md).
//
// Present only in kplug_lab, so a plugin feature-detects it: `if (typeof kplug !== "undefined") ...`.
// Evaluated before the prelude (the other files here, joined by __init__.py), so it captures the host primitives
// in `__kplug_native` before the prelude's core.js removes them. Every Promise that writes resolves only once the
// write is committed to disk (the host op returns after the SQLite commit; the settlement comes in a later job).
(function (G) {
  "use strict";
  const native = G.__kplug_native;
  const call = native.call;
  const callAsync = native.callAsync;
  const log = (level, text) => call("log", level, text);
  const describe = (e) => {
    if (e instanceof Error) return `${e.name}: ${e.message}`;
    if (typeof e === "string") return e;
    try { const s = JSON.stringify(e); return s === undefined ? String(e) : s; } catch (x) { return String(e); }
  };
  const fail = (message) => Promise.reject(new TypeError(message));
  const isName = (s) => typeof s === "string" && s.length > 0;

  // a sleep that `wake()` can end early; timers are read at call time because the prelude defines them
  function sleeper() {
    let timer = null;
    let done = null;
    return {
      sleep(ms) {
        return new Promise((resolve) => { done = resolve; timer = G.setTimeout(resolve, ms); });
      },
      wake() { if (timer !== null) G.clearTimeout(timer); if (done) done(); timer = null; done = null; },
    };
  }

  // ---- queues -------------------------------------------------------------------------------------------
  const queues = new Map();
  const consuming = new Set();

  class Queue {
    constructor(name) { this.name = name; Object.freeze(this); }

    /** Append `item` (any JSON value). Resolves `{id, duplicate}` once the item is on disk. With
     *  `{key}`, an item whose key this queue has seen before is not enqueued again (`duplicate: true`). */
    push(item, options) {
      if (item === undefined) return fail(`kplug.queue("${this.name}").push(item, {key}?): item is required`);
      let key = null;
      if (options !== undefined && options !== null) {
        if (typeof options !== "object") return fail(`kplug.queue("${this.name}").push: options must be an object like {key: "..."}`);
        if (options.key !== undefined && options.key !== null) key = String(options.key);
      }
      return callAsync("dq_push", this.name, item, key);
    }

    /** How many items wait (including those being handled). */
    size() { return callAsync("dq_size", this.name); }

    /** Handle items in order, one batch at a time. An item is removed only after `handler` resolves; when
     *  it throws or rejects, the same items are retried after an exponential backoff (`retry: {initialMs,
     *  maxMs, factor}`). With `batch: n` the handler gets an array of up to n items. Returns a stop function,
     *  whose Promise resolves once the batch being handled (if any) is finished and recorded: await it in
     *  `onunload` so a graceful stop never interrupts a handler. */
    consume(handler, options) {
      const where = `kplug.queue("${this.name}").consume(handler, {batch?, retry?})`;
      if (typeof handler !== "function") throw new TypeError(`${where}: handler must be a function`);
      options = options || {};
      const batch = options.batch === undefined ? 1 : options.batch;
      if (!Number.isInteger(batch) || batch < 1 || batch > 1000) throw new TypeError(`${where}: batch must be an integer 1..1000, got ${batch}`);
      const retry = options.retry === undefined ? {} : options.retry;
      if (retry === null || typeof retry !== "object") throw new TypeError(`${where}: retry must be an object like {initialMs: 500, maxMs: 60000, factor: 2}`);
      if (consuming.has(this.name)) throw new Error(`queue "${this.name}" already has a consumer in this plugin`);
      consuming.add(this.name);
      const name = this.name;
      const nap = sleeper();
      let stopped = false;
      const loop = async () => {
        while (!stopped) {
          const r = await callAsync("dq_take", name, batch);
          if (stopped) break;
          if (r.waitMs !== undefined) { await nap.sleep(r.waitMs); continue; }
          if (!r.items) continue; // woken by a push
          const items = r.items;
          const infos = items.map((x) => Object.freeze({ id: x.id, key: x.key, attempts: x.attempts }));
          let error = null;
          try {
            if (options.batch === undefined) await handler(items[0].item, infos[0]);
            else await handler(items.map((x) => x.item), infos);
          } catch (e) {
            error = e === null || e === undefined ? new Error("handler failed") : e;
          }
          const ids = items.map((x) => x.id);
          if (error === null) {
            await callAsync("dq_ack", name, ids);
          } else {
            const ms = await callAsync("dq_fail", name, ids, describe(error), retry);
            log("warn", `queue "${name}": handler failed on ${ids.length} item(s): ${describe(error)}; retrying in ${ms} ms`);
          }
        }
      };
      const finished = loop().catch((e) => {
        consuming.delete(name);
        log("error", `queue "${name}": consumer stopped: ${describe(e)}`);
      });
      return () => {
        if (!stopped) { stopped = true; consuming.delete(name); nap.wake(); callAsync("dq_wake", name); }
        return finished.then(() => undefined);
      };
    }
  }

  function queue(name) {
    if (!isName(name)) throw new TypeError("kplug.queue(name): name must be a non-empty string");
    let q = queues.get(name);
    if (!q) { q = new Queue(name); queues.set(name, q); }
    return q;
  }

  // ---- key-value ----------------------------------------------------------------------------------------
  const watchers = new Set();
  function emit(changes) {
    for (const change of changes) {
      const frozen = Object.freeze(change);
      for (const fn of [...watchers]) {
        try {
          const r = fn(frozen);
          if (r && typeof r.then === "function") r.then(undefined, (e) => log("error", `kplug.kv.onChange handler rejected: ${describe(e)}`));
        } catch (e) {
          log("error", `kplug.kv.onChange handler threw: ${describe(e)}`);
        }
      }
    }
  }
  const keyError = (where, key) => (isName(key) ? null : `${where}: key must be a non-empty string, got ${describe(key)}`);

  /** One atomic change: `{check: {key: version}, set: {key: value}, delete: [key]}`. When every checked key
   *  is at its expected version (0: absent), everything is applied with one new version, durably; otherwise
   *  nothing is, and `conflicts` says which keys moved. Resolves `{ok, version?, conflicts?, changes?}`. */
  function commit(change) {
    if (change === null || typeof change !== "object") return fail("kplug.kv.commit({check?, set?, delete?}): an object is required");
    for (const k of Object.keys(change.set || {})) {
      if (change.set[k] === undefined) return fail(`kplug.kv.commit: the value of "${k}" is undefined (use delete)`);
    }
    return callAsync("kv_commit", { check: change.check || {}, set: change.set || {}, delete: change.delete || [] })
      .then((r) => { if (r.ok) emit(r.changes); return r; });
  }

  async function transaction(fn, options) {
    if (typeof fn !== "function") throw new TypeError("kplug.kv.transaction(fn, {retries?}): fn must be a function");
    const retries = options && options.retries !== undefined ? options.retries : 20;
    for (let attempt = 0; attempt <= retries; attempt++) {
      const reads = {};
      const writes = new Map(); // key -> value, or undefined for a delete
      const tx = Object.freeze({
        async get(key) {
          const bad = keyError("tx.get(key)", key);
          if (bad) throw new TypeError(bad);
          if (writes.has(key)) return writes.get(key);
          const e = await callAsync("kv_get", key);
          if (!(key in reads)) reads[key] = e ? e.version : 0;
          return e ? e.value : undefined;
        },
        set(key, value) {
          const bad = keyError("tx.set(key, value)", key);
          if (bad) throw new TypeError(bad);
          if (value === undefined) throw new TypeError(`tx.set("${key}", undefined): use tx.delete`);
          writes.set(key, value);
        },
        delete(key) { writes.set(key, undefined); },
      });
      const value = await fn(tx);
      const set = {};
      const del = [];
      for (const [k, v] of writes) { if (v === undefined) del.push(k); else set[k] = v; }
      const r = await commit({ check: reads, set, delete: del });
      if (r.ok) return { value, version: r.version };
    }
    throw new Error(`kplug.kv.transaction: still conflicting after ${retries + 1} attempts`);
  }

  const kv = Object.freeze({
    /** The value of `key`, or undefined. */
    get(key) {
      const bad = keyError("kplug.kv.get(key)", key);
      return bad ? fail(bad) : callAsync("kv_get", key).then((e) => (e ? e.value : undefined));
    },
    /** `{value, version}` of `key`, or null when absent. */
    entry(key) {
      const bad = keyError("kplug.kv.entry(key)", key);
      return bad ? fail(bad) : callAsync("kv_get", key);
    },
    /** Store `value` (JSON); resolves the new version once on disk. */
    set(key, value) {
      const bad = keyError("kplug.kv.set(key, value)", key);
      if (bad) return fail(bad);
      if (value === undefined) return fail(`kplug.kv.set("${key}", undefined): use kplug.kv.delete`);
      return commit({ set: { [key]: value } }).then((r) => r.version);
    },
    /** Remove `key`; resolves whether it existed. */
    delete(key) {
      const bad = keyError("kplug.kv.delete(key)", key);
      return bad ? fail(bad) : commit({ delete: [key] }).then((r) => r.changes.length > 0);
    },
    /** `[{key, value, version}]` of every key starting with `prefix`, sorted by key. */
    list(prefix) {
      if (prefix !== undefined && typeof prefix !== "string") return fail("kplug.kv.list(prefix?): prefix must be a string");
      return callAsync("kv_list", prefix || "");
    },
    /** Set `key` to `value` only if it is still at `expectedVersion` (0: absent). Resolves `{ok, version}`:
     *  the new version, or on conflict the current one (0 when absent). */
    cas(key, expectedVersion, value) {
      const bad = keyError("kplug.kv.cas(key, expectedVersion, value)", key);
      if (bad) return fail(bad);
      if (!Number.isInteger(expectedVersion) || expectedVersion < 0) return fail(`kplug.kv.cas("${key}", ...): expectedVersion must be an integer >= 0 (0: absent), got ${describe(expectedVersion)}`);
      if (value === undefined) return fail(`kplug.kv.cas("${key}", ${expectedVersion}, undefined): a value is required`);
      return commit({ check: { [key]: expectedVersion }, set: { [key]: value } })
        .then((r) => (r.ok ? { ok: true, version: r.version } : { ok: false, version: r.conflicts[0].version }));
    },
    commit,
    /** Run `fn(tx)` (tx.get / tx.set / tx.delete) and commit its writes atomically if nothing it read has
     *  changed meanwhile; otherwise run it again (up to `retries` times). Resolves `{value, version}`. */
    transaction,
    /** `handler({key, value, version, deleted})` after each committed change made by this plugin, in commit
     *  order. Returns an unsubscribe function. */
    onChange(handler) {
      if (typeof handler !== "function") throw new TypeError("kplug.kv.onChange(handler): handler must be a function");
      watchers.add(handler);
      return () => { watchers.delete(handler); };
    },
  });

  // ---- schedules ----------------------------------------------------------------------------------------
  const schedules = new Set();

  /** Run `handler({name, slot, scheduledAt})` every `every` ms (or "30s", "5m") or on a `cron` expression
   *  (UTC), never twice at once. The last completed slot is persisted: a restart does not repeat it; slots
   *  missed while down or busy are run once (`catchUp: "once"`, the default) or dropped (`"skip"`).
   *  Resolves a handle `{name, cancel()}` once the schedule is registered; `cancel()` resolves once a run in
   *  progress (if any) has finished and been recorded: await it in `onunload` so a graceful stop never
   *  interrupts a run. */
  async function schedule(name, options, handler) {
    const where = "kplug.schedule(name, {every | cron, catchUp?}, handler)";
    if (!isName(name)) throw new TypeError(`${where}: name must be a non-empty string`);
    if (options === null || typeof options !== "object") throw new TypeError(`${where}: options must be an object`);
    if (typeof handler !== "function") throw new TypeError(`${where}: handler must be a function`);
    if (schedules.has(name)) throw new Error(`schedule "${name}" is already running in this plugin`);
    const spec = { every: options.every, cron: options.cron, catchUp: options.catchUp === undefined ? "once" : options.catchUp };
    let first = await callAsync("sched_next", name, spec); // validates the options
    schedules.add(name);
    const nap = sleeper();
    let stopped = false;
    const loop = async () => {
      let next = first;
      first = null;
      while (!stopped) {
        if (next === null) next = await callAsync("sched_next", name, spec);
        if (next.waitMs > 0) await nap.sleep(next.waitMs);
        if (stopped) break;
        const slot = next.slot;
        next = null;
        try {
          await handler(Object.freeze({ name, slot, scheduledAt: new Date(slot) }));
        } catch (e) {
          log("error", `schedule "${name}": the run of ${new Date(slot).toISOString()} failed: ${describe(e)}`);
        }
        await callAsync("sched_done", name, slot);
      }
    };
    const finished = loop().catch((e) => {
      schedules.delete(name);
      log("error", `schedule "${name}" stopped: ${describe(e)}`);
    });
    return Object.freeze({
      name,
      cancel() {
        if (!stopped) { stopped = true; schedules.delete(name); nap.wake(); }
        return finished.then(() => undefined);
      },
    });
  }

  const kplug = Object.freeze({ version: 1, queue, kv, schedule });
  Object.defineProperty(G, "kplug", { value: kplug, writable: true, configurable: true, enumerable: false });
})(globalThis);
