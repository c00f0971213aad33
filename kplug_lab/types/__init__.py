"""Type declarations for plugin authors: ``kernel.d.ts`` describes every global a ``kernel.js`` sees in kplug_lab
(SiYuan's ``siyuan`` API and kplug_lab's own, the latter tagged ``@kplugOnly``). ``python -m kplug_lab.types``
prints its path, for a plugin project's ``tsconfig.json``."""

from __future__ import annotations

from pathlib import Path

__all__ = ["KERNEL_DTS"]

#: the declaration file shipped with the package
KERNEL_DTS = Path(__file__).with_name("kernel.d.ts")
