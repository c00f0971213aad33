"""Fixtures for the sandbox tests: every behaviour is checked on both boundary paths."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kplug_lab.sandbox import VM, on_wasm_thread


@pytest.fixture(params=[True, False], ids=["fast", "plain"])
def fast(request: pytest.FixtureRequest) -> bool:
    """True: exports called through wasmtime's C API; False: the plain wasmtime-py fallback."""
    return bool(request.param)


@pytest.fixture
def vm(fast: bool) -> Iterator[VM]:
    v = VM(fast=fast)
    yield v
    v.close()


@pytest.fixture
def wasm_thread() -> Callable[[Callable[[], Any]], Any]:
    """Runs a function on a thread of its own with a big stack, named ``kplug-test``, as the host runs a plugin."""
    return lambda fn: on_wasm_thread(fn, name="kplug-test")
