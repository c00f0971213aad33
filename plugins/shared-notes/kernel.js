// shared-notes: clients read a note with its version and write it back with compare-and-set, so concurrent
// edits never overwrite each other silently; every committed change is pushed to every client connected to
// the plugin's RPC WebSocket as a `noteChanged` notification {id, value, version}.
//
// An update carries an `opId` chosen by the client. It is stored in the same atomic commit as the note, so
// a client that lost the answer (network drop, host crash) can resend the same update: it is applied once,
// and the answer tells the version it was applied at.
const { rpc, logger } = siyuan;
if (typeof kplug === "undefined") throw new Error("shared-notes needs kplug_lab's key-value store (the kplug global)");
const kv = kplug.kv;
const noteKey = (id) => `note/${id}`;
const opKey = (opId) => `op/${opId}`;

function checkId(what, id) {
  if (typeof id !== "string" || id.length === 0 || id.length > 200) throw new Error(`${what} must be a non-empty string`);
}

kv.onChange((change) => {
  if (!change.key.startsWith("note/")) return;
  rpc.broadcast("noteChanged", { id: change.key.slice(5), value: change.value, version: change.version,
    deleted: change.deleted });
});

rpc.bind("get", async (id) => {
  checkId("note id", id);
  const entry = await kv.entry(noteKey(id));
  return entry ? { value: entry.value, version: entry.version } : { value: null, version: 0 };
}, "Read a note: {value, version} (version 0: the note does not exist yet).");

rpc.bind("update", async (id, expectedVersion, value, opId) => {
  checkId("note id", id);
  checkId("opId", opId);
  if (!Number.isInteger(expectedVersion) || expectedVersion < 0) throw new Error("expectedVersion must be an integer >= 0");
  if (value === undefined) throw new Error("value is required");
  const r = await kv.commit({
    check: { [noteKey(id)]: expectedVersion, [opKey(opId)]: 0 },
    set: { [noteKey(id)]: value, [opKey(opId)]: { note: id } },
  });
  if (r.ok) return { ok: true, version: r.version };
  const seen = await kv.entry(opKey(opId));
  if (seen) return { ok: true, version: seen.version, duplicate: true };
  const current = await kv.entry(noteKey(id));
  return { ok: false, current: current ? { value: current.value, version: current.version } : { value: null, version: 0 } };
}, "Compare-and-set a note: applied only if it is still at expectedVersion; resending the same opId never applies twice.");

rpc.bind("list", async () => (await kv.list("note/")).map((e) => ({ id: e.key.slice(5), value: e.value, version: e.version })),
  "Every note with its version.");

logger.info("shared-notes: ready");
