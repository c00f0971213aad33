// Type declarations for a SiYuan kernel plugin's kernel.js / kernel.ts as kplug_lab runs it.
//
// Everything a kernel script sees: the `siyuan` global (SiYuan's kernel plugin API), the other globals of the
// goja host (console, timers, Buffer, URL, require, GoError) and kplug_lab's additions. Members that exist only in
// kplug_lab carry the `@kplugOnly` tag: a plugin that must also run under SiYuan's own host feature-detects them
// (`if (typeof kplug !== "undefined") ...`). Compile with `"lib": ["es2020"]` (no DOM): the web globals a
// kernel has are declared here, and only those.
//
// Use from a plugin project: `/// <reference path="<path printed by python -m kplug_lab.types>" />`, or list that
// path in tsconfig.json's "files".

// ---- values ------------------------------------------------------------------------------------------------

/** A JSON value as it crosses the host boundary (RPC params and results, broadcasts, durable items). */
type KernelJSON = null | boolean | number | string | KernelJSON[] | { [key: string]: KernelJSON };

/** Bytes from the host (`storage.get`, `client.fetch` responses, server request bodies, uploaded files). Each
 *  method can be called any number of times, except on a `client.fetch` response, whose body is read once. */
interface KernelData {
  text(): Promise<string>;
  json<T = any>(): Promise<T>;
  buffer(): Promise<Buffer>;
  arrayBuffer(): Promise<ArrayBuffer>;
  /** A copy of the bytes (newer SiYuan). */
  bytes(): Promise<Uint8Array>;
  /** A Blob typed with the body's Content-Type (newer SiYuan). */
  blob(): Promise<Blob>;
}

/** Host errors: an Error subclass whose `message` is the host's text. */
interface GoError extends Error {
  name: "GoError" | string;
  value?: { error(): string };
}
declare const GoError: {
  new (message?: string, value?: unknown): GoError;
  (message?: string, value?: unknown): GoError;
  readonly prototype: GoError;
};

// ---- siyuan ------------------------------------------------------------------------------------------------

declare namespace siyuan {
  type PluginState = -1 | 0 | 1 | 2 | 3 | 4 | 5;

  interface Lifecycle {
    /** Runs first, before the plugin answers calls; a returned Promise is awaited. */
    onload: (() => unknown) | null;
    /** Runs once the plugin is loaded and its methods are reachable. */
    onrunning: (() => unknown) | null;
    /** Runs when the plugin stops (unload, reload, shutdown); await here whatever must finish. */
    onunload: (() => unknown) | null;
    /** Accepted and ignored (older petal d.ts revisions). @kplugOnly */
    onloaded: (() => unknown) | null;
  }

  const plugin: {
    readonly name: string;
    readonly version: string;
    readonly displayName: string;
    /** "windows" | "linux" | "darwin" | "docker" | "android" | "ios" | "harmony" ... */
    readonly platform: string;
    readonly i18n: Record<string, unknown> | null;
    readonly lifecycle: Lifecycle;
  };

  interface HostEvent {
    id: string;
    type: "start" | "stop" | "fs-notify";
    detail: null | { operation: "CREATE" | "WRITE" | "RENAME" | "REMOVE"; path: string };
  }

  const event: {
    /** Called with each host event (`this` = siyuan.event); return value ignored, errors swallowed. With topic
     *  "runtime", `emit`'s data arrives here as is. */
    handler: ((this: typeof event, message: HostEvent | any) => unknown) | null;
    emit(topic: "runtime" | "plugin" | string, data: unknown): Promise<void>;
  };

  /** Synchronous; arguments are joined with spaces (non-strings as JSON). */
  const logger: {
    readonly trace: (...args: unknown[]) => void;
    readonly debug: (...args: unknown[]) => void;
    readonly info: (...args: unknown[]) => void;
    readonly warn: (...args: unknown[]) => void;
    readonly error: (...args: unknown[]) => void;
  };

  interface StorageEntry { name: string; isDir: boolean; isSymlink: boolean; /** Unix seconds */ updated: number }

  /** Files under the plugin's storage folder; paths are relative to it ("/a" = "a"). */
  const storage: {
    get(path: string): Promise<KernelData>;
    /** `content` is string-coerced: binary data cannot be written. */
    put(path: string, content: string | number | boolean): Promise<void>;
    remove(path: string): Promise<void>;
    list(path: string): Promise<StorageEntry[]>;
    readonly watcher: {
      /** Deliver `fs-notify` events for `path` (non-recursive) to `siyuan.event.handler`. */
      add(path: string): Promise<void>;
      remove(path: string): Promise<void>;
    };
  };

  type MethodHandler = (this: typeof globalThis, ...params: any[]) => unknown;

  /** JSON-RPC methods that clients call on `/ws/plugin/rpc` and `/api/plugin/rpc`. An array of params is spread;
   *  an object is passed as one argument. A throw or rejection answers -32603; kplug_lab also honours a thrown
   *  object's numeric `code` in -32099..-32000. */
  const rpc: {
    bind(name: string, fn: MethodHandler, ...descriptions: string[]): Promise<void>;
    unbind(name: string): Promise<void>;
    /** A JSON-RPC notification to every WebSocket client of this plugin. */
    broadcast(method: string, params?: unknown): Promise<void>;
  };

  interface JSONSchema {
    type?: string;
    description?: string;
    properties?: Record<string, JSONSchema>;
    required?: string[];
    items?: JSONSchema;
    enum?: string[];
    oneOf?: JSONSchema[];
    anyOf?: JSONSchema[];
    allOf?: JSONSchema[];
    $ref?: string;
    $defs?: Record<string, JSONSchema>;
  }

  interface ToolConfig {
    title?: string;
    description: string;
    inputSchema: JSONSchema;
    outputSchema?: JSONSchema;
    readOnly?: boolean;
  }

  interface ToolRecord {
    name: string;
    title: string;
    description: string;
    readOnly: boolean;
    inputSchema: JSONSchema;
    outputSchema: JSONSchema | null;
  }

  /** Tools for SiYuan's MCP server (global name `plugin__<plugin>__<tool>`). */
  const mcp: {
    registerTool(name: string, config: ToolConfig, handler: (args: any) => unknown): Promise<ToolRecord>;
    unregisterTool(name: string): Promise<void>;
  };

  interface Effects { localRead?: boolean; localWrite?: boolean; dataEgress?: boolean; externalCost?: boolean }

  interface CapabilityConfig {
    title?: string;
    description: string;
    inputSchema: JSONSchema;
    outputSchema?: JSONSchema;
    effects?: Effects;
    actionEffects?: Record<string, Effects>;
  }

  interface CapabilityRecord {
    id: string;
    name: string;
    title: string;
    description: string;
    effects: Effects | null;
    actionEffects: Record<string, Effects> | null;
    inputSchema: JSONSchema;
    outputSchema: JSONSchema | null;
  }

  /** Agent capabilities (newer SiYuan, which replaces `mcp` with it; kplug_lab offers both). */
  const agent: {
    registerCapability(name: string, config: CapabilityConfig, handler: (args: any) => unknown):
      Promise<CapabilityRecord>;
    unregisterCapability(name: string): Promise<void>;
  };

  interface FetchInit {
    method?: string;
    headers?: Record<string, string>;
    /** Copied at call time. FormData is sent as multipart/form-data, URLSearchParams as a urlencoded form; the
     *  Content-Type they imply is set unless `headers` has one. */
    body?: string | ArrayBuffer | ArrayBufferView | Blob | FormData | URLSearchParams;
    /** Milliseconds until the response headers (default 60000; 0: no limit). */
    timeout?: number;
    /** Aborting rejects the fetch (or errors the body being read) with the signal's reason. */
    signal?: AbortSignal;
  }

  /** Resolved when the headers arrive. The body can be read once: by `body` or one of the KernelData methods;
   *  any later read rejects with TypeError "body stream already read". */
  interface FetchResponse extends KernelData {
    /** The requested path, not the final URL. */
    url: string;
    ok: boolean;
    status: number;
    /** With the code: "200 OK". */
    statusText: string;
    headers: Record<string, string>;
    /** Chunks of at most 32 KiB, read from the kernel as you read them; `cancel()` closes the connection. */
    readonly body: ReadableStream<Uint8Array>;
    readonly bodyUsed: boolean;
  }

  type SocketMessage = { type: "text"; data: string } | { type: "binary"; data: ArrayBuffer };
  interface SocketClose { type: "close"; code: number; reason: string; wasClean: boolean }

  interface SocketLike {
    readonly binaryType: "arraybuffer";
    readonly bufferedAmount: number;
    readonly protocol: string;
    /** 0 connecting, 1 open, 2 closing, 3 closed */
    readonly readyState: 0 | 1 | 2 | 3;
    onopen: ((this: SocketLike, event: { type: "open" }) => unknown) | null;
    onmessage: ((this: SocketLike, event: SocketMessage) => unknown) | null;
    onping: ((this: SocketLike, event: { type: "ping"; data: string }) => unknown) | null;
    onpong: ((this: SocketLike, event: { type: "pong"; data: string }) => unknown) | null;
    onclose: ((this: SocketLike, event: SocketClose) => unknown) | null;
    onerror: ((this: SocketLike, event: { type: "error"; error?: string; message?: string }) => unknown) | null;
    open(): Promise<void>;
    send(data: string | ArrayBuffer): Promise<void>;
    ping(data?: string): Promise<void>;
    pong(data?: string): Promise<void>;
    close(code?: number, reason?: string): Promise<void>;
  }

  interface ClientSocket extends SocketLike {
    readonly url: string;
    readonly extensions: string;
  }

  interface EventSourceLike {
    readonly url: string;
    readonly readyState: 0 | 1 | 2;
    onopen: ((event: { type: "open" }) => unknown) | null;
    onmessage: ((event: { type: string; data: string; lastEventId: string }) => unknown) | null;
    onclose: ((event: { type: "close" }) => unknown) | null;
    onerror: ((event: { type: "error"; error?: string; message?: string }) => unknown) | null;
    open(): Promise<void>;
    close(): Promise<void>;
  }

  /** The SiYuan kernel's own HTTP server on loopback, as an administrator. `path` starts with "/". */
  const client: {
    fetch(path: string, init?: FetchInit): Promise<FetchResponse>;
    /** Resolves an unconnected socket: call `open()` after setting the handlers. */
    socket(path: string, protocols?: string | string[]): Promise<ClientSocket>;
    event(path: string): Promise<EventSourceLike>;
  };

  interface PrivateRequest {
    url: {
      user: { username: string; password: string } | null;
      host: string;
      path: string;
      pathname: string;
      fragment: string;
      hash: string;
      search: string;
      query: Record<string, string[]>;
    };
    request: {
      method: string;
      uri: string;
      proto: string;
      protoMajor: number;
      protoMinor: number;
      headers: Record<string, string[]>;
      cookies: Record<string, string[]>;
      contentType: string;
      contentLength: number;
      referer: string;
      userAgent: string;
      body: {
        form: null | {
          values: Record<string, string[]>;
          files: Record<string, { filename: string; headers: Record<string, string[]>; size: number;
            data: KernelData }[]>;
        };
        data: KernelData | null;
      };
    };
    context: {
      path: string;
      fullPath: string;
      clientIp: string;
      remoteIp: string;
      remoteAddr: string;
      params: Record<string, string[]>;
    };
    port: SocketLike | EventStreamPort | null;
  }

  interface EventStreamPort {
    onopen: ((event: { type: "open" }) => unknown) | null;
    onclose: ((event: { type: "close" }) => unknown) | null;
    send(event: { data: unknown; event?: string; id?: string; retry?: number }): void;
    close(): void;
  }

  interface Cookie {
    Name: string; Value: string; Quoted?: boolean; Path?: string; Domain?: string; Expires?: string;
    RawExpires?: string; MaxAge?: number; Secure?: boolean; HttpOnly?: boolean; SameSite?: 0 | 1 | 2 | 3 | 4;
    Partitioned?: boolean; Raw?: string; Unparsed?: string[];
  }

  interface PrivateResponse {
    statusCode?: number;
    headers?: Record<string, string[]>;
    cookies?: Cookie[];
    body?: null | {
      /** `type`: "JSON", "JSONP", "AsciiJSON", "IndentedJSON", "PureJSON", "SecureJSON", "XML", "YAML" or "TOML" */
      data?: { type: string; data: unknown };
      file?: { path: string; name?: string };
      string?: { format: string; values?: unknown[] };
      raw?: { contentType: string; data: string | ArrayBuffer | Uint8Array };
      redirect?: { location: string };
      proxy?: { url: string; method?: "GET" | "HEAD"; headers?: Record<string, string[]> };
      /** Chunks flushed as produced, pulled as fast as the client reads; cancelled when the client leaves. */
      stream?: {
        contentType?: string;
        stream: ReadableStream<string | ArrayBuffer | ArrayBufferView>
          | AsyncIterable<string | ArrayBuffer | ArrayBufferView> | Iterable<string | ArrayBuffer | ArrayBufferView>;
      };
    };
  }

  /** Handlers of `/plugin/private/<name>/*path` (administrators only). */
  const server: {
    readonly private: {
      readonly http: { handler: ((this: unknown, request: PrivateRequest & { port: null }) =>
        PrivateResponse | Promise<PrivateResponse>) | null };
      readonly ws: { handler: ((this: unknown, request: PrivateRequest & { port: SocketLike }) => unknown) | null };
      readonly es: { handler: ((this: unknown, request: PrivateRequest & { port: EventStreamPort }) => unknown)
        | null };
    };
  };

  /** `{{secrets.NAME}}`, `${NAME}` and `$NAME` replaced from the workspace's secret store. */
  const secrets: { resolve(template: string): string };
  /** The same over the workspace's variables. */
  const vars: { resolve(template: string): string };
}

// ---- the goja host's globals ----------------------------------------------------------------------------------

interface KernelConsole {
  log(format?: unknown, ...args: unknown[]): void;
  info(format?: unknown, ...args: unknown[]): void;
  debug(format?: unknown, ...args: unknown[]): void;
  warn(format?: unknown, ...args: unknown[]): void;
  error(format?: unknown, ...args: unknown[]): void;
}
declare const console: KernelConsole;

interface KernelTimer { readonly __kernelTimer: unique symbol }
declare function setTimeout<A extends unknown[]>(fn: (...args: A) => void, ms?: number, ...args: A): KernelTimer;
declare function setInterval<A extends unknown[]>(fn: (...args: A) => void, ms?: number, ...args: A): KernelTimer;
declare function setImmediate<A extends unknown[]>(fn: (...args: A) => void, ...args: A): KernelTimer;
declare function clearTimeout(timer: KernelTimer | undefined | null): void;
declare function clearInterval(timer: KernelTimer | undefined | null): void;
declare function clearImmediate(timer: KernelTimer | undefined | null): void;

declare class URLSearchParams {
  constructor(init?: string | Record<string, string> | [string, string][]);
  append(name: string, value: string): void;
  delete(name: string): void;
  get(name: string): string | null;
  getAll(name: string): string[];
  has(name: string): boolean;
  set(name: string, value: string): void;
  sort(): void;
  forEach(fn: (value: string, name: string) => void): void;
  keys(): IterableIterator<string>;
  values(): IterableIterator<string>;
  entries(): IterableIterator<[string, string]>;
  [Symbol.iterator](): IterableIterator<[string, string]>;
  toString(): string;
}

declare class URL {
  constructor(url: string, base?: string | URL);
  hash: string;
  host: string;
  hostname: string;
  href: string;
  readonly origin: string;
  password: string;
  pathname: string;
  port: string;
  protocol: string;
  search: string;
  readonly searchParams: URLSearchParams;
  username: string;
  toString(): string;
  toJSON(): string;
}

type BufferEncoding = "utf8" | "utf-8" | "hex" | "base64" | "base64Url" | "base64url";

interface Buffer extends Uint8Array {
  toString(encoding?: BufferEncoding, start?: number, end?: number): string;
  equals(other: Uint8Array): boolean;
  write(text: string, offset?: number, length?: number, encoding?: BufferEncoding): number;
  readUInt8(offset?: number): number;
  readInt8(offset?: number): number;
  readUInt16LE(offset?: number): number;
  readUInt16BE(offset?: number): number;
  readInt16LE(offset?: number): number;
  readInt16BE(offset?: number): number;
  readUInt32LE(offset?: number): number;
  readUInt32BE(offset?: number): number;
  readInt32LE(offset?: number): number;
  readInt32BE(offset?: number): number;
  readFloatLE(offset?: number): number;
  readFloatBE(offset?: number): number;
  readDoubleLE(offset?: number): number;
  readDoubleBE(offset?: number): number;
  writeUInt8(value: number, offset?: number): number;
  writeInt8(value: number, offset?: number): number;
  writeUInt16LE(value: number, offset?: number): number;
  writeUInt16BE(value: number, offset?: number): number;
  writeInt32LE(value: number, offset?: number): number;
  writeInt32BE(value: number, offset?: number): number;
  writeUInt32LE(value: number, offset?: number): number;
  writeUInt32BE(value: number, offset?: number): number;
  writeDoubleLE(value: number, offset?: number): number;
  writeDoubleBE(value: number, offset?: number): number;
}
declare const Buffer: {
  from(data: string, encoding?: BufferEncoding): Buffer;
  from(data: ArrayBuffer | ArrayLike<number>, byteOffset?: number, length?: number): Buffer;
  alloc(size: number, fill?: number | string): Buffer;
  concat(list: Uint8Array[], totalLength?: number): Buffer;
  readonly poolSize: number;
  readonly prototype: Buffer;
};

/** Built-in modules only: console, util (format), url, buffer (also as "node:<id>"). */
declare function require(id: "console" | "node:console"): KernelConsole;
declare function require(id: "util" | "node:util"): { format(format?: unknown, ...args: unknown[]): string };
declare function require(id: "url" | "node:url"): { URL: typeof URL; URLSearchParams: typeof URLSearchParams;
  domainToASCII(domain: string): string; domainToUnicode(domain: string): string };
declare function require(id: "buffer" | "node:buffer"): { Buffer: typeof Buffer };
declare function require(id: string): any;

// ---- web globals (newer SiYuan has these too, except where tagged) ---------------------------------------------

declare class TextEncoder {
  readonly encoding: "utf-8";
  encode(input?: string): Uint8Array;
  encodeInto(input: string, dest: Uint8Array): { read: number; written: number };
}

declare class TextDecoder {
  constructor(label?: string, options?: { fatal?: boolean; ignoreBOM?: boolean });
  readonly encoding: string;
  readonly fatal: boolean;
  readonly ignoreBOM: boolean;
  decode(input?: ArrayBuffer | ArrayBufferView, options?: { stream?: boolean }): string;
}

/** @kplugOnly */
declare class Event {
  constructor(type: string, init?: { bubbles?: boolean; cancelable?: boolean });
  readonly type: string;
  readonly defaultPrevented: boolean;
  preventDefault(): void;
}

/** @kplugOnly */
declare class EventTarget {
  addEventListener(type: string, listener: ((event: any) => void) | null, options?: { once?: boolean } | boolean):
    void;
  removeEventListener(type: string, listener: ((event: any) => void) | null): void;
  dispatchEvent(event: Event): boolean;
}

declare class AbortSignal extends EventTarget {
  readonly aborted: boolean;
  readonly reason: any;
  onabort: ((event: Event) => void) | null;
  throwIfAborted(): void;
  static abort(reason?: unknown): AbortSignal;
  static timeout(ms: number): AbortSignal;
  static any(signals: AbortSignal[]): AbortSignal;
}

declare class AbortController {
  readonly signal: AbortSignal;
  abort(reason?: unknown): void;
}

type BlobPart = string | ArrayBuffer | ArrayBufferView | Blob;

declare class Blob {
  constructor(parts?: BlobPart[], options?: { type?: string; endings?: "transparent" | "native" });
  readonly size: number;
  readonly type: string;
  slice(start?: number, end?: number, contentType?: string): Blob;
  text(): Promise<string>;
  arrayBuffer(): Promise<ArrayBuffer>;
  bytes(): Promise<Uint8Array>;
  stream(): ReadableStream<Uint8Array>;
}

declare class File extends Blob {
  constructor(bits: BlobPart[], name: string, options?: { type?: string; lastModified?: number });
  readonly name: string;
  readonly lastModified: number;
}

type FormDataEntryValue = string | File;

declare class FormData {
  append(name: string, value: string | Blob, filename?: string): void;
  set(name: string, value: string | Blob, filename?: string): void;
  get(name: string): FormDataEntryValue | null;
  getAll(name: string): FormDataEntryValue[];
  has(name: string): boolean;
  delete(name: string): void;
  forEach(fn: (value: FormDataEntryValue, name: string, parent: FormData) => void): void;
  keys(): IterableIterator<string>;
  values(): IterableIterator<FormDataEntryValue>;
  entries(): IterableIterator<[string, FormDataEntryValue]>;
  [Symbol.iterator](): IterableIterator<[string, FormDataEntryValue]>;
}

interface QueuingStrategy<T = any> { highWaterMark?: number; size?: (chunk: T) => number }

declare class CountQueuingStrategy implements QueuingStrategy {
  constructor(init: { highWaterMark: number });
  readonly highWaterMark: number;
  size(): 1;
}

declare class ByteLengthQueuingStrategy implements QueuingStrategy<ArrayBufferView> {
  constructor(init: { highWaterMark: number });
  readonly highWaterMark: number;
  size(chunk: ArrayBufferView): number;
}

declare class ReadableStreamDefaultController<R = any> {
  readonly desiredSize: number | null;
  enqueue(chunk: R): void;
  close(): void;
  error(reason?: unknown): void;
}

type ReadableStreamReadResult<R> = { done: false; value: R } | { done: true; value: undefined };

declare class ReadableStreamDefaultReader<R = any> {
  constructor(stream: ReadableStream<R>);
  readonly closed: Promise<undefined>;
  read(): Promise<ReadableStreamReadResult<R>>;
  releaseLock(): void;
  cancel(reason?: unknown): Promise<void>;
}

interface UnderlyingSource<R = any> {
  start?(controller: ReadableStreamDefaultController<R>): unknown;
  pull?(controller: ReadableStreamDefaultController<R>): unknown;
  cancel?(reason?: unknown): unknown;
}

declare class ReadableStream<R = any> {
  constructor(source?: UnderlyingSource<R>, strategy?: QueuingStrategy<R>);
  static from<R>(iterable: Iterable<R> | AsyncIterable<R>): ReadableStream<R>;
  readonly locked: boolean;
  getReader(): ReadableStreamDefaultReader<R>;
  cancel(reason?: unknown): Promise<void>;
  pipeTo(dest: WritableStream<R>, options?: { preventClose?: boolean; preventAbort?: boolean;
    preventCancel?: boolean; signal?: AbortSignal }): Promise<void>;
  pipeThrough<T>(transform: { writable: WritableStream<R>; readable: ReadableStream<T> },
    options?: { preventClose?: boolean; preventAbort?: boolean; preventCancel?: boolean; signal?: AbortSignal }):
    ReadableStream<T>;
  tee(): [ReadableStream<R>, ReadableStream<R>];
  [Symbol.asyncIterator](): AsyncIterableIterator<R>;
}

declare class WritableStreamDefaultController {
  readonly signal: AbortSignal;
  error(reason?: unknown): void;
}

declare class WritableStreamDefaultWriter<W = any> {
  constructor(stream: WritableStream<W>);
  readonly closed: Promise<undefined>;
  readonly desiredSize: number | null;
  readonly ready: Promise<undefined>;
  write(chunk: W): Promise<void>;
  close(): Promise<void>;
  abort(reason?: unknown): Promise<void>;
  releaseLock(): void;
}

interface UnderlyingSink<W = any> {
  start?(controller: WritableStreamDefaultController): unknown;
  write?(chunk: W, controller: WritableStreamDefaultController): unknown;
  close?(): unknown;
  abort?(reason?: unknown): unknown;
}

declare class WritableStream<W = any> {
  constructor(sink?: UnderlyingSink<W>, strategy?: QueuingStrategy<W>);
  readonly locked: boolean;
  getWriter(): WritableStreamDefaultWriter<W>;
  close(): Promise<void>;
  abort(reason?: unknown): Promise<void>;
}

declare class TransformStreamDefaultController<O = any> {
  readonly desiredSize: number | null;
  enqueue(chunk: O): void;
  error(reason?: unknown): void;
  terminate(): void;
}

interface Transformer<I = any, O = any> {
  start?(controller: TransformStreamDefaultController<O>): unknown;
  transform?(chunk: I, controller: TransformStreamDefaultController<O>): unknown;
  flush?(controller: TransformStreamDefaultController<O>): unknown;
}

declare class TransformStream<I = any, O = any> {
  constructor(transformer?: Transformer<I, O>, writableStrategy?: QueuingStrategy<I>,
    readableStrategy?: QueuingStrategy<O>);
  readonly readable: ReadableStream<O>;
  readonly writable: WritableStream<I>;
}

type KeyUsage = "encrypt" | "decrypt" | "sign" | "verify" | "deriveKey" | "deriveBits" | "wrapKey" | "unwrapKey";
type KeyFormat = "raw" | "pkcs8" | "spki" | "jwk";
type BufferSource = ArrayBuffer | ArrayBufferView;
/** `"SHA-256"`, or `{name: "AES-GCM", iv}`, `{name: "HMAC", hash: "SHA-256"}`, ... (Web Crypto's dictionaries;
 *  also the non-standard "MD5" and "AES-ECB"). */
type AlgorithmIdentifier = string | { name: string; [member: string]: unknown };

interface JsonWebKey {
  kty?: string; use?: string; key_ops?: string[]; alg?: string; ext?: boolean; crv?: string; x?: string; y?: string;
  d?: string; n?: string; e?: string; p?: string; q?: string; dp?: string; dq?: string; qi?: string; k?: string;
}

/** An opaque handle to a key the host keeps. */
interface CryptoKey {
  readonly type: "secret" | "private" | "public";
  readonly extractable: boolean;
  readonly algorithm: { name: string; [member: string]: unknown };
  readonly usages: KeyUsage[];
}

interface CryptoKeyPair { publicKey: CryptoKey; privateKey: CryptoKey }

interface SubtleCrypto {
  digest(algorithm: AlgorithmIdentifier, data: BufferSource): Promise<ArrayBuffer>;
  encrypt(algorithm: AlgorithmIdentifier, key: CryptoKey, data: BufferSource): Promise<ArrayBuffer>;
  decrypt(algorithm: AlgorithmIdentifier, key: CryptoKey, data: BufferSource): Promise<ArrayBuffer>;
  sign(algorithm: AlgorithmIdentifier, key: CryptoKey, data: BufferSource): Promise<ArrayBuffer>;
  verify(algorithm: AlgorithmIdentifier, key: CryptoKey, signature: BufferSource, data: BufferSource):
    Promise<boolean>;
  /** ECDSA and ECDH (`namedCurve`), RSA (`modulusLength`), Ed25519 and X25519 make key pairs. */
  generateKey(algorithm: { name: string; namedCurve: string } | { name: string; modulusLength: number }
    | "Ed25519" | "X25519" | { name: "Ed25519" | "X25519" }, extractable: boolean, usages: KeyUsage[]):
    Promise<CryptoKeyPair>;
  generateKey(algorithm: AlgorithmIdentifier, extractable: boolean, usages: KeyUsage[]):
    Promise<CryptoKey | CryptoKeyPair>;
  deriveBits(algorithm: AlgorithmIdentifier, baseKey: CryptoKey, length: number): Promise<ArrayBuffer>;
  deriveKey(algorithm: AlgorithmIdentifier, baseKey: CryptoKey, derivedKeyType: AlgorithmIdentifier,
    extractable: boolean, usages: KeyUsage[]): Promise<CryptoKey>;
  importKey(format: KeyFormat, keyData: BufferSource | JsonWebKey, algorithm: AlgorithmIdentifier,
    extractable: boolean, usages: KeyUsage[]): Promise<CryptoKey>;
  exportKey(format: "jwk", key: CryptoKey): Promise<JsonWebKey>;
  exportKey(format: Exclude<KeyFormat, "jwk">, key: CryptoKey): Promise<ArrayBuffer>;
  wrapKey(format: KeyFormat, key: CryptoKey, wrappingKey: CryptoKey, wrapAlgorithm: AlgorithmIdentifier):
    Promise<ArrayBuffer>;
  unwrapKey(format: KeyFormat, wrappedKey: BufferSource, unwrappingKey: CryptoKey,
    unwrapAlgorithm: AlgorithmIdentifier, unwrappedKeyAlgorithm: AlgorithmIdentifier, extractable: boolean,
    usages: KeyUsage[]): Promise<CryptoKey>;
}

declare const crypto: {
  getRandomValues<T extends Int8Array | Uint8Array | Uint8ClampedArray | Int16Array | Uint16Array | Int32Array
    | Uint32Array>(array: T): T;
  randomUUID(): string;
  readonly subtle: SubtleCrypto;
};

/** @kplugOnly */
declare function structuredClone<T>(value: T): T;

/** `globalThis` under its Node name. @kplugOnly */
declare const global: typeof globalThis;

// ---- kplug: durable queues, schedules and key-value state (docs/guarantees.md) ------------------------------

/** kplug_lab's durable primitives. Every Promise that writes resolves once the write is committed to disk.
 *  Absent under SiYuan's own host: feature-detect with `typeof kplug !== "undefined"`. @kplugOnly */
declare namespace kplug {
  /** @kplugOnly */
  const version: 1;

  /** @kplugOnly */
  interface ItemInfo { readonly id: number; readonly key: string | null; readonly attempts: number }

  /** @kplugOnly */
  interface RetryOptions { initialMs?: number; maxMs?: number; factor?: number }

  /** A persistent FIFO queue of JSON items, handled at least once. @kplugOnly */
  interface Queue {
    readonly name: string;
    /** Resolves once the item is on disk; with `{key}`, an item whose key was seen before is not enqueued. */
    push(item: unknown, options?: { key?: string | number | null }): Promise<{ id: number; duplicate: boolean }>;
    size(): Promise<number>;
    /** Handle items in order; an item is removed only after `handler` resolves, retried with backoff when it
     *  throws. Returns a stop function: await its Promise in `onunload`. */
    consume(handler: (item: any, info: ItemInfo) => unknown, options?: { retry?: RetryOptions }):
      () => Promise<void>;
    consume(handler: (items: any[], infos: ItemInfo[]) => unknown, options: { batch: number; retry?: RetryOptions }):
      () => Promise<void>;
  }

  /** The queue `name` (created on first use). @kplugOnly */
  function queue(name: string): Queue;

  /** @kplugOnly */
  interface Entry<T = any> { value: T; version: number }

  /** @kplugOnly */
  interface Change { key: string; value: unknown; version: number; deleted: boolean }

  /** @kplugOnly */
  interface CommitResult {
    ok: boolean;
    version: number;
    changes: Change[];
    conflicts: { key: string; version: number }[];
  }

  /** @kplugOnly */
  interface Transaction {
    get<T = any>(key: string): Promise<T | undefined>;
    set(key: string, value: unknown): void;
    delete(key: string): void;
  }

  /** Versioned key-value state shared by every instance of the plugin. @kplugOnly */
  const kv: {
    get<T = any>(key: string): Promise<T | undefined>;
    entry<T = any>(key: string): Promise<Entry<T> | null>;
    /** Resolves the new version once on disk. */
    set(key: string, value: unknown): Promise<number>;
    /** Resolves whether the key existed. */
    delete(key: string): Promise<boolean>;
    list(prefix?: string): Promise<{ key: string; value: any; version: number }[]>;
    /** Set only if still at `expectedVersion` (0: absent). */
    cas(key: string, expectedVersion: number, value: unknown): Promise<{ ok: boolean; version: number }>;
    commit(change: { check?: Record<string, number>; set?: Record<string, unknown>; delete?: string[] }):
      Promise<CommitResult>;
    /** Run `fn` and commit its writes atomically if nothing it read changed meanwhile; else run it again. */
    transaction<T>(fn: (tx: Transaction) => T | Promise<T>, options?: { retries?: number }):
      Promise<{ value: T; version: number }>;
    /** After each committed change made by this plugin, in commit order. Returns an unsubscribe function. */
    onChange(handler: (change: Change) => unknown): () => void;
  };

  /** @kplugOnly */
  interface ScheduleRun { readonly name: string; readonly slot: number; readonly scheduledAt: Date }

  /** Run `handler` every `every` (ms, or "30s", "5m") or on a `cron` expression (UTC), never twice at once; the
   *  last completed slot survives restarts. @kplugOnly */
  function schedule(name: string, options: { every?: number | string; cron?: string; catchUp?: "once" | "skip" },
                    handler: (run: ScheduleRun) => unknown): Promise<{ readonly name: string; cancel(): Promise<void> }>;
}
