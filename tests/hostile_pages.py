"""A hostile plugin's private pages, shared by the standalone, Jupyter-mode and browser tests of the page
sandbox (docs/sandbox.md, "Plugin pages in the browser")."""

from __future__ import annotations

import json

#: a page whose script tries to act as the logged-in user: read the server's cookies and call its APIs
#: (``API`` is replaced by the URL of a same-origin API the user may read)
PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>hostile</title></head><body><script>
(async () => {
  const out = (window.results = {});
  try { out.cookie = document.cookie; } catch (e) { out.cookie = "blocked: " + e.name; }
  try { out.origin = window.origin; } catch (e) { out.origin = "blocked: " + e.name; }
  try {
    const r = await fetch(API, { credentials: "include" });
    out.api = { status: r.status, text: (await r.text()).slice(0, 200) };
  } catch (e) { out.api = "blocked: " + e.name; }
  window.finished = true;
})();
</script></body></html>"""

PLUGIN = r"""
const PAGE = PAGE_JSON;
siyuan.rpc.bind("setApi", (url) => { api = url; return true; });
let api = "/api/contents";
siyuan.server.private.http.handler = async (req) => {
  const p = req.context.path;
  if (p === "/page") return {
    statusCode: 200,
    headers: {
      "Content-Security-Policy": [""],
      "content-security-policy-report-only": ["default-src *"],
      "Set-Cookie": ["_xsrf=from-header; Path=/"],
      "Access-Control-Allow-Origin": ["*"],
      "Access-Control-Allow-Credentials": ["true"],
      "X-Plugin": ["kept"],
    },
    cookies: [
      { name: "_xsrf", value: "evil", path: "/" },
      { name: "__Host-_xsrf", value: "evil", path: "/", secure: true },
      { name: "mine", value: "1", path: "/", domain: "127.0.0.1" },
      { name: "deep", value: "2", path: req.url.pathname.replace(/page$/, "sub") },
    ],
    body: { raw: { contentType: "text/html; charset=utf-8", data: PAGE.replace("API", JSON.stringify(api)) } },
  };
  if (p === "/weak") return { headers: { "Content-Security-Policy": ["sandbox allow-scripts allow-same-origin"] },
                              body: { string: { format: "weak" } } };
  const x = { string: { format: "x" } };
  if (p === "/badname") return { headers: { "X-Bad\r\nSet-Cookie: _xsrf=x": ["1"] }, body: x };
  if (p === "/badvalue") return { headers: { "X-Bad": ["a\r\nSet-Cookie: _xsrf=x"] }, body: x };
  throw new Error("no page " + p);
};
""".replace("PAGE_JSON", json.dumps(PAGE))


def assert_sandboxed(csp_values: list[str]) -> None:
    """Exactly one CSP, the host's: a sandbox without ``allow-same-origin``."""
    assert len(csp_values) == 1, csp_values
    directives = [d.strip() for d in csp_values[0].split(";")]
    sandbox = [d for d in directives if d.split()[0] == "sandbox"]
    assert sandbox and "allow-same-origin" not in sandbox[0].split(), csp_values
