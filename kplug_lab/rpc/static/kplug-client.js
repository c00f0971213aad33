// kplug-client.js: call a kplug_lab (or SiYuan) kernel plugin from a web page or a SiYuan client plugin.
//
//   import { KplugClient } from "http://127.0.0.1:8765/kplug/static/kplug-client.js";
//   const hello = new KplugClient({ plugin: "hello", baseUrl: "http://127.0.0.1:8765", token: "..." });
//   await hello.call("echo", "hi");                  // -> "hi"
//   await hello.notify("echo", "fire and forget");    // -> undefined
//   await hello.batch({ method: "echo", params: [1] }, { method: "echo", params: [2], notification: true });
//   const off = hello.on("tick", (n) => console.log("tick", n));   // notifications over the WebSocket
//   off(); hello.close();
//
// The wire is SiYuan's (app/src/plugin/kernel.ts): calls are POSTed to <base>/api/plugin/rpc/<plugin> with
// the call's arguments as the `params` array; a response carrying -32001 (plugin not loaded) or -32002 (not
// running) is retried every 100 ms, up to 50 times, then returned as it is. Server notifications arrive on
// <base>/ws/plugin/rpc/<plugin>, which is reopened with exponential backoff whenever it closes.

/** A JSON-RPC error answered by the server: `code`, `message` and (optional) `data`. */
export class JsonRpcError extends Error {
  constructor(code, message, data) {
    super(data === undefined ? message : `${message}: ${typeof data === "string" ? data : JSON.stringify(data)}`);
    this.name = "JsonRpcError";
    this.code = code;
    this.rpcMessage = message;
    this.data = data;
  }
}

/** The server answered with an HTTP error and no JSON-RPC body (e.g. 401 auth failed, 403 not allowed). */
export class HttpError extends Error {
  constructor(status, body) {
    super(`HTTP ${status}${body ? ": " + body.slice(0, 200) : ""}`);
    this.name = "HttpError";
    this.status = status;
    this.body = body;
  }
}

const RETRY_CODES = new Set([-32001, -32002]);
let lastId = 0;

function freshId() {
  lastId += 1;
  const random = typeof crypto !== "undefined" && crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2);
  return `${random}-${lastId}`;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class KplugClient {
  /**
   * @param {object} options
   * @param {string} options.plugin                 the plugin's name
   * @param {string} [options.baseUrl]              server URL incl. any base path; default: this page's origin
   * @param {string} [options.token]                API token (sent as `Authorization: Token`; as a subprotocol on the WS)
   * @param {number} [options.retryInterval=100]    ms between retries of -32001/-32002
   * @param {number} [options.maxRetries=50]        retries before the last response is returned
   * @param {number} [options.reconnectInitial=250] first WebSocket reconnect delay, ms
   * @param {number} [options.reconnectMax=10000]   longest reconnect delay, ms
   * @param {(state: "connecting"|"open"|"closed") => void} [options.onConnection] WebSocket state changes
   * @param {typeof fetch} [options.fetch]          a fetch to use instead of the global one
   * @param {typeof WebSocket} [options.WebSocket]  a WebSocket class to use instead of the global one
   */
  constructor(options) {
    if (!options || typeof options.plugin !== "string" || !options.plugin) {
      throw new TypeError("KplugClient: options.plugin must be the plugin's name");
    }
    const base = options.baseUrl ?? (typeof location !== "undefined" ? location.origin : undefined);
    if (!base) throw new TypeError("KplugClient: options.baseUrl is required outside a web page");
    this.plugin = options.plugin;
    this.baseUrl = String(base).replace(/\/+$/, "");
    this.token = options.token ?? null;
    this.retryInterval = options.retryInterval ?? 100;
    this.maxRetries = options.maxRetries ?? 50;
    this.reconnectInitial = options.reconnectInitial ?? 250;
    this.reconnectMax = options.reconnectMax ?? 10000;
    this.onConnection = options.onConnection ?? null;
    this._fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this._WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this._handlers = new Map(); // method -> Set of handlers
    this._ws = null;
    this._reconnectTimer = null;
    this._attempts = 0;
    this._closed = false;
    this._openWaiters = [];
  }

  get rpcUrl() {
    return `${this.baseUrl}/api/plugin/rpc/${encodeURIComponent(this.plugin)}`;
  }

  get socketUrl() {
    const url = new URL(`${this.baseUrl}/ws/plugin/rpc/${encodeURIComponent(this.plugin)}`);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return url.toString();
  }

  /** The WebSocket subprotocols offered: a browser cannot set headers on a WebSocket, and a token in the URL
   * ends up in access logs, so the token rides as `kplug.token.<base64url of its UTF-8>` beside `kplug`. */
  get socketProtocols() {
    if (!this.token) return [];
    const bytes = new TextEncoder().encode(this.token);
    let binary = "";
    for (const b of bytes) binary += String.fromCharCode(b);
    const encoded = btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    return ["kplug", `kplug.token.${encoded}`];
  }

  /** Call `method(...args)`; resolves its result, rejects a JsonRpcError. */
  async call(method, ...args) {
    const response = await this._post({ jsonrpc: "2.0", id: freshId(), method, params: args });
    if (response === undefined) throw new JsonRpcError(-32603, "Internal error", "the server answered a call with no content");
    if (response.error) throw new JsonRpcError(response.error.code, response.error.message, response.error.data);
    return response.result;
  }

  /** Send `method(...args)` as a notification: no answer is expected. */
  async notify(method, ...args) {
    await this._post({ jsonrpc: "2.0", method, params: args });
  }

  /**
   * Send several calls in one request. Each call is `{method, params?, id?, notification?}`; `params` is sent
   * only when given, an `id` is made up unless `notification: true`. Resolves the parsed response as SiYuan's
   * client does: an array of responses, a single error object, or `undefined` when nothing came back (204).
   */
  async batch(...calls) {
    const list = calls.length === 1 && Array.isArray(calls[0]) ? calls[0] : calls;
    const body = list.map((c) => {
      const request = { jsonrpc: "2.0", method: c.method };
      if (c.params !== undefined && c.params !== null) request.params = c.params;
      if (!c.notification) request.id = c.id ?? freshId();
      return request;
    });
    return this._post(body);
  }

  /** Handle the server notification `method`; the handler gets `...params` (an array) or `params`. */
  on(method, handler) {
    if (typeof handler !== "function") throw new TypeError("KplugClient.on: handler must be a function");
    if (!this._handlers.has(method)) this._handlers.set(method, new Set());
    this._handlers.get(method).add(handler);
    this._connect();
    return () => this.off(method, handler);
  }

  off(method, handler) {
    const set = this._handlers.get(method);
    if (set) {
      set.delete(handler);
      if (set.size === 0) this._handlers.delete(method);
    }
  }

  /** Resolves once the notification WebSocket is open (opening it if needed). */
  opened() {
    this._connect();
    if (this._ws && this._ws.readyState === 1) return Promise.resolve();
    return new Promise((resolve, reject) => this._openWaiters.push({ resolve, reject }));
  }

  /** Close the WebSocket and stop reconnecting. */
  close() {
    this._closed = true;
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = null;
    const ws = this._ws;
    this._ws = null;
    if (ws) ws.close(1000, "client closed");
    for (const w of this._openWaiters.splice(0)) w.reject(new Error("KplugClient closed"));
  }

  // ---- internals ---------------------------------------------------------------------------------------

  async _post(body) {
    const headers = { "Content-Type": "application/json" };
    if (this.token) headers.Authorization = `Token ${this.token}`;
    const text = JSON.stringify(body);
    for (let attempt = 0; ; attempt++) {
      const res = await this._fetch(this.rpcUrl, { method: "POST", headers, body: text });
      if (res.status === 204) return undefined;
      const raw = await res.text();
      let parsed;
      try {
        parsed = JSON.parse(raw);
      } catch (e) {
        if (!res.ok) throw new HttpError(res.status, raw);
        throw new JsonRpcError(-32700, "Parse error", `HTTP ${res.status}: the response is not JSON`);
      }
      const isJsonRpc = Array.isArray(parsed) || (parsed !== null && typeof parsed === "object" && parsed.jsonrpc === "2.0");
      if (!isJsonRpc) throw new HttpError(res.status, raw);  // e.g. SiYuan's 401 {code: -1, msg: "Auth failed"}
      const retry = parsed && !Array.isArray(parsed) && parsed.error && RETRY_CODES.has(parsed.error.code);
      if (!retry || attempt >= this.maxRetries) return parsed;
      await sleep(this.retryInterval);
    }
  }

  _setConnection(state) {
    if (this.onConnection) {
      try { this.onConnection(state); } catch (e) { console.error("KplugClient onConnection handler failed", e); }
    }
  }

  _connect() {
    if (this._closed || this._ws || this._reconnectTimer) return;
    let ws;
    try {
      ws = new this._WebSocket(this.socketUrl, this.socketProtocols);
    } catch (e) {
      this._scheduleReconnect();
      return;
    }
    this._ws = ws;
    this._setConnection("connecting");
    ws.onopen = () => {
      this._attempts = 0;
      this._setConnection("open");
      for (const w of this._openWaiters.splice(0)) w.resolve();
    };
    ws.onmessage = (event) => this._dispatch(event.data);
    ws.onclose = () => {
      if (this._ws !== ws) return;
      this._ws = null;
      this._setConnection("closed");
      this._scheduleReconnect();
    };
  }

  _scheduleReconnect() {
    if (this._closed || this._reconnectTimer) return;
    const delay = Math.min(this.reconnectMax, this.reconnectInitial * 2 ** this._attempts);
    this._attempts += 1;
    // jitter (0.5x..1x) so many pages do not reconnect in lockstep after a server restart
    this._reconnectTimer = setTimeout(() => {
      this._reconnectTimer = null;
      this._connect();
    }, delay * (0.5 + Math.random() / 2));
  }

  _dispatch(data) {
    let message;
    try {
      message = JSON.parse(typeof data === "string" ? data : new TextDecoder().decode(data));
    } catch (e) {
      console.error("KplugClient: a WebSocket message is not JSON", e);
      return;
    }
    // SiYuan's rule: a notification has `method` and no `id`; answers on the socket are ignored
    if (!message || typeof message.method !== "string" || "id" in message) return;
    const handlers = this._handlers.get(message.method);
    if (!handlers) return;
    const args = Array.isArray(message.params) ? message.params : [message.params];
    for (const handler of [...handlers]) {
      try {
        handler(...args);
      } catch (e) {
        console.error(`KplugClient: handler of ${message.method} failed`, e);
      }
    }
  }
}

export default KplugClient;
