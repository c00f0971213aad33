// journal: appends entries to a "Journal" document through the SiYuan kernel API (siyuan.client.fetch) and
// follows every block change pushed on the kernel's /ws channel (siyuan.client.socket), re-broadcasting a
// summary to the plugin's own RPC WebSocket clients.
const { logger, rpc, client } = siyuan;
const TITLE = "Journal";
let docId = null;
let socket = null;
const changes = [];  // {action, id} of every block operation seen on /ws, oldest first (last 100)

// every kernel API call answers {code, msg, data}; anything but code 0 is an error
async function api(path, body) {
  const res = await client.fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body || {}),
  });
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
  const env = await res.json();
  if (env.code !== 0) throw new Error(`${path}: ${env.msg}`);
  return env.data;
}
const quote = (s) => String(s).replace(/'/g, "''");

async function journalDoc() {
  if (docId) return docId;
  const rows = await api("/api/query/sql",
    { stmt: `SELECT id FROM blocks WHERE type = 'd' AND content = '${quote(TITLE)}' LIMIT 1` });
  if (rows.length) return (docId = rows[0].id);
  const { notebooks } = await api("/api/notebook/lsNotebooks");
  if (!notebooks.length) throw new Error("the workspace has no notebook to put the journal in");
  docId = await api("/api/filetree/createDocWithMd", { notebook: notebooks[0].id, path: `/${TITLE}`, markdown: "" });
  logger.info(`created document ${TITLE} (${docId})`);
  return docId;
}

rpc.bind("append", async (text) => {
  if (typeof text !== "string" || !text.trim()) throw new TypeError("text must be a non-empty string");
  const parentID = await journalDoc();
  const [tx] = await api("/api/block/appendBlock", { parentID, dataType: "markdown", data: text });
  const id = tx.doOperations[0].id;
  await api("/api/attr/setBlockAttrs", { id, attrs: { "custom-journal": new Date().toISOString() } });
  return id;
}, "Appends a paragraph to the Journal document; returns the new block id");

rpc.bind("entries", async () => {
  const parent = await journalDoc();
  return api("/api/query/sql", {
    stmt: `SELECT id, content, updated FROM blocks WHERE parent_id = '${quote(parent)}' ORDER BY sort`,
  });
}, "The paragraphs of the Journal document, in order");

rpc.bind("edit", async (id, text) => {
  await api("/api/block/updateBlock", { id, dataType: "markdown", data: String(text) });
  return api("/api/block/getBlockKramdown", { id });
}, "Replaces an entry's text; returns its kramdown");

rpc.bind("remove", (id) => api("/api/block/deleteBlock", { id }).then(() => true), "Deletes an entry");
rpc.bind("changes", () => changes.slice(), "Block operations seen on the kernel's /ws channel");
rpc.bind("following", () => socket !== null && socket.readyState === 1, "Whether /ws is connected");

async function follow() {
  const ws = await client.socket("/ws?app=kplug-journal&id=journal&type=main");
  ws.onmessage = (event) => {
    if (event.type !== "text") return;
    const msg = JSON.parse(event.data);
    if (msg.cmd !== "transactions") return;
    const ops = [];
    for (const tx of msg.data) for (const op of tx.doOperations || []) ops.push({ action: op.action, id: op.id });
    changes.push(...ops);
    changes.splice(0, Math.max(0, changes.length - 100));
    rpc.broadcast("blocksChanged", ops);
  };
  ws.onclose = (event) => {
    logger.warn(`/ws closed (${event.code} ${event.reason})`);
    socket = null;
  };
  await ws.open();
  socket = ws;
}

siyuan.plugin.lifecycle.onrunning = async () => {
  try {
    await follow();
  } catch (e) {
    logger.warn(`cannot follow block changes (is a SiYuan kernel running at the host's --siyuan-url?): ${e.message}`);
  }
};
siyuan.plugin.lifecycle.onunload = async () => {
  if (socket) await socket.close(1000, "journal unloading");
};
