"""The ``request.port`` contract under its old name: ``rpc/private.py`` still imports it from here. New code
imports :mod:`kplug_lab.host.ops.private_ports`."""

from .ops.private_ports import Deliver, EventStreamPort, PortError, WebSocketPort

__all__ = ["Deliver", "EventStreamPort", "PortError", "WebSocketPort"]
