// siyuan.mcp (registerTool, spec §3.6) and siyuan.agent (registerCapability), ops tool_*; the host calls a
// handler through __kplug.tool(kind, name, args). MAX_BOUND is rpc.js's.
const tools = new Map();  // kind + "\0" + local name -> handler
const sanitize = (s) => String(s).replace(/[^0-9A-Za-z]/g, "_");
function makeMcp(pluginName) {
  return Object.freeze({
    registerTool(...args) {
      if (args.length < 3) return reject("registerTool requires 3 arguments: name, config, handler");
      const [name, config, handler] = args;
      if (typeof name !== "string") return reject("first argument must be a tool name string");
      if (config === null || typeof config !== "object") return reject("second argument must be a config object");
      if (typeof handler !== "function") return reject("third argument must be a handler function");
      if (typeof config.description !== "string") return reject("config.description is required and must be a string");
      if (config.inputSchema === undefined || config.inputSchema === null) return reject("config.inputSchema is required");
      if (config.readOnly !== undefined && typeof config.readOnly !== "boolean") return reject("config.readOnly must be a boolean");
      const record = {
        name: `plugin__${sanitize(pluginName)}__${sanitize(name)}`,
        title: typeof config.title === "string" ? config.title : "",
        description: config.description,
        readOnly: !!config.readOnly,
        inputSchema: exportValue(config.inputSchema),
        outputSchema: config.outputSchema === undefined ? null : exportValue(config.outputSchema),
      };
      if (!tools.has("mcp\0" + name) && tools.size >= MAX_BOUND) return reject(`too many tools: ${MAX_BOUND} are registered`);
      try { tools.set("mcp\0" + name, handler); return Promise.resolve(call("tool_register", "mcp", name, record)); }
      catch (e) { tools.delete("mcp\0" + name); return reject(e.message); }
    },
    unregisterTool(...args) {
      if (args.length < 1) return reject("unregisterTool requires 1 argument: name");
      if (typeof args[0] !== "string") return reject("first argument must be a tool name string");
      tools.delete("mcp\0" + args[0]);
      call("tool_unregister", "mcp", args[0]);
      return Promise.resolve(undefined);
    },
  });
}
// siyuan.agent as SiYuan now (changes §2.6): names and description trimmed and checked, the record SiYuan returns;
// the model-facing name (SHA-256 based, at most 64 characters) is made by the host (host/ops/tools.py)
const EFFECTS = ["localRead", "localWrite", "dataEgress", "externalCost"];
function pickEffects(value) {
  if (value === undefined || value === null) return null;
  if (typeof value !== "object") throw new Error("config.effects must be an object");
  const out = {};
  for (const k of EFFECTS) if (value[k] !== undefined) out[k] = !!value[k];
  return out;
}
function makeAgent(pluginName) {
  return Object.freeze({
    registerCapability(...args) {
      if (args.length < 3) return reject("registerCapability requires 3 arguments: name, config, handler");
      const [rawName, config, handler] = args;
      if (typeof rawName !== "string") return reject("first argument must be a tool name string");
      const name = rawName.trim();
      if (!name) return reject("capability name must not be empty");
      if (config === null || typeof config !== "object") return reject("second argument must be a config object");
      if (typeof handler !== "function") return reject("third argument must be a handler function");
      if (typeof config.description !== "string") return reject("config.description is required and must be a string");
      const description = config.description.trim();
      if (!description) return reject("config.description must not be empty");
      if (config.inputSchema === undefined || config.inputSchema === null) return reject("config.inputSchema is required");
      let effects, actionEffects = null;
      try {
        effects = pickEffects(config.effects);
        if (config.actionEffects !== undefined && config.actionEffects !== null) {
          actionEffects = {};
          for (const action of Object.keys(config.actionEffects)) {
            if (!action.trim()) throw new Error("config.actionEffects: action name must not be empty");
            actionEffects[action] = pickEffects(config.actionEffects[action]);
          }
        }
      } catch (e) { return reject(e.message); }
      const record = {
        id: `${pluginName}:${name}`,  // SiYuan's capability-id builder is not verified (changes §2.6)
        title: typeof config.title === "string" ? config.title.trim() : "",
        description,
        effects,
        actionEffects,
        inputSchema: exportValue(config.inputSchema),
        outputSchema: config.outputSchema === undefined ? null : exportValue(config.outputSchema),
      };
      if (!tools.has("agent\0" + name) && tools.size >= MAX_BOUND) return reject(`too many tools: ${MAX_BOUND} are registered`);
      try { tools.set("agent\0" + name, handler); return Promise.resolve(call("tool_register", "agent", name, record)); }
      catch (e) { tools.delete("agent\0" + name); return reject(e.message); }
    },
    unregisterCapability(...args) {
      if (args.length < 1) return reject("unregisterCapability requires 1 argument: name");
      if (typeof args[0] !== "string") return reject("first argument must be a tool name string");
      const name = args[0].trim();
      if (!name) return reject("capability name must not be empty");
      tools.delete("agent\0" + name);
      call("tool_unregister", "agent", name);
      return Promise.resolve(undefined);
    },
  });
}

K.tool = (kind, name, args) => {
  const handler = tools.get(kind + "\0" + name);
  if (!handler) throw new Error(`tool [${name}] is not registered`);
  const marshal = (v) => {
    try { return exportValue(v); } catch (e) { const err = new Error(e.message); err.name = "KplugMarshalError"; throw err; }
  };
  const r = handler.call(G, args);
  return r instanceof Promise ? r.then(marshal) : marshal(r);
};
