// streamer: serves streamed responses on /plugin/private/streamer/... (`body.stream`: chunks are sent as they
// are produced, pulled only as fast as the client reads, cancelled when the client leaves), and reads a
// kernel response as a stream (`response.body.getReader()`), stopping it with an AbortController.
const { client, rpc, server, logger } = siyuan;

const served = { started: 0, finished: 0, cancelled: 0 };
const MAX_LINES = 1000000;

// GET /count?to=N: the lines "1" .. "N", one chunk per line, produced only when the client wants more.
function countStream(to) {
  let next = 1;
  served.started++;
  return new ReadableStream({
    pull(controller) {
      if (next > to) {
        served.finished++;
        controller.close();
        return;
      }
      controller.enqueue(`${next++}\n`);
    },
    cancel(reason) {
      served.cancelled++;
      logger.info(`streamer: count stream cancelled at ${next - 1}: ${reason}`);
    },
  }, { highWaterMark: 0 });
}

async function kernelFile(path, signal) {
  const res = await client.fetch("/api/file/getFile", { method: "POST", body: JSON.stringify({ path }), signal });
  if (res.status !== 200) {  // the kernel answers 202 with a JSON envelope when the file cannot be read
    const envelope = await res.json().catch(() => ({ msg: res.statusText }));
    throw new Error(`getFile ${path}: ${envelope.msg}`);
  }
  return res;
}

server.private.http.handler = async (req) => {
  const path = req.context.path;
  const query = req.url.query;
  if (req.request.method === "GET" && path === "/count") {
    const to = Number((query.to || ["10"])[0]);
    if (!Number.isInteger(to) || to < 0 || to > MAX_LINES) {
      return { statusCode: 400, body: { string: { format: "to must be an integer from 0 to %d", values: [MAX_LINES] } } };
    }
    return { body: { stream: { contentType: "text/plain; charset=utf-8", stream: countStream(to) } } };
  }
  if (req.request.method === "GET" && path === "/file") {
    // a workspace file, passed on from the kernel chunk by chunk (the kernel's response body is a ReadableStream)
    const file = (query.path || [""])[0];
    try {
      const res = await kernelFile(file);
      return { body: { stream: { contentType: res.headers["Content-Type"] || "application/octet-stream",
        stream: res.body } } };
    } catch (e) {
      return { statusCode: 404, body: { string: { format: "%s", values: [String(e.message)] } } };
    }
  }
  return { statusCode: 404, body: { string: { format: "no route for %s", values: [path] } } };
};

// Reads at most maxBytes of a workspace file from the kernel as a stream; aborts the download once it has
// enough, or when timeoutMs pass first.
async function head(path, maxBytes = 1024, timeoutMs = 10000) {
  if (typeof path !== "string" || !path.startsWith("/")) throw new TypeError("path must start with /");
  if (!Number.isInteger(maxBytes) || maxBytes < 0) throw new TypeError("maxBytes must be a non-negative integer");
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
  const chunks = [];
  let size = 0, chunkCount = 0, complete = false;
  try {
    const res = await kernelFile(path, controller.signal);
    const reader = res.body.getReader();
    while (size < maxBytes) {
      const { done, value } = await reader.read();
      if (done) { complete = true; break; }
      chunks.push(value);
      size += value.length;
      chunkCount++;
    }
    if (!complete) {
      controller.abort(new Error("read enough")); // stops the download: the kernel connection is closed
      await reader.cancel().catch(() => {});
    }
  } finally {
    clearTimeout(timer);
  }
  const bytes = Buffer.concat(chunks).subarray(0, maxBytes);
  return { size: bytes.length, chunks: chunkCount, complete, text: new TextDecoder().decode(bytes) };
}

rpc.bind("head", head, "Reads the start of a workspace file from the kernel as a stream, then aborts",
  "path: workspace path such as /data/storage/x.txt", "maxBytes: how many bytes (default 1024)",
  "timeoutMs: abort after this long (default 10000)");
rpc.bind("served", () => ({ ...served }), "How many count streams started, finished and were cancelled");
