"""Headless Chromium driven over the DevTools protocol on a pipe: open a page, collect console errors and
network requests, evaluate script, take a screenshot. No websocket and no extra package: Chromium's
--remote-debugging-pipe reads JSON commands on fd 3 and writes replies on fd 4, each ended by a NUL byte.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

EXECUTABLES = ("chromium", "chromium-browser", "google-chrome")
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")


class _References(HTMLParser):
    """Collects every URL a page's markup would load or link: tag attributes and CSS url(...) in styles."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_style = tag == "style"
        for name, value in attrs:
            if value and (name in ("src", "href", "srcset", "poster", "action", "data", "background")):
                self.urls.append(value)
            if value and name == "style":
                self.urls += re.findall(r"url\(([^)]*)\)", value)

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False if tag == "style" else self._in_style

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.urls += re.findall(r"url\(([^)]*)\)", data) + re.findall(r"@import\s+['\"]([^'\"]+)", data)


def external_references(page: str) -> list[str]:
    """URLs in the page's markup and styles that point outside the file (http, https or protocol-relative)."""
    parser = _References()
    parser.feed(page)
    return [u for u in parser.urls if re.match(r"\s*['\"]?\s*(https?:)?//", u, flags=re.I)]


def find_chromium() -> str | None:
    return next((path for name in EXECUTABLES if (path := shutil.which(name))), None)


class BrowserError(RuntimeError):
    pass


class Browser:
    """One headless Chromium with one page; every event it sends is kept in `events`."""

    def __init__(self, executable: str, profile_dir: Path, *, width: int = 1280, height: int = 900) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
                "--host-resolver-rules=MAP * ~NOTFOUND",  # nothing outside this machine resolves
                "--remote-debugging-pipe", f"--user-data-dir={profile_dir}", f"--window-size={width},{height}",
                "about:blank"]
        # Chromium's ends go to fds 3 and 4 in the child; they are moved above 9 first so dup2 cannot clobber one.
        chrome_in, chrome_out = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_chrome_r, from_chrome_w))
        for fd in (to_chrome_r, from_chrome_w):
            os.close(fd)

        def place_pipes() -> None:
            os.dup2(chrome_in, 3)
            os.dup2(chrome_out, 4)

        # close_fds=False: our other descriptors are non-inheritable anyway (PEP 446); 3 and 4 must survive.
        self.proc = subprocess.Popen([executable, *args], preexec_fn=place_pipes, close_fds=False,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(chrome_in)
        os.close(chrome_out)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=True)

    # -- protocol ---------------------------------------------------------------------------------------

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise BrowserError(f"chromium closed the pipe (exit code {self.proc.poll()})")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return dict(json.loads(message))

    def call(self, method: str, params: dict[str, Any] | None = None, *, session: bool = False) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))
            if "method" in reply:
                self.events.append(reply)

    def wait_for(self, event: str) -> dict[str, Any]:
        for seen in self.events:
            if seen["method"] == event:
                return seen
        while True:
            reply = self._read()
            if "method" in reply:
                self.events.append(reply)
                if reply["method"] == event:
                    return reply

    # -- page -------------------------------------------------------------------------------------------

    def open(self, path: Path) -> None:
        self.events.clear()
        self.call("Page.navigate", {"url": path.resolve().as_uri()}, session=True)
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (a promise is awaited)."""
        out = self.call("Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True},
                        session=True)
        if "exceptionDetails" in out:
            raise BrowserError(f"script failed: {out['exceptionDetails']}")
        return out["result"].get("value")

    def console_errors(self) -> list[str]:
        """Uncaught exceptions, console.error/assert calls and browser log errors (failed loads among them)."""
        errors = []
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Runtime.exceptionThrown":
                details = p.get("exceptionDetails", {})
                errors.append(f"{details.get('text', '')} {details.get('exception', {}).get('description', '')}")
            elif e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
            elif e["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                errors.append(f"{p['entry'].get('text')} {p['entry'].get('url', '')}")
        return errors

    def requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e["method"] == "Network.requestWillBeSent"]

    def screenshot(self, path: Path, *, max_height: int = 16000) -> Path:
        size = self.call("Page.getLayoutMetrics", session=True)["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], max_height), "scale": 1}
        data = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip},
                         session=True)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (BrowserError, OSError):
            pass
        for fd in (self._to_chrome, self._from_chrome):
            os.close(fd)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
