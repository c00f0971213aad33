"""Fixtures for the sandbox tests: every behaviour is checked on both boundary paths."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kplug_lab.sandbox import VM
from kplug_lab.sandbox._engine import big_stack_thread


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
    return on_wasm_thread


def on_wasm_thread(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on a big-stack thread (as the plugin host does) and return its result or raise its error."""
    results: list[Any] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            results.append(fn())
        except BaseException as exc:
            errors.append(exc)

    thread = big_stack_thread(target, name="kplug-test")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return results[0]
