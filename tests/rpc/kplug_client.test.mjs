// Unit tests of kplug-client.js under node (node --test), with a fake fetch and a fake WebSocket:
// SiYuan's retry rule, request shapes, and WebSocket reconnect with backoff.
import { test } from "node:test";
import assert from "node:assert/strict";
import { KplugClient, JsonRpcError, HttpError } from "../../kplug_lab/rpc/static/kplug-client.js";

const json = (status, body) => ({ status, ok: status < 300, text: async () => (typeof body === "string" ? body : JSON.stringify(body)) });
const notRunning = { jsonrpc: "2.0", error: { code: -32002, message: "Plugin not running" }, id: null };

function fakeFetch(answers) {
  const sent = [];
  const fetch = async (url, init) => {
    sent.push({ url, init, body: JSON.parse(init.body) });
    const next = answers.length > 1 ? answers.shift() : answers[0];
    return typeof next === "function" ? next(sent.at(-1).body) : next;
  };
  return { fetch, sent };
}

test("call posts SiYuan's request shape with the token and resolves the result", async () => {
  const { fetch, sent } = fakeFetch([(b) => json(200, { jsonrpc: "2.0", result: b.params, id: b.id })]);
  const c = new KplugClient({ plugin: "my plugin", baseUrl: "http://h:1/base/", token: "T", fetch });
  assert.deepEqual(await c.call("m", 1, { a: 2 }), [1, { a: 2 }]);
  assert.equal(sent[0].url, "http://h:1/base/api/plugin/rpc/my%20plugin");
  assert.equal(sent[0].init.headers.Authorization, "Token T");
  assert.equal(sent[0].body.jsonrpc, "2.0");
  assert.equal(typeof sent[0].body.id, "string");
  assert.equal(c.socketUrl, "ws://h:1/base/ws/plugin/rpc/my%20plugin"); // never the token in a URL
  assert.deepEqual(c.socketProtocols, ["kplug", "kplug.token.VA"]);
  const unicode = new KplugClient({ plugin: "p", baseUrl: "http://h", token: "tök/+?", fetch });
  assert.deepEqual(unicode.socketProtocols, ["kplug", "kplug.token.dMO2ay8rPw"]);
});

test("-32001/-32002 are retried every interval up to maxRetries, then the last answer is returned", async () => {
  const { fetch, sent } = fakeFetch([json(200, notRunning)]);
  const c = new KplugClient({ plugin: "p", baseUrl: "http://h", fetch, retryInterval: 1 });
  await assert.rejects(c.call("m"), (e) => e instanceof JsonRpcError && e.code === -32002);
  assert.equal(sent.length, 51); // the first try and 50 retries
  const defaults = new KplugClient({ plugin: "p", baseUrl: "http://h", fetch });
  assert.equal(defaults.retryInterval, 100);
  assert.equal(defaults.maxRetries, 50);
});

test("a retry that succeeds resolves; other errors are not retried", async () => {
  const { fetch, sent } = fakeFetch([json(200, notRunning), json(200, { jsonrpc: "2.0", result: 5, id: "x" })]);
  const c = new KplugClient({ plugin: "p", baseUrl: "http://h", fetch, retryInterval: 1 });
  assert.equal(await c.call("m"), 5);
  assert.equal(sent.length, 2);
  const other = fakeFetch([json(200, { jsonrpc: "2.0", error: { code: -32601, message: "Method not found", data: "d" }, id: 1 })]);
  const c2 = new KplugClient({ plugin: "p", baseUrl: "http://h", fetch: other.fetch, retryInterval: 1 });
  await assert.rejects(c2.call("m"), (e) => e.code === -32601 && e.data === "d" && e.rpcMessage === "Method not found");
  assert.equal(other.sent.length, 1);
});

test("notify has no id; batch follows SiYuan's shapes; 204 is undefined; non-JSON-RPC answers are HttpErrors", async () => {
  const { fetch, sent } = fakeFetch([json(204, ""), json(204, ""), json(401, { code: -1, msg: "Auth failed" }), json(403, "")]);
  const c = new KplugClient({ plugin: "p", baseUrl: "http://h", fetch });
  assert.equal(await c.notify("n", 1), undefined);
  assert.equal("id" in sent[0].body, false);
  assert.equal(await c.batch({ method: "a", params: null, notification: true }, { method: "b", params: [1], id: 7 }), undefined);
  assert.deepEqual(sent[1].body, [{ jsonrpc: "2.0", method: "a" }, { jsonrpc: "2.0", method: "b", params: [1], id: 7 }]);
  await assert.rejects(c.call("m"), (e) => e instanceof HttpError && e.status === 401);
  await assert.rejects(c.call("m"), (e) => e instanceof HttpError && e.status === 403);
});

class FakeSocket {
  static all = [];
  constructor(url) { this.url = url; this.readyState = 0; FakeSocket.all.push(this); }
  open() { this.readyState = 1; this.onopen?.(); }
  message(obj) { this.onmessage?.({ data: JSON.stringify(obj) }); }
  drop() { this.readyState = 3; this.onclose?.({ code: 1006 }); }
  close() { this.readyState = 3; this.closedByClient = true; }
}

test("notifications reach handlers; the socket reconnects with growing delays and stops when closed", async () => {
  FakeSocket.all = [];
  const seen = [];
  const states = [];
  const c = new KplugClient({ plugin: "p", baseUrl: "http://h", WebSocket: FakeSocket, fetch: async () => {},
                              reconnectInitial: 20, reconnectMax: 80, onConnection: (s) => states.push(s) });
  const off = c.on("tick", (...args) => seen.push(args));
  assert.equal(FakeSocket.all.length, 1);
  FakeSocket.all[0].open();
  FakeSocket.all[0].message({ jsonrpc: "2.0", method: "tick", params: [1, 2] });
  FakeSocket.all[0].message({ jsonrpc: "2.0", method: "tick", params: { a: 1 } });
  FakeSocket.all[0].message({ jsonrpc: "2.0", method: "tick" });
  FakeSocket.all[0].message({ jsonrpc: "2.0", method: "tick", id: 1, params: [9] }); // has an id: not a notification
  assert.deepEqual(seen, [[1, 2], [{ a: 1 }], [undefined]]);

  const gaps = [];
  let last = Date.now();
  for (let i = 0; i < 4; i++) {
    const before = FakeSocket.all.length;
    FakeSocket.all.at(-1).drop();
    while (FakeSocket.all.length === before) await new Promise((r) => setTimeout(r, 2));
    gaps.push(Date.now() - last);
    last = Date.now();
  }
  // delays with jitter: 20*2^n * (0.5..1), capped at 80
  assert.ok(gaps[0] >= 9, `first reconnect after ${gaps[0]} ms`);
  assert.ok(gaps[3] >= 39, `fourth reconnect after ${gaps[3]} ms (cap 80, jitter >= 0.5)`);
  FakeSocket.all.at(-1).open(); // a successful open resets the backoff
  assert.equal(c._attempts, 0);
  assert.deepEqual(states.slice(0, 3), ["connecting", "open", "closed"]);

  off();
  c.close();
  assert.equal(FakeSocket.all.at(-1).closedByClient, true);
  const count = FakeSocket.all.length;
  await new Promise((r) => setTimeout(r, 120));
  assert.equal(FakeSocket.all.length, count); // no reconnect after close()
});

test("bad options are refused clearly", () => {
  assert.throws(() => new KplugClient({}), /options.plugin/);
  assert.throws(() => new KplugClient({ plugin: "p", baseUrl: "http://h", fetch: async () => {} }).on("x", 1), /handler/);
});
