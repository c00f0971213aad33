"""kplug_lab: a sandboxed, SiYuan-compatible host for kernel plugins, with a Jupyter workbench.

The package is layered; data flows down and nothing imports upward::

    notebook/   %kplug magics, ipywidgets inspector (runs in ipykernel, talks JSON-RPC to the server)
    server/     jupyter ExtensionApp and standalone ``kplug serve``
    rpc/        JSON-RPC 2.0 over HTTP and WebSocket (tornado handlers, dispatch, auth)
    host/       plugin manager, lifecycle, the ``siyuan`` API as host capabilities
    sandbox/    QuickJS-NG compiled to wasm, run by wasmtime, one VM per plugin, with limits

``client`` (a JSON-RPC client) and ``errors`` (the one error hierarchy) are shared by all layers.
"""

__version__ = "0.1.0"


def _jupyter_server_extension_points() -> list[dict[str, object]]:
    """jupyter_server's entry point; imports jupyter_server only when the server asks."""
    from .server.extension import KplugLabApp

    return [{"module": "kplug_lab.server.extension", "app": KplugLabApp}]


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext kplug_lab``: registers the ``%kplug`` magics (imports IPython only when asked)."""
    from .notebook import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: object) -> None:
    from .notebook import unload_ipython_extension as unload

    unload(ipython)
