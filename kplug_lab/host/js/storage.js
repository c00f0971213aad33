// siyuan.storage (spec §3.4): files under the plugin's storage folder and their watcher (ops storage_*, watcher_*).
function makeStorage() {
  // get and put settle through one reaction each (hostAsync's catch plus a then would be two): every job
  // counts in the fixed cost of a put (docs/adr/0003-host-benchmark.md)
  const hostFailed = (e) => { throw goError(e && e.message !== undefined ? e.message : e); };
  const toUndefined = () => undefined;
  const watcher = Object.freeze({
    add(path) {
      if (typeof path !== "string") return reject("path required");
      return hostAsync("watcher_add", path).then(() => undefined);
    },
    remove(path) {
      if (typeof path !== "string") return reject("path required");
      return hostAsync("watcher_remove", path).then(() => undefined);
    },
  });
  return Object.freeze({
    get(path) {
      if (typeof path !== "string") return reject("path required");
      return callAsync("storage_get", path).then(dataFromHost, hostFailed);
    },
    put(...args) {
      if (args.length < 2) return reject("path and content required");
      const value = args[1];
      const bytes = typeof value === "string" ? null : toBytes(value); // [better] binary content is written as bytes
      const content = bytes ? b64Encode(bytes, false) : String(value);
      return callAsync("storage_put", String(args[0]), content, !!bytes).then(toUndefined, hostFailed);
    },
    remove(...args) {
      if (args.length < 1) return reject("path required");
      return hostAsync("storage_remove", String(args[0])).then(() => undefined);
    },
    list(...args) {
      if (args.length < 1) return reject("path required");
      return hostAsync("storage_list", String(args[0]));
    },
    watcher,
  });
}
