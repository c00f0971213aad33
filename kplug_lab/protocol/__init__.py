"""The wire as pure code: no sockets, no threads, no event loop, no tornado; data in, data out (like h11).

* :mod:`~kplug_lab.protocol.jsonrpc`: JSON-RPC 2.0 read and answered exactly as SiYuan does (spec §5.3/§5.4).
* :mod:`~kplug_lab.protocol.routes`: SiYuan's plugin route table (spec §5.1), written once, and its answers.
* :mod:`~kplug_lab.protocol.sse`: Server-Sent Events, encoded as SiYuan writes them and parsed as the WHATWG
  standard reads them.
* :mod:`~kplug_lab.protocol.private`: what a plugin's ``siyuan.server.private`` handler may answer (spec §3.8.2),
  checked and turned into a response to write, under the host's page policy.
* :mod:`~kplug_lab.protocol.pushes`: the main channel's ``updateKernelPluginState`` push (spec §2.7).

Whoever does the I/O drives these: ``rpc/`` (tornado) for the wire, and ``host/`` where it answers a plugin's own
``siyuan.client.fetch`` to a plugin route (``host/route_answers.py``, calls run by ``host/calls.py``) or reads
the kernel's event streams (``host/client_events.py``). Nothing here imports ``host/``, ``rpc/``, asyncio or
threading (``tests/protocol/test_protocol_is_pure.py``).
"""
