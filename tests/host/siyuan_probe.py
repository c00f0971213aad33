"""A probe plugin that runs test snippets inside a real plugin VM (shared by the tests of tests/host)."""

from __future__ import annotations

from typing import Any

from kplug_testing import Host

PROBE = r"""
const results = {};
const rec = (name, p) => p.then((v) => { results[name] = { ok: true, v }; },
                                (e) => { results[name] = { ok: false, name: e && e.name, msg: e && e.message,
                                                           go: e instanceof GoError }; });
siyuan.rpc.bind("run", async (code) => {
  const fn = new Function("siyuan", "rec", "results", "return (async () => {" + code + "})()");
  return await fn(siyuan, rec, results);
});
siyuan.rpc.bind("results", () => results);
"""


async def run(host: Host, code: str, plugin: str = "probe") -> Any:
    """Run ``code`` (the body of an async function; ``rec(name, promise)`` records a settlement) in the plugin."""
    assert host.manager is not None
    return await host.manager.call(plugin, "run", [code])


async def started(host: Host, **config: Any) -> Host:
    host.plugin("probe", PROBE, {"displayName": {"default": "Probe", "fr": "Sonde"}, "version": "2.3.4"})
    await host.start(**config)
    return host
