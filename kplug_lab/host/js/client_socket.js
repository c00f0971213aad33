// siyuan.client.socket (§3.7): the host dials and reads on its loop (client_socket.py) and posts every frame
// here as __kplug.socketEvent(id, event). [better] browser close semantics: one onclose, onerror on failure.
const clientSockets = new Map();  // id -> event sink of an opened socket
let nextSocketId = 1;
function makeSocket(path, protocols) {
  const url = call("socket_url", path);
  const id = nextSocketId++;
  const protos = protocols === undefined || protocols === null ? [] :
    (Array.isArray(protocols) ? protocols.map(String) : [String(protocols)]);
  let readyState = 0, protocol = "", opening = null, queued = [];
  const ws = {
    binaryType: "arraybuffer",
    get bufferedAmount() { return 0; },
    extensions: "",
    get protocol() { return protocol; },
    get readyState() { return readyState; },
    url,
    onopen: null, onmessage: null, onping: null, onpong: null, onclose: null, onerror: null,
    open() {
      if (readyState === 1) return Promise.resolve(undefined);
      if (readyState === 2) return reject("WebSocket is closing");
      if (readyState === 3) return reject("WebSocket is closed");
      if (!opening) {
        clientSockets.set(id, sink);
        opening = hostAsync("socket_open", id, path, protos).then((r) => {
          if (readyState !== 0) throw goError("context canceled");
          protocol = r.protocol; readyState = 1;
          fire("open", { type: "open" });
          const early = queued; queued = [];
          early.forEach(handle);
        }, (e) => {
          readyState = 3; clientSockets.delete(id);
          fire("error", { type: "error", error: e });
          throw e;
        });
      }
      return opening;
    },
    send(data) {
      if (readyState === 0) return reject("WebSocket not yet connected");
      if (readyState !== 1) return reject(`WebSocket is not open (state: ${readyState})`);
      if (data instanceof ArrayBuffer) return hostAsync("socket_send", id, b64Encode(new Uint8Array(data), false), true);
      return hostAsync("socket_send", id, String(data), false);
    },
    ping(data) { return readyState === 1 ? hostAsync("socket_ping", id, data === undefined ? "" : String(data)) : reject("WebSocket not yet connected"); },
    pong(data) { return readyState === 1 ? hostAsync("socket_pong", id, data === undefined ? "" : String(data)) : reject("WebSocket not yet connected"); },
    close(code = 1000, reason = "") {
      if (readyState === 1) { readyState = 2; return hostAsync("socket_close", id, Number(code), String(reason)); }
      if (readyState === 0) {
        readyState = 3; clientSockets.delete(id);
        return opening ? hostAsync("socket_close", id, Number(code), String(reason)) : Promise.resolve(undefined);
      }
      return Promise.resolve(undefined);
    },
  };
  Object.seal(ws);
  function fire(name, ev) {
    const h = ws["on" + name];
    if (typeof h !== "function") return;
    try { h.call(ws, ev); } catch (e) { log("error", `siyuan.client.socket on${name} threw: ${inspect(e)}`); }
  }
  function handle(ev) {
    switch (ev.type) {
      case "text": fire("message", { type: "text", data: ev.data }); break;
      case "binary": fire("message", { type: "binary", data: b64Decode(ev.data).buffer }); break;
      case "error": fire("error", { type: "error", error: goError(ev.error) }); break;
      case "close":
        readyState = 3; clientSockets.delete(id);
        fire("close", { type: "close", code: ev.code, reason: ev.reason, wasClean: ev.wasClean });
        break;
    }
  }
  function sink(ev) { if (readyState === 0) queued.push(ev); else handle(ev); }
  return ws;
}

K.socketEvent = (id, ev) => { const sink = clientSockets.get(id); if (sink) sink(ev); };
