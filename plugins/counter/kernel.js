// counter: one persistent value shared by every client. Changes are saved to storage and broadcast to all
// WebSocket clients, so every window shows the same number.
const { logger, storage, rpc } = siyuan;
const FILE = "counter.json";
let state = { value: 0, updated: null };

// The snapshot is taken before the first await, so each caller gets (and broadcasts) the value its own change
// produced, even when several calls interleave at their awaits.
async function save() {
  state.updated = new Date().toISOString();
  const snapshot = { ...state };
  await storage.put(FILE, JSON.stringify(snapshot));
  await rpc.broadcast("changed", snapshot);
  return snapshot;
}

rpc.bind("get", () => state, "The current value");
rpc.bind("increment", async (by = 1) => {
  if (typeof by !== "number" || !Number.isFinite(by)) throw new TypeError("by must be a finite number");
  state.value += by;
  return save();
}, "Adds `by` (default 1) and broadcasts `changed`");
rpc.bind("reset", async () => {
  state.value = 0;
  return save();
}, "Sets the value back to 0");

siyuan.plugin.lifecycle.onload = async () => {
  try {
    state = await (await storage.get(FILE)).json();
    logger.info(`restored value ${state.value}`);
  } catch (e) {
    logger.info("no saved value yet, starting at 0");
  }
};
