"""Every exception class kplug_lab defines derives from the one base, :class:`kplug_lab.errors.KplugError`."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import kplug_lab
from kplug_lab.errors import KplugError


def _defined_exceptions() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(kplug_lab.__path__, "kplug_lab."):
        if info.name.endswith(("hatch_hook", "__main__")):
            continue  # the build hook needs hatchling (build time only); a __main__ runs its command
        try:
            module = importlib.import_module(info.name)
        except ImportError as exc:  # an optional extra that is not installed here
            pytest.skip(f"cannot import {info.name}: {exc}")
        for name, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == info.name:
                found[f"{info.name}.{name}"] = value
    return found


def test_every_exception_kplug_lab_defines_derives_from_kplug_error() -> None:
    defined = _defined_exceptions()
    assert "kplug_lab.errors.HostOpError" in defined and "kplug_lab.client._exceptions.TransportError" in defined
    outside = sorted(name for name, cls in defined.items() if not issubclass(cls, KplugError))
    assert outside == []


def test_host_operation_errors_are_caught_as_one_group() -> None:
    from kplug_lab.errors import DurableOpError, EventStreamError, HostOpError, PortError, SocketError, StorageError

    for cls in (StorageError, DurableOpError, EventStreamError, SocketError, PortError):
        assert issubclass(cls, HostOpError)
