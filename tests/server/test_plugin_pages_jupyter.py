"""A plugin's private pages in Jupyter mode, where the user is logged in by cookie: a hostile page gets the
host's sandbox CSP and cannot set the server's cookies, and in a real browser (headless Chromium) its script
cannot read a same-origin Jupyter API as the user (docs/sandbox.md, "Plugin pages in the browser").

pytest-jupyter's fixtures run their own asyncio loop: these tests are plain functions that drive it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hostile_pages import PLUGIN, assert_sandboxed
from jupyter_server.utils import url_path_join
from kplug_testing import CHROMIUM, CHROMIUM_ARGS, require_chromium, write_plugin
from pytest_jupyter.jupyter_server import *  # noqa: F403  (pytest-jupyter's server fixtures, for this module only)

from kplug_lab.server.extension import KplugLabApp

T = TypeVar("T")
ANON = {"Authorization": ""}


@pytest.fixture(autouse=True)
def _strict_server_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTER_SERVER_ALLOW_UNAUTHENTICATED_ACCESS", "false")


@pytest.fixture
def jp_server_config(tmp_path: Path) -> dict[str, Any]:
    root = tmp_path / "kplug-plugins"
    write_plugin(root, "evil", PLUGIN)
    return {
        "ServerApp": {"jpserver_extensions": {"kplug_lab": True, "jupyter_server_terminals": False}},
        "KplugLabApp": {"plugins_dir": str(root), "data_dir": str(tmp_path / "kplug-data"), "hot_reload": False},
    }


@pytest.fixture
def run(jp_asyncio_loop: Any) -> Callable[[Awaitable[T]], T]:
    return jp_asyncio_loop.run_until_complete  # type: ignore[no-any-return]


@pytest.fixture
def fetch(jp_serverapp: Any, jp_fetch: Any, run: Callable[[Awaitable[Any]], Any]) -> Iterator[Callable[..., Any]]:
    app = jp_serverapp.extension_manager.extension_points["kplug_lab"].app
    assert isinstance(app, KplugLabApp)
    run(app.start_extension())

    def fetch_(path: str, **kwargs: Any) -> Any:
        kwargs.setdefault("raise_error", False)
        return run(jp_fetch(*path.split("/"), **kwargs))

    yield fetch_
    run(app.stop_extension())


def _cookies(response: Any) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.get_list("Set-Cookie"):
        jar.load(header)
    return {k: v.value for k, v in jar.items()}


@pytest.fixture
def login(fetch: Callable[..., Any], jp_serverapp: Any) -> dict[str, str]:
    """A browser session's cookies: the login page's XSRF cookie, then a password login with the server token."""
    xsrf = _cookies(fetch("login", headers=ANON))["_xsrf"]
    r = fetch("login", method="POST", headers={**ANON, "Cookie": f"_xsrf={xsrf}"}, follow_redirects=False,
              body=f"password={jp_serverapp.identity_provider.token}&_xsrf={xsrf}")
    assert r.code == 302, r.code
    return {**_cookies(r), "_xsrf": xsrf}


def test_a_hostile_page_served_to_a_logged_in_user_is_sandboxed_and_sets_no_server_cookie(
        fetch: Callable[..., Any], login: dict[str, str], jp_base_url: str) -> None:
    cookie = "; ".join(f"{k}={v}" for k, v in login.items())
    r = fetch("plugin/private/evil/page", headers={**ANON, "Cookie": cookie})
    assert r.code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert_sandboxed(r.headers.get_list("Content-Security-Policy"))
    assert "Content-Security-Policy-Report-Only" not in r.headers
    assert "Access-Control-Allow-Origin" not in r.headers
    set_cookies = r.headers.get_list("Set-Cookie")
    assert not [c for c in set_cookies if "_xsrf" in c or "username-" in c], set_cookies
    scope = url_path_join(jp_base_url, "plugin/private/evil/")
    assert f"mine=1; Path={scope}" in set_cookies
    r = fetch("plugin/private/evil/weak", headers={**ANON, "Cookie": cookie})
    assert_sandboxed(r.headers.get_list("Content-Security-Policy"))


def test_in_chromium_the_page_script_cannot_read_the_jupyter_api_as_the_user(
        fetch: Callable[..., Any], login: dict[str, str], jp_http_port: int, jp_base_url: str,
        run: Callable[[Awaitable[Any]], Any]) -> None:
    require_chromium()
    from playwright.async_api import async_playwright

    origin = f"http://127.0.0.1:{jp_http_port}"
    api = url_path_join(jp_base_url, "api/contents")

    async def drive() -> tuple[int, dict[str, Any]]:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                context = await browser.new_context()
                await context.add_cookies([{"name": k, "value": v, "url": origin} for k, v in login.items()])
                page = await context.new_page()
                direct = await page.goto(origin + api)  # the session works: the user may read this API
                assert direct is not None
                await page.goto(origin + url_path_join(jp_base_url, "plugin/private/evil/page"))
                await page.wait_for_function("window.finished === true", timeout=30_000)
                return direct.status, await page.evaluate("window.results")
            finally:
                await browser.close()

    fetch("api/plugin/rpc/evil", method="POST", headers={"Content-Type": "application/json"},
          body=f'{{"jsonrpc":"2.0","id":1,"method":"setApi","params":["{api}"]}}')
    direct_status, results = run(drive())
    assert direct_status == 200
    assert results["cookie"].startswith("blocked"), results
    assert results["origin"] == "null", results
    assert results["api"] == "blocked: TypeError", results  # a cross-origin read without CORS: refused
