// The to-do items and their persistence in the plugin's storage.
const { checkTitle } = require("./validate");
const { maxItems } = require("../data/defaults.json");  // the same cached object kernel.js got

function createStore(storage, file) {
  let items = [];
  let nextId = 1;
  const save = () => storage.put(file, JSON.stringify({ items, nextId }));
  return {
    async load() {
      try {
        const saved = await (await storage.get(file)).json();
        items = saved.items;
        nextId = saved.nextId;
      } catch (e) {
        items = [];  // first start: nothing saved yet
      }
    },
    size: () => items.length,
    list: () => items.slice(),
    async add(title) {
      const clean = checkTitle(title);
      if (items.length >= maxItems) throw new Error(`at most ${maxItems} to-dos`);
      const item = { id: nextId++, title: clean, done: false };
      items.push(item);
      await save();
      return item.id;
    },
    async done(id) {
      const item = items.find((i) => i.id === id);
      if (!item) throw new Error(`no to-do ${id}`);
      item.done = true;
      await save();
      return item;
    },
  };
}

module.exports = { createStore };
