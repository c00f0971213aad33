// siyuan.rpc (spec §3.5): bind / unbind / broadcast (ops rpc_*); the host calls a bound method through __kplug.rpc.

// Bound methods and tools are mirrored in the host, outside the sandbox's memory limit: a plugin may have this
// many of each.
const MAX_BOUND = 10000;
const rpcMethods = new Map();  // name -> {fn, descriptions}

function makeRpc() {
  return Object.freeze({
    bind(...args) {
      if (args.length < 2) return reject("method name and function required");
      if (typeof args[0] !== "string") return reject("first argument must be method name string");
      if (typeof args[1] !== "function") return reject("second argument must be a function");
      if (!rpcMethods.has(args[0]) && rpcMethods.size >= MAX_BOUND) {
        return reject(`too many methods: ${MAX_BOUND} are bound; unbind some before binding more`);
      }
      const descriptions = args.slice(2).map((d) => String(d));
      rpcMethods.set(args[0], { fn: args[1], descriptions });
      call("rpc_bind", args[0], descriptions);
      return Promise.resolve(undefined);
    },
    unbind(...args) {
      if (args.length < 1) return reject("method name required");
      if (typeof args[0] !== "string") return reject("first argument must be method name string");
      rpcMethods.delete(args[0]);
      call("rpc_unbind", args[0]);
      return Promise.resolve(undefined);
    },
    broadcast(...args) {
      if (args.length < 1) return reject("method required");
      if (typeof args[0] !== "string") return reject("first argument must be method name string");
      let params;
      try { params = args[1] === undefined ? null : exportValue(args[1]); } catch (e) { return reject(e.message); }
      return hostAsync("rpc_broadcast", args[0], args[1] !== undefined, params).then(() => undefined);
    },
  });
}

function notFound(method) {
  const e = new Error(`method [${method}] not found`);
  e.name = "KplugMethodNotFound";
  return e;
}
K.rpc = (method, params, hasParams) => {
  const entry = rpcMethods.get(method);
  if (!entry) throw notFound(method);
  let r;
  if (!hasParams) r = entry.fn.call(G);
  else if (Array.isArray(params)) r = entry.fn.apply(G, params);
  else r = entry.fn.call(G, params);
  return r instanceof Promise ? r.then((v) => exportValue(v)) : exportValue(r);
};
K.methods = () => Array.from(rpcMethods, ([name, m]) => ({ name, descriptions: m.descriptions }));
