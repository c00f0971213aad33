// hello: the smallest useful kernel plugin. Echo, greet, and remember the last greeting in storage.
const { plugin, logger, storage, rpc } = siyuan;

rpc.bind("echo", (...args) => (args.length === 1 ? args[0] : args), "Returns its arguments unchanged");

rpc.bind("greet", async (who = "world") => {
  const text = `Hello, ${who}!`;
  await storage.put("last-greeting.txt", text);
  logger.info(`greeted ${who}`);
  return text;
}, "Greets someone and stores the greeting", "who: a name (default: world)");

rpc.bind("lastGreeting", async () => {
  try {
    return await (await storage.get("last-greeting.txt")).text();
  } catch (e) {
    return null;
  }
}, "The last greeting, read back from storage");

rpc.bind("info", () => ({ name: plugin.name, version: plugin.version, platform: plugin.platform }),
  "Name, version and platform of this plugin");

plugin.lifecycle.onload = async () => {
  logger.info(`${plugin.displayName} ${plugin.version} loading`);
};
plugin.lifecycle.onrunning = () => logger.info("running");
plugin.lifecycle.onunload = () => logger.info("unloading");
