"""The notebook workbench: ``%kplug`` magics and the inspector widget, talking to a kplug_lab server through
:mod:`kplug_lab.client` (``%load_ext kplug_lab``). See docs/workbench.md."""

from __future__ import annotations

from typing import Any

__all__ = ["Inspector", "load_ipython_extension", "unload_ipython_extension"]


def __getattr__(name: str) -> Any:
    if name == "Inspector":  # imported on use: loading the magics should not import ipywidgets
        from ._inspector import Inspector

        return Inspector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    from ._magics import KplugMagics

    ipython.register_magics(KplugMagics)


def unload_ipython_extension(ipython: Any) -> None:
    magics = ipython.magics_manager.registry.get("KplugMagics")
    if magics is not None:
        magics.session.close()
