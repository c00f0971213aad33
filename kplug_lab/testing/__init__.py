"""Test doubles for plugin authors and for kplug_lab's own tests (see docs/testing.md).

* ``FakeSiYuan``: a SiYuan kernel stand-in (HTTP API, SQLite ``blocks`` table, ``/ws`` push channel) that
  ``siyuan.client`` can be pointed at with ``HostConfig(siyuan_url=..., siyuan_token=...)``.
* ``RecordingEndpoint``: a loopback HTTP service that records requests and can be told to fail.
"""

from .endpoint import ReceivedRequest, RecordingEndpoint
from .fake_siyuan import FakeSiYuan, RecordedRequest

__all__ = ["FakeSiYuan", "ReceivedRequest", "RecordedRequest", "RecordingEndpoint"]
