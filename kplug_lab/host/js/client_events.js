// siyuan.client.event (§3.7): the host subscribes on its loop (client_events.py) and posts every event here as
// __kplug.eventSourceEvent(id, event). [better] onopen on HTTP 200, onclose once at the end (clean EOF,
// failure or close()), onerror only when the subscription fails; close() stops the host task at once.
const eventSources = new Map();  // id -> event sink of a subscription
let nextEventSourceId = 1;
function makeEventSource(path) {
  const id = nextEventSourceId++;
  let readyState = 0;
  const es = {
    get readyState() { return readyState; },
    url: path,
    onopen: null, onmessage: null, onclose: null, onerror: null,
    close() {
      if (readyState === 2) return;
      readyState = 2; eventSources.delete(id);
      call("event_close", id);
      Promise.resolve().then(() => fire("close", { type: "close" }));
    },
  };
  Object.seal(es);
  function fire(name, ev) {
    const h = es["on" + name];
    if (typeof h !== "function") return;
    try { h.call(es, ev); } catch (e) { log("error", `siyuan.client.event on${name} threw: ${inspect(e)}`); }
  }
  eventSources.set(id, (ev) => {
    switch (ev.type) {
      case "open": readyState = 1; fire("open", { type: "open" }); break;
      case "connecting": readyState = 0; break;
      case "message": fire("message", { type: ev.event, data: ev.data, lastEventId: ev.lastEventId }); break;
      case "error": fire("error", { type: "error", error: goError(ev.error) }); break;
      case "close": readyState = 2; eventSources.delete(id); fire("close", { type: "close" }); break;
    }
  });
  try { call("event_open", id, path); } catch (e) { eventSources.delete(id); throw e; }
  return es;
}

K.eventSourceEvent = (id, ev) => { const sink = eventSources.get(id); if (sink) sink(ev); };
