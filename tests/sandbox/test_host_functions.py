"""Host functions: Python callables that scripts call as globals, sync or returning a Promise."""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any

import pytest

from kplug_lab.errors import SandboxError
from kplug_lab.sandbox import VM


def test_a_sync_host_function_returns_its_value_to_js(vm: VM) -> None:
    calls: list[tuple[Any, ...]] = []

    def add(a: Any, b: Any) -> Any:
        calls.append((a, b))
        return a + b

    vm.register("add", add)
    assert vm.eval("add(2, 3)") == 5
    assert vm.eval("add('a', 'b')") == "ab"
    assert vm.eval("add([1], [2]).length") == 2
    assert calls == [(2, 3), ("a", "b"), ([1], [2])]


def test_a_raising_host_function_becomes_a_js_error_with_its_message_and_the_vm_keeps_working(vm: VM) -> None:
    class Refused(Exception):
        pass

    def fail(msg: str) -> None:
        raise RuntimeError(msg)

    def fail_silently() -> None:
        raise Refused()

    vm.register("fail", fail)
    vm.register("failSilently", fail_silently)
    vm.register("add", lambda a, b: a + b)
    caught = vm.eval("try { fail('disk is full'); } catch (e) { [e instanceof Error, e.name, e.message] }")
    assert caught == [True, "Error", "disk is full"]
    assert vm.eval("try { failSilently(); } catch (e) { e.message }") == "Refused"
    for _ in range(200):  # nothing leaks or stays half-done across many failures
        vm.eval("try { fail('again'); } catch (e) {}")
    assert vm.eval("add(40, 2)") == 42
    assert vm.crashed is None


def test_an_uncaught_host_error_reaches_python_as_a_js_error(vm: VM) -> None:
    vm.register("fail", lambda: 1 / 0)
    vm.eval("function callsFail() { return fail(); }")
    with pytest.raises(SandboxError, match="division by zero") as info:
        vm.call("callsFail")
    assert "callsFail" in info.value.stack  # type: ignore[attr-defined]
    assert vm.eval("1 + 1") == 2


def test_a_host_function_returning_what_json_cannot_carry_throws_in_js(vm: VM) -> None:
    vm.register("badResult", lambda: {1, 2})
    message = vm.eval("try { badResult(); } catch (e) { e.message }")
    assert "cannot be passed to JavaScript" in message and "set" in message


async def test_js_awaits_the_value_of_a_python_coroutine(vm: VM) -> None:
    async def slow_double(x: int) -> int:
        await asyncio.sleep(0.01)
        return x * 2

    vm.register("slowDouble", slow_double, is_async=True)
    vm.eval("async function f(x) { const [a, b] = await Promise.all([slowDouble(x), slowDouble(1)]); return a + b; }")
    assert await vm.acall("f", 20) == 42


async def test_a_raising_coroutine_rejects_with_an_error_of_its_message_and_the_vm_keeps_working(vm: VM) -> None:
    async def broken() -> None:
        await asyncio.sleep(0)
        raise ValueError("async failure")

    vm.register("broken", broken, is_async=True)
    vm.eval("async function g() { try { await broken(); } catch (e) { return [e instanceof Error, e.message]; } }")
    assert await vm.acall("g") == [True, "async failure"]
    vm.eval("async function h() { return await broken(); }")
    with pytest.raises(SandboxError, match="async failure"):
        await vm.acall("h")
    assert vm.eval("1 + 1") == 2


async def test_an_async_host_function_may_return_a_concurrent_future(vm: VM) -> None:
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        vm.register("inPool", lambda x: pool.submit(lambda: x.upper()), is_async=True)
        vm.eval("async function up(s) { return await inPool(s); }")
        assert await vm.acall("up", "abc") == "ABC"
    finally:
        pool.shutdown()


async def test_an_immediate_async_value_still_settles_after_the_current_job(vm: VM) -> None:
    vm.register("now", lambda: "value", is_async=True)
    vm.eval("async function order() { const log = []; const p = now().then((v) => log.push(v)); log.push('sync');"
            " await p; return log; }")
    assert await vm.acall("order") == ["sync", "value"]


def test_the_owner_can_drive_async_calls_itself(vm: VM) -> None:
    vm.register("later", lambda x: asyncio.sleep(0, x), is_async=True)
    vm.eval("globalThis.result = null; later(5).then((v) => { result = v * 2; })")
    pending = vm.take_pending()
    assert len(pending) == 1
    [(promise_id, awaitable)] = pending.items()
    assert asyncio.run(awaitable) == 5
    vm.settle(promise_id, 5)
    assert vm.eval("result") == 10
    with pytest.raises(SandboxError, match="no pending host call"):
        vm.settle(promise_id, 5)


def test_a_pending_promise_is_not_mistaken_for_a_result(vm: VM) -> None:
    vm.register("never", concurrent.futures.Future, is_async=True)
    vm.eval("async function waits() { return await never(); }")
    with pytest.raises(SandboxError, match="still pending"):
        vm.call("waits")
    for awaitable in vm.take_pending().values():
        awaitable.cancel()
