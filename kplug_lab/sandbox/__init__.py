"""The sandbox: QuickJS-NG compiled to WebAssembly, run by wasmtime, one VM per plugin, with limits.

It knows nothing about SiYuan. See :class:`VM`.
"""

from ..errors import CPUTimeout, JSError, OutOfMemory, SandboxError, ValueConversionError, VMCrashed
from ._engine import on_wasm_thread
from ._vm import VM

__all__ = ["VM", "CPUTimeout", "JSError", "OutOfMemory", "SandboxError", "VMCrashed", "ValueConversionError",
           "on_wasm_thread"]
