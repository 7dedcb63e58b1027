"""Headless Chromium driven over the DevTools protocol, for the dashboard's browser test.

The websocket client is aiohttp's (already installed with faust and the simulator); its loop
runs in a thread so tests call ``page.evaluate(...)`` synchronously. Console messages,
uncaught exceptions and failed requests are collected in ``page.errors``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def chromium_binary() -> str | None:
    for name in ("/usr/bin/chromium", *CANDIDATES):
        found = shutil.which(name)
        if found:
            return found
    return None


class Page:
    """One tab: ``call`` a DevTools method, ``evaluate`` JavaScript, ``screenshot``."""

    def __init__(self, ws_url: str) -> None:
        self.errors: list[str] = []
        self.console: list[str] = []
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._run(self._connect(ws_url))
        for domain in ("Runtime", "Log", "Page", "Network"):
            self.call(f"{domain}.enable")

    def _run(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _connect(self, ws_url: str) -> None:
        self._session = aiohttp.ClientSession()
        self._ws = await self._session.ws_connect(ws_url, max_msg_size=64 * 1024 * 1024)
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self._pending:
                self._pending.pop(data["id"]).set_result(data)
            else:
                self._event(data.get("method", ""), data.get("params", {}))

    def _event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            self.console.append(f"{params['type']}: {text}")
            if params["type"] in ("error", "assert"):
                self.errors.append(f"console.{params['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            self.errors.append(f"exception: {text}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            self.errors.append(f"log: {entry.get('text')} {entry.get('url', '')}")
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            self.errors.append(f"request failed: {params.get('errorText')}")

    async def _call(self, method: str, params: dict[str, Any]) -> Any:
        ident = next(self._ids)
        future: asyncio.Future[Any] = self._loop.create_future()
        self._pending[ident] = future
        await self._ws.send_str(json.dumps({"id": ident, "method": method, "params": params}))
        reply = await future
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def call(self, method: str, **params: Any) -> Any:
        return self._run(self._call(method, params))

    def navigate(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'", "the page to load", 30)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"evaluate failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, what: str, deadline: float = 60) -> Any:
        end = time.monotonic() + deadline
        last: Any = None
        while time.monotonic() < end:
            last = self.evaluate(expression)
            if last:
                return last
            time.sleep(0.5)  # polling interval of a condition with a deadline
        raise AssertionError(f"timed out waiting for {what}; last: {last!r}")

    def screenshot(self, path: Path) -> Path:
        """The page down to its end (open the browser tall enough that it needs no scroll
        bar: capturing beyond the viewport relays the page out mid-capture)."""
        width, height = self.evaluate(
            "[document.documentElement.clientWidth,"
            " Math.ceil(document.body.getBoundingClientRect().bottom)]"
        )
        clip = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
        data = self.call(
            "Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=True
        )
        path.write_bytes(base64.b64decode(data["data"]))
        return path

    def close(self) -> None:
        async def _close() -> None:
            await self._ws.close()
            await self._session.close()

        with contextlib.suppress(Exception):
            self._run(_close(), timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


class Chromium:
    """``with Chromium(profile_dir) as browser: page = browser.page()``; the browser binds a
    free DevTools port (``--remote-debugging-port=0``) and is killed on exit."""

    def __init__(self, profile: Path, width: int = 1280, height: int = 1500) -> None:
        binary = chromium_binary()
        if binary is None:
            raise RuntimeError("no chromium on PATH (Debian package `chromium`)")
        profile.mkdir(parents=True, exist_ok=True)
        (profile / "DevToolsActivePort").unlink(missing_ok=True)  # a previous browser's port
        self.profile = profile
        self.proc = subprocess.Popen(
            [
                binary,
                "--headless=new",
                "--no-sandbox",  # CI containers run as root
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.port = self._port(profile / "DevToolsActivePort")
        self._pages: list[Page] = []

    def _port(self, marker: Path, deadline: float = 60) -> int:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode}")
            with contextlib.suppress(OSError, ValueError, IndexError):
                return int(marker.read_text().splitlines()[0])
            time.sleep(0.2)  # polling interval of a condition with a deadline
        raise RuntimeError("chromium did not open its DevTools port within 60 s")

    def page(self) -> Page:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=10) as r:
            targets = json.load(r)
        target = next(t for t in targets if t.get("type") == "page")
        page = Page(target["webSocketDebuggerUrl"])
        self._pages.append(page)
        return page

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        for page in self._pages:
            page.close()
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(15)
