"""Headless Chromium driven over the DevTools protocol on ``--remote-debugging-pipe``.

The browser reads commands from its fd 3 and writes answers to its fd 4, NUL-framed JSON: no
websocket library, no browser download, no port to collide on. The approach is the one of the
real-browser test in ``tests/web/test_web.py``, with what a product needs on top: a deadline on
every read (a hung browser must not hang a send), a launcher that does not use ``preexec_fn``
(not safe when the caller has threads, e.g. the web app), and no network at all (DNS mapped to
nothing and http(s) blocked), so rendering an email never fetches its open pixel or images,
and with page scripts off, as in every mail client.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DEBIAN_PACKAGE = "chromium"

#: Flags that work headless in containers and CI (no sandbox, no GPU, nothing phoning home).
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-extensions",
    "--disable-sync",
    "--disable-default-apps",
    "--hide-scrollbars",
    "--mute-audio",
    # Nothing resolves, so nothing is fetched: a preflight never "opens" its own email.
    "--host-resolver-rules=MAP * ~NOTFOUND",
)

# Sets fds 3 and 4 for the browser, then becomes the browser. A tiny Python trampoline rather
# than ``preexec_fn``: pass_fds keeps our two pipe ends open, dup2 moves them into place.
_TRAMPOLINE = (
    "import fcntl, os, sys\n"
    "r = fcntl.fcntl(int(sys.argv[1]), fcntl.F_DUPFD, 10)\n"
    "w = fcntl.fcntl(int(sys.argv[2]), fcntl.F_DUPFD, 10)\n"
    "os.dup2(r, 3); os.dup2(w, 4); os.close(r); os.close(w)\n"
    "os.execv(sys.argv[3], sys.argv[3:])\n"
)


class BrowserError(RuntimeError):
    """Chromium did not start, closed the pipe, refused a command or did not answer in time."""


def find_chromium() -> str | None:
    """Debian's ``chromium`` (or ``chromium-browser``/``google-chrome`` if that is what is there)."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


class Browser:
    """One headless browser with one page. Use as a context manager.

    ``call(method, **params)`` sends a DevTools command to the page and returns its result;
    ``evaluate(js)`` returns a JavaScript value; ``load_html(html)`` shows an HTML document.
    """

    def __init__(self, binary: str, *, timeout: float = 30.0, flags: tuple[str, ...] = FLAGS) -> None:
        self.timeout = timeout
        self._profile = tempfile.TemporaryDirectory(prefix="newsletter-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        from_browser_r, from_browser_w = os.pipe()
        try:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _TRAMPOLINE,
                    str(to_browser_r),
                    str(from_browser_w),
                    binary,
                    *flags,
                    f"--user-data-dir={self._profile.name}",
                    "--remote-debugging-pipe",
                    "about:blank",
                ],
                pass_fds=(to_browser_r, from_browser_w),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        except OSError as exc:
            for fd in (to_browser_r, self._to_browser, from_browser_r, from_browser_w):
                os.close(fd)
            self._profile.cleanup()
            raise BrowserError(f"could not start {binary}: {exc}") from None
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._from_browser = from_browser_r
        self._buffer = b""
        self._next_id = 0
        self._session: str | None = None
        self._page_file: Path | None = None

    # --- protocol ------------------------------------------------------------------------

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrowserError(f"chromium did not answer within {self.timeout:.0f} s")
            ready, _, _ = select.select([self._from_browser], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise BrowserError("chromium closed the DevTools pipe (it exited or crashed)")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def call(self, method: str, *, browser_level: bool = False, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if self._session and not browser_level:
            message["sessionId"] = self._session
        try:
            os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        except OSError as exc:
            raise BrowserError(f"chromium is gone ({exc})") from None
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error'].get('message', reply['error'])}")
                result: dict[str, Any] = reply.get("result", {})
                return result

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"page script failed: {text}")
        return result["result"].get("value")

    # --- pages ---------------------------------------------------------------------------

    def open_page(self, *, offline: bool = True) -> None:
        """Open the page every later call talks to: network blocked, page scripts off (no mail
        client runs them; our own ``Runtime.evaluate`` still works). ``offline=False`` keeps
        both, for browsing a web page (the web app's tests, against their own local server)."""
        target = self.call("Target.createTarget", browser_level=True, url="about:blank")["targetId"]
        self._session = self.call("Target.attachToTarget", browser_level=True, targetId=target, flatten=True)[
            "sessionId"
        ]
        if not offline:
            return
        self.call("Network.enable")
        self.call("Network.setBlockedURLs", urls=["http:*", "https:*", "ws:*", "wss:*", "ftp:*"])
        self.call("Emulation.setScrollbarsHidden", hidden=True)
        self.call("Emulation.setScriptExecutionDisabled", value=True)

    def load_html(self, html: str, *, wait: float | None = None) -> None:
        """Show ``html`` (from a file in the private profile folder, so relative nothing works)."""
        if self._session is None:
            self.open_page()
        self._page_file = Path(self._profile.name) / "message.html"
        self._page_file.write_text(html, encoding="utf-8")
        url = self._page_file.as_uri()
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + (wait or self.timeout)
        while not (self.evaluate("location.href") == url and self.evaluate("document.readyState") == "complete"):
            if time.monotonic() > deadline:
                raise BrowserError("the message did not finish loading")
            time.sleep(0.05)

    def set_viewport(self, width: int, height: int) -> None:
        if self._session is None:
            self.open_page()
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def screenshot(self, width: int) -> bytes:
        """A PNG of the whole page at ``width`` CSS pixels."""
        import base64

        height = int(self.evaluate("Math.ceil(document.scrollingElement.scrollHeight)") or 1)
        shot = self.call(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": width, "height": min(height, 16000), "scale": 1},
        )
        return base64.b64decode(shot["data"])

    # --- lifetime ------------------------------------------------------------------------

    def close(self) -> None:
        try:
            os.close(self._to_browser)  # the browser exits when its command pipe closes
        except OSError:
            pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        try:
            os.close(self._from_browser)
        except OSError:
            pass
        self._profile.cleanup()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
