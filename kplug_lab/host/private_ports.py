"""The ``request.port`` contract under its old name: ``rpc/private.py`` still imports it from here. New code
imports :mod:`kplug_lab.host.runtime.api` (the port protocols) and :mod:`kplug_lab.errors` (``PortError``)."""

from ..errors import PortError
from .runtime.api import Deliver, EventStreamPort, WebSocketPort

__all__ = ["Deliver", "EventStreamPort", "PortError", "WebSocketPort"]
