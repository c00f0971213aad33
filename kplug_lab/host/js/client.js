// siyuan.client: fetch (op fetch), and the entry points of socket (client_socket.js) and event
// (client_events.js).
function checkPath(path) {
  if (typeof path !== "string") return "path required";
  if (!path.startsWith("/")) return "path must start with /";
  return null;
}

function makeClient() {
  return Object.freeze({
    fetch(path, init) {
      const bad = checkPath(path);
      if (bad) return reject(bad);
      init = init || {};
      const req = { method: typeof init.method === "string" ? init.method : "GET", headers: {} };
      if (init.headers && typeof init.headers === "object") {
        for (const k of Object.keys(init.headers)) req.headers[k] = String(init.headers[k]);
      }
      if (typeof init.body === "string") req.body = init.body;
      else if (init.body instanceof ArrayBuffer) { req.body = b64Encode(new Uint8Array(init.body), false); req.bodyIsBase64 = true; }
      return hostAsync("fetch", path, req).then((r) => {
        return Object.assign({ url: r.url, ok: r.status >= 200 && r.status < 300, status: r.status, statusText: r.statusText, headers: r.headers }, dataFromHost(r.body));
      });
    },
    socket(path, protocols) {
      const bad = checkPath(path);
      if (bad) return reject(bad);
      return Promise.resolve().then(() => makeSocket(path, protocols)).catch((e) => { throw goError(e.message); });
    },
    event(path) {
      const bad = checkPath(path);
      if (bad) return reject(bad);
      return Promise.resolve().then(() => makeEventSource(path)).catch((e) => { throw goError(e.message); });
    },
  });
}
