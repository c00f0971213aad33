// wakatime-like: editors (any number of windows and clients) send heartbeats over RPC; the plugin reports
// them to a time-tracking service in batches, exactly once per heartbeat.
//
// How "exactly once" is reached (docs/guarantees.md):
// * `heartbeat` answers only after the heartbeat is on disk (kplug.queue push), so a client that got an
//   answer may forget the heartbeat; a client that got an error (or no answer) sends it again with the same
//   id, and the queue drops the repeat (its `key`).
// * The consumer removes a batch only after the service accepted it, and retries failures with backoff.
//   A crash between "accepted" and "removed" sends the batch again: each heartbeat carries its id, and the
//   batch an Idempotency-Key, so the service counts it once. That is what we ask of the receiving service.
const { rpc, client, logger } = siyuan;
const durable = typeof kplug !== "undefined" ? kplug : null;
if (!durable) throw new Error("wakatime-like needs kplug_lab's durable queue (the kplug global)");

const queue = durable.queue("heartbeats");
const DEFAULTS = { proxyPath: "/api/network/forwardProxy", batch: 50, timeoutMs: 5000 };

function checkHeartbeat(hb) {
  if (hb === null || typeof hb !== "object") throw new Error("heartbeat must be an object {id, entity, time, ...}");
  if (typeof hb.id !== "string" || hb.id.length === 0 || hb.id.length > 200) {
    throw new Error("heartbeat.id must be a non-empty string (the client's unique id for this heartbeat)");
  }
  if (typeof hb.entity !== "string") throw new Error("heartbeat.entity must be a string (what was worked on)");
  if (typeof hb.time !== "number") throw new Error("heartbeat.time must be a number (seconds since the epoch)");
}

async function report(heartbeats) {
  const config = await durable.kv.get("config");
  if (!config || !config.endpoint) throw new Error("not configured yet: call configure({endpoint})");
  const ids = heartbeats.map((h) => h.id);
  const res = await client.fetch(config.proxyPath || DEFAULTS.proxyPath, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({
      url: config.endpoint,
      method: "POST",
      timeout: config.timeoutMs || DEFAULTS.timeoutMs,
      contentType: "application/json",
      headers: [{ "Idempotency-Key": `${ids[0]}..${ids[ids.length - 1]}#${ids.length}` }],
      payload: { heartbeats },
    }),
  });
  if (!res.ok) throw new Error(`forwardProxy answered HTTP ${res.status}`);
  const envelope = await res.json();
  if (envelope.code !== 0) throw new Error(`forwardProxy failed: ${envelope.msg}`);
  const status = envelope.data.status;
  if (status < 200 || status >= 300) throw new Error(`the service answered HTTP ${status}`);
}

rpc.bind("configure", async (config) => {
  if (config === null || typeof config !== "object" || typeof config.endpoint !== "string") {
    throw new Error("configure({endpoint, proxyPath?, timeoutMs?}): endpoint must be the service's URL");
  }
  const stored = { endpoint: config.endpoint, proxyPath: config.proxyPath || DEFAULTS.proxyPath,
    timeoutMs: config.timeoutMs || DEFAULTS.timeoutMs };
  await durable.kv.set("config", stored);
  return stored;
}, "Set the service URL heartbeats are reported to (kept durably).");

rpc.bind("heartbeat", async (hb) => {
  checkHeartbeat(hb);
  const r = await queue.push(hb, { key: hb.id });
  return { stored: true, duplicate: r.duplicate };
}, "Record one heartbeat {id, entity, time, ...}; answers once it is durable. Resend on error: same id, no double count.");

rpc.bind("pending", () => queue.size(), "How many heartbeats wait to be reported.");

const stopReporting = queue.consume(report, { batch: DEFAULTS.batch, retry: { initialMs: 100, maxMs: 2000, factor: 2 } });
// a graceful stop lets the batch in flight finish, so it is not sent twice
siyuan.plugin.lifecycle.onunload = () => stopReporting();
logger.info("wakatime-like: reporting queued heartbeats");
