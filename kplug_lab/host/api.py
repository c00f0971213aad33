"""The host contract under its old name: ``rpc/`` and the host's wire helpers (``host/calls.py``,
``host/route_answers.py``) still import it from here. New code imports :mod:`kplug_lab.host` (or
:mod:`kplug_lab.host.runtime.api`)."""

from .runtime.api import NO_PARAMS, HostAPI, LogRecord, MethodInfo, PluginInfo, PluginState, Unsubscribe

__all__ = ["NO_PARAMS", "HostAPI", "LogRecord", "MethodInfo", "PluginInfo", "PluginState", "Unsubscribe"]
