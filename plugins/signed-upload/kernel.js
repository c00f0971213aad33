// signed-upload: signs and verifies with crypto.subtle (ECDSA P-256), keeps its key pair as JWK in
// siyuan.storage, and uploads a signed file to the SiYuan kernel with a FormData (POST /api/file/putFile).
const { storage, client, rpc, logger } = siyuan;

const KEY_FILE = "keys.json";
const ALGORITHM = { name: "ECDSA", namedCurve: "P-256" };
const SIGNING = { name: "ECDSA", hash: "SHA-256" };
const FOLDER = "/data/storage/signed-upload/"; // where uploads land in the workspace

let keys = null; // { privateKey, publicKey, publicJwk }

const encoder = new TextEncoder();
const toHex = (buffer) => Buffer.from(new Uint8Array(buffer)).toString("hex");
const fromHex = (text) => {
  if (typeof text !== "string" || !/^([0-9a-f]{2})*$/i.test(text)) throw new TypeError("signature must be hex");
  return new Uint8Array(Buffer.from(text, "hex"));
};

async function loadOrCreateKeys() {
  let saved = null;
  try { saved = await (await storage.get(KEY_FILE)).json(); } catch (e) { saved = null; }
  if (saved === null) {
    const pair = await crypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"]);
    saved = {
      privateKey: await crypto.subtle.exportKey("jwk", pair.privateKey),
      publicKey: await crypto.subtle.exportKey("jwk", pair.publicKey),
    };
    await storage.put(KEY_FILE, JSON.stringify(saved));
    logger.info("signed-upload: generated a new P-256 key pair");
  }
  keys = {
    privateKey: await crypto.subtle.importKey("jwk", saved.privateKey, ALGORITHM, false, ["sign"]),
    publicKey: await crypto.subtle.importKey("jwk", saved.publicKey, ALGORITHM, true, ["verify"]),
    publicJwk: saved.publicKey,
  };
}

async function sign(text) {
  if (typeof text !== "string") throw new TypeError("text must be a string");
  return toHex(await crypto.subtle.sign(SIGNING, keys.privateKey, encoder.encode(text)));
}

async function verify(text, signature, publicJwk) {
  if (typeof text !== "string") throw new TypeError("text must be a string");
  const key = publicJwk
    ? await crypto.subtle.importKey("jwk", publicJwk, ALGORITHM, false, ["verify"])
    : keys.publicKey;
  return crypto.subtle.verify(SIGNING, key, fromHex(signature), encoder.encode(text));
}

function checkName(name) {
  if (typeof name !== "string" || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(name)) {
    throw new TypeError("name must be letters, digits, '.', '_' or '-' (at most 100)");
  }
  return name;
}

// POST /api/file/putFile: multipart fields `path`, `isDir`, `modTime` and the file part `file`.
async function putFile(path, blob, filename) {
  const form = new FormData();
  form.append("path", path);
  form.append("isDir", "false");
  form.append("modTime", String(Date.now()));
  form.append("file", blob, filename);
  const res = await client.fetch("/api/file/putFile", { method: "POST", body: form });
  const envelope = await res.json();
  if (!res.ok || envelope.code !== 0) throw new Error(`putFile ${path}: ${res.status} ${envelope.msg}`);
}

async function getFile(path) {
  const res = await client.fetch("/api/file/getFile", { method: "POST", body: JSON.stringify({ path }) });
  if (res.status !== 200) return null; // the kernel answers 202 with a JSON envelope when it cannot read the file
  return res.text();
}

async function upload(name, text) {
  checkName(name);
  const signature = await sign(text);
  await putFile(FOLDER + name, new Blob([text], { type: "text/plain" }), name);
  const sidecar = JSON.stringify({ signature, algorithm: "ECDSA P-256 SHA-256", publicKey: keys.publicJwk });
  await putFile(FOLDER + name + ".sig", new File([sidecar], name + ".sig", { type: "application/json" }),
    name + ".sig");
  logger.info(`signed-upload: uploaded ${name} (${encoder.encode(text).length} bytes)`);
  return { path: FOLDER + name, signature };
}

async function check(name) {
  checkName(name);
  const text = await getFile(FOLDER + name);
  const sidecar = await getFile(FOLDER + name + ".sig");
  if (text === null || sidecar === null) return { name, found: false, valid: false };
  const { signature, publicKey } = JSON.parse(sidecar);
  return { name, found: true, valid: await verify(text, signature, publicKey) };
}

rpc.bind("publicKey", () => keys.publicJwk, "The public key (JWK) that verifies this plugin's signatures");
rpc.bind("sign", sign, "Signs text; returns the ECDSA P-256/SHA-256 signature as hex", "text: string");
rpc.bind("verify", (text, signature, publicJwk) => verify(text, signature, publicJwk),
  "Checks a hex signature of text", "text: string", "signature: hex", "publicJwk: optional JWK, else this plugin's key");
rpc.bind("upload", upload, "Signs text and uploads it with a .sig file to data/storage/signed-upload/",
  "name: file name", "text: string");
rpc.bind("check", check, "Downloads an uploaded file and its .sig and verifies the signature", "name: file name");

siyuan.plugin.lifecycle.onload = async () => {
  await loadOrCreateKeys();
};
