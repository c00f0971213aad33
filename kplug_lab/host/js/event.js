// siyuan.event (spec §3.2): emit on the runtime topic, and the host's events delivered to siyuan.event.handler
// through __kplug.event(type, detail).
function makeEvent() {
  const event = {
    handler: null,
    emit(...args) {
      if (args.length < 2) return reject("topic and event required");
      const topic = String(args[0]);
      if (!topic) return reject("topic required");
      let data;
      try { data = structuredClone(args[1]); } catch (e) { data = args[1]; }
      return Promise.resolve().then(() => {
        if (topic === "runtime") deliver(data);
        else if (topic === "plugin") log("debug", `event on topic plugin: ${toText(data)}`);
      });
    },
  };
  return Object.seal(event);
}
function deliver(msg) {
  const ev = siyuan && siyuan.event;
  const h = ev && ev.handler;
  if (typeof h !== "function") return;
  try {
    const r = h.call(ev, msg);
    if (r && typeof r.then === "function") r.then(undefined, (e) => log("error", `siyuan.event.handler rejected: ${inspect(e)}`));
  } catch (e) {
    log("error", `siyuan.event.handler threw: ${inspect(e)}`);
  }
}

K.event = (type, detail) => deliver({ id: crypto.randomUUID(), type, detail: detail === undefined ? null : detail });
