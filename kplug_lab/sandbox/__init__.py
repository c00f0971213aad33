"""The sandbox: QuickJS-NG compiled to WebAssembly, run by wasmtime, one VM per plugin, with limits.

It knows nothing about SiYuan. See :class:`VM`.
"""

from ..errors import CPUTimeout, JSError, OutOfMemory, SandboxError, ValueConversionError, VMCrashed
from ._bytecode import BytecodeCache
from ._engine import engine_build, on_wasm_thread
from ._vm import MAX_MEMORY_LIMIT, MAX_STACK_LIMIT, VM, check_limits, live_vm_count

__all__ = ["MAX_MEMORY_LIMIT", "MAX_STACK_LIMIT", "VM", "BytecodeCache", "CPUTimeout", "JSError", "OutOfMemory",
           "SandboxError", "VMCrashed", "ValueConversionError", "check_limits", "engine_build", "live_vm_count",
           "on_wasm_thread"]
