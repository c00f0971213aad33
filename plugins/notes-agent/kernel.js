// notes-agent: keeps short notes, serves them over its private HTTP endpoint
// (/plugin/private/notes-agent/...) and offers them to AI agents as a capability.
const { logger, storage, server, agent, rpc } = siyuan;
let notes = [];

async function load() {
  try { notes = await (await storage.get("notes.json")).json(); } catch (e) { notes = []; }
}
async function add(text) {
  const note = { id: notes.length + 1, text: String(text), at: new Date().toISOString() };
  notes.push(note);
  await storage.put("notes.json", JSON.stringify(notes));
  return note;
}

server.private.http.handler = async (req) => {
  const path = req.context.path;
  if (req.request.method === "GET" && path === "/notes") {
    return { statusCode: 200, headers: { "X-Notes": [String(notes.length)] }, body: { data: { type: "JSON", data: notes } } };
  }
  if (req.request.method === "POST" && path === "/notes") {
    const body = await req.request.body.data.json();
    return { statusCode: 201, body: { data: { type: "JSON", data: await add(body.text) } } };
  }
  return { statusCode: 404, body: { string: { format: "no route for %s", values: [path] } } };
};

rpc.bind("add", (text) => add(text), "Adds a note");
rpc.bind("list", () => notes, "All notes");

siyuan.plugin.lifecycle.onload = async () => {
  await load();
  if (siyuan.agent) {
    const record = await agent.registerCapability("search_notes", {
      title: "Search notes",
      description: "Find notes whose text contains a query",
      inputSchema: { type: "object", properties: { query: { type: "string" } }, required: ["query"] },
      effects: { localRead: true, localWrite: false, dataEgress: false, externalCost: false },
    }, ({ query }) => notes.filter((n) => n.text.includes(query)));
    logger.info(`registered ${record.name}`);
  }
};
