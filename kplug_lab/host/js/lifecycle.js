// The `siyuan` global (spec §3): __kplug.init(config) builds it before kernel.js runs, from the make* functions of
// the parts after this one (event.js, console.js's logger, storage.js, rpc.js, tools.js, client*.js,
// private_ports.js); __kplug.hook(name) runs a lifecycle hook; __kplug.devEval serves dev mode.
let siyuan = null;

// siyuan.secrets and siyuan.vars (spec §3.9)
const makeResolver = (kind) => ({ resolve: (template) => (typeof template === "string" ? call("resolve", kind, template) : "") });

let onloadedHook = null;  // siyuan.plugin.lifecycle.onloaded, kplug_lab's own: read by K.hook without a report

K.init = (config) => {
  const strict = !!config.strict;
  const lifecycle = { onload: null, onloaded: null, onrunning: null, onunload: null };
  if (strict) delete lifecycle.onloaded;  // SiYuan's: onload, onrunning, onunload
  else {
    Object.defineProperty(lifecycle, "onloaded", {
      get: () => onloadedHook,
      set: (v) => { touch("siyuan.plugin.lifecycle.onloaded"); onloadedHook = v; },
      enumerable: true,
    });
  }
  Object.seal(lifecycle);
  const plugin = Object.freeze({
    name: config.name,
    version: config.version,
    displayName: config.displayName,
    platform: config.platform,
    i18n: config.i18n === undefined ? null : config.i18n,
    lifecycle,
  });
  const api = {
    plugin,
    event: makeEvent(),
    logger: makeLogger(),
    storage: makeStorage(),
    rpc: makeRpc(),
    mcp: null,
    agent: makeAgent(config.name),
    client: makeClient(),
    server: makeServer(),
    secrets: Object.freeze(makeResolver("secrets")),
    vars: Object.freeze(makeResolver("vars")),
  };
  // siyuan.mcp, kplug_lab's own (SiYuan dropped it for siyuan.agent): kept for older plugins, reported when touched
  const mcp = makeMcp(config.name);
  if (strict) delete api.mcp;
  else Object.defineProperty(api, "mcp", { get: () => { touch("siyuan.mcp"); return mcp; }, enumerable: true });
  siyuan = Object.freeze(api);
  // [better] a plugin cannot replace the binding (host lookups use the captured object anyway). It stays
  // configurable, and re-assigning the same object is accepted, because real bundles start with
  // `const siyuan = globalThis.siyuan` (a SyntaxError over a non-configurable global) or, compiled to ES5 in
  // strict mode, `var siyuan = globalThis.siyuan` (a TypeError over a read-only one).
  const current = siyuan;
  Object.defineProperty(G, "siyuan", {
    get: () => current,
    set: (value) => {
      if (value !== current) throw new TypeError("siyuan is read-only: the host keeps the object it created");
    },
    configurable: true,
    enumerable: true,
  });
  applyPortability(strict);
};

// SiYuan now (changes §2.1): looked up at call time; null/undefined skipped silently; any other non-function is
// an error the host logs (and the plugin goes on, as with a throw or a rejection)
K.hook = (name) => {
  const fn = name === "onloaded" ? onloadedHook : siyuan.plugin.lifecycle[name];
  if (fn === null || fn === undefined) return { ok: true, missing: true };
  if (typeof fn !== "function") throw new TypeError(`siyuan.plugin.lifecycle.${name} is not a function (got ${typeof fn})`);
  const r = fn.call(siyuan.plugin.lifecycle);
  return r instanceof Promise ? r.then(() => ({ ok: true })) : { ok: true };
};

// dev mode: run code in the plugin's global scope and return its (JSON-exported) value
K.devEval = (code) => {
  const r = (0, eval)(code);
  return r instanceof Promise ? r.then((v) => exportValue(v)) : exportValue(r);
};
