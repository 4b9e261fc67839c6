"""Drive Debian's chromium headless through the DevTools protocol over a pipe (no extra packages).

`open_page(url)` loads a page with every network feature of the browser switched off, in a
window of the given width, and returns what a test needs: the requests the page made, failed
requests, console errors and uncaught exceptions, the results of JavaScript expressions run
after loading, and a screenshot (PNG bytes). A browser that dies or does not answer its first
command within STARTUP_TIMEOUT seconds raises BrowserError at once, instead of a test hanging.
"""

import base64
import contextlib
import fcntl
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    "--hide-scrollbars",
    "--window-size=1280,1600",
    "--remote-debugging-pipe",
]


STARTUP_TIMEOUT = 20  # seconds for the browser to answer its first command


class BrowserError(RuntimeError):
    """The browser exited or did not answer."""


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class PageLoad:
    requests: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    evaluations: dict = field(default_factory=dict)
    screenshot: bytes = b""


class DevToolsPipe:
    """Chromium started with --remote-debugging-pipe: commands on its fd 3, answers on its fd 4."""

    def __init__(self, binary: str, profile_dir: str):
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()

        def wire_fds():  # runs in the child before exec: put the pipe ends on fds 3 and 4
            high_read = fcntl.fcntl(to_browser_read, fcntl.F_DUPFD, 10)
            high_write = fcntl.fcntl(from_browser_write, fcntl.F_DUPFD, 10)
            os.dup2(high_read, 3)
            os.dup2(high_write, 4)

        self.process = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(3, 4, to_browser_read, from_browser_write),
            preexec_fn=wire_fds,
        )
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._next_id = 0
        self._messages: queue.Queue = queue.Queue()
        self.events: list[dict] = []
        threading.Thread(target=self._read_messages, daemon=True).start()

    def _read_messages(self) -> None:
        buffer = b""
        while chunk := os.read(self._from_browser, 1 << 16):
            buffer += chunk
            *complete, buffer = buffer.split(b"\0")
            for raw in complete:
                self._messages.put(json.loads(raw))

    def send(
        self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30
    ) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        try:
            os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        except BrokenPipeError:
            self.process.wait(timeout=10)
            raise BrowserError(f"chromium exited (code {self.process.returncode}) before {method}") from None
        deadline = time.monotonic() + timeout
        while True:
            reply = self._next_message(method, deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def _next_message(self, waiting_for: str, deadline: float) -> dict:
        """The next message from the browser; BrowserError when it has exited or the deadline passed
        (checked every half second, so a crashed browser is noticed at once)."""
        while True:
            if self.process.poll() is not None and self._messages.empty():
                raise BrowserError(
                    f"chromium exited (code {self.process.returncode}) while waiting for {waiting_for}"
                )
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"chromium did not answer {waiting_for} in time")
            try:
                return self._messages.get(timeout=min(0.5, left))
            except queue.Empty:
                continue

    def wait_for_event(self, method: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event.get("method") == method:
                    return event
            self.events.append(self._next_message(method, deadline))

    def drain(self, seconds: float) -> None:
        """Collect the events that arrive within `seconds` (late console messages, requests)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                self.events.append(self._messages.get(timeout=left))
            except queue.Empty:
                break

    def close(self, graceful: bool = True) -> None:
        """Ask the browser to close (graceful), else, or when it does not, kill it."""
        if graceful:
            # BrowserError (a RuntimeError) included: closing a dead browser
            with contextlib.suppress(RuntimeError, OSError):
                self.send("Browser.close", timeout=10)
        try:
            self.process.wait(timeout=10 if graceful else 0.1)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_browser)


def summarise_events(events: list[dict], load: PageLoad) -> None:
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Network.requestWillBeSent":
            load.requests.append(params["request"]["url"])
        elif method == "Network.loadingFailed":
            load.failed_requests.append(f"{params.get('errorText')} ({params.get('requestId')})")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            load.console_errors.append(
                " ".join(str(a.get("value", a.get("description"))) for a in params.get("args", []))
            )
        elif method == "Runtime.exceptionThrown":
            load.console_errors.append(params["exceptionDetails"].get("text", "exception"))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            load.console_errors.append(params["entry"].get("text", ""))


def open_page(
    url: str,
    evaluate: dict[str, str] | None = None,
    binary: str | None = None,
    width: int = 1280,
    height: int = 1600,
    startup_timeout: float = STARTUP_TIMEOUT,
) -> PageLoad:
    """Load url headless in a width x height window (CSS pixels, device scale 1); run each JavaScript
    expression of `evaluate` after load; screenshot."""
    load = PageLoad()
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        browser = DevToolsPipe(binary or chromium_path(), profile)
        answering = True
        try:
            target = browser.send("Target.createTarget", {"url": "about:blank"}, timeout=startup_timeout)[
                "targetId"
            ]
            session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
                "sessionId"
            ]
            for domain in ("Runtime", "Log", "Network", "Page"):
                browser.send(f"{domain}.enable", session=session)
            browser.send(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                session=session,
            )
            browser.send("Page.navigate", {"url": url}, session=session)
            browser.wait_for_event("Page.loadEventFired", timeout=60)
            for name, expression in (evaluate or {}).items():
                result = browser.send(
                    "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session
                )
                load.evaluations[name] = result.get("result", {}).get("value")
            browser.drain(0.5)
            shot = browser.send("Page.captureScreenshot", {"format": "png"}, session=session)
            load.screenshot = base64.b64decode(shot["data"])
            summarise_events(browser.events, load)
        except BrowserError:
            answering = False  # a dead or silent browser is killed, not asked to close
            raise
        finally:
            browser.close(graceful=answering)
    return load
