// A to-do list whose kernel is split over several files, joined by `require` (relative to the requiring file,
// CommonJS: `module.exports`, a module cache; `.json` files parse). Files must live inside the plugin's folder.
const { createStore } = require("./lib/store");
const defaults = require("./data/defaults.json");

const store = createStore(siyuan.storage, defaults.file);

siyuan.rpc.bind("add", async (title) => store.add(title), "Adds a to-do", "title: non-empty string");
siyuan.rpc.bind("done", async (id) => store.done(id), "Marks a to-do as done", "id: the number add returned");
siyuan.rpc.bind("list", async () => store.list(), "Lists the to-dos, oldest first");

siyuan.plugin.lifecycle.onload = async () => {
  await store.load();
  siyuan.logger.info(`todo: ${store.size()} item(s), limit ${defaults.maxItems}`);
};
