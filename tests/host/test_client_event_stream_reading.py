"""A plugin's ``siyuan.client.event`` reads the kernel's stream as the WHATWG standard does (spec §3.7): a field
the standard ignores never ends the subscription."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kplug_testing import Host, loopback_app, wait_for
from tornado import web

from kplug_lab.host.runtime.api import PluginState

PLUGIN = """
siyuan.rpc.bind("collect", async (path) => {
  const events = [];
  const es = await siyuan.client.event(path);
  return await new Promise((resolve) => {
    es.onmessage = (e) => events.push({ data: e.data, id: e.lastEventId });
    es.onerror = (e) => events.push({ error: e.error.message });
    es.onclose = () => resolve(events);
  });
});
"""


class _Odd(web.RequestHandler):
    """Retries in digits that are not ASCII, a data line holding line breaks that only ``str.splitlines`` knows,
    and a CR LF split across two writes; then a clean end."""

    async def get(self) -> None:
        self.set_header("Content-Type", "text/event-stream")
        self.write("retry: \u00b2\ndata: after superscript\n\n")
        await self.flush()
        self.write("retry: \u0663\u0660\u0660\nid: 1\ndata: after arabic-indic\n\n")
        await self.flush()
        self.write("data: a\u2028b\x1cc\r")
        await self.flush()
        self.write("\n\r\n")
        await self.flush()


@pytest.fixture
async def kernel() -> AsyncIterator[str]:
    async with loopback_app([(r"/odd", _Odd)]) as url:
        yield url


async def test_a_retry_in_unicode_digits_is_ignored_and_every_event_still_arrives(host: Host, kernel: str) -> None:
    host.plugin("sub", textwrap.dedent(PLUGIN))
    manager = await host.start(siyuan_url=kernel, siyuan_token="tok")
    await wait_for(lambda: host.state("sub") == PluginState.RUNNING, what="sub running")
    events: list[Any] = await manager.call("sub", "collect", ["/odd"])
    assert events == [
        {"data": "after superscript", "id": ""},
        {"data": "after arabic-indic", "id": "1"},
        {"data": "a\u2028b\x1cc", "id": "1"},
    ]
