"""The chat page (examples/chat.html) in headless Chromium, driven by selenium.

Run by tests/browser.rs, which starts the HTTP example (alone, or under
examples/supervisor.rs) and sends it the signals this script asks for:

    python3 tests/browser.py URL SCENARIO

URL is the page, e.g. http://127.0.0.1:PORT/chat.html. Two browsers (two
Chromium processes, each with its own empty profile) open it: Ann and Bob.

SCENARIO:
  goodbye  Ann and Bob chat; the script asks for SIGTERM; both pages show
           the WebSocket's goodbye (close code 1001) and the event stream's
           goodbye event.
  restart  the same chat; the script asks for SIGHUP (the supervisor starts
           a new server, then stops the old one); both pages show the
           goodbye, reconnect by themselves, and chat again; then the script
           asks for SIGTERM and both pages show a second goodbye.

Stdout is line by line: "step: ..." progress, "signal NAME" when the test
must send signal NAME now (the script then watches the pages), and "done"
at the end. Exit status 0 only if every check passed; on a failure, what
each page showed goes to stderr. Every wait is bounded (WAIT seconds for a
page to show something), and so is the whole script (LIMIT seconds, then it
fails and closes the browsers).

Needs chromium and chromedriver (Debian's `chromium`, `chromium-driver`) and
Python's selenium; .ci/run installs them. Only 127.0.0.1 is used, and
Chromium is started with its background networking off.
"""

import shutil
import signal
import sys
import tempfile
import time

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

# How long a page may take to show what is expected (a loaded 2-core machine
# included; a reconnect takes 0.5 s for the WebSocket and 2 s for the event
# stream).
WAIT = 20
# The whole script.
LIMIT = 180
GOODBYE_1001 = "the server said goodbye (1001"
SSE_GOODBYE = "event stream: the server is shutting down"
JOINED = "connected to the chat"

# Chromium as root, headless, on a closed network: no sandbox (root), no GPU,
# no QUIC, and none of the connections it makes by itself (component
# updates, sync, field trials...), no proxy.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
    "--disable-dev-shm-usage",
]


def step(text):
    print("step: " + text, flush=True)


def program(name):
    path = shutil.which(name)
    if path is None:
        sys.exit(
            "browser.py: %s not found (Debian: apt-get install chromium "
            "chromium-driver; .ci/run installs them)" % name
        )
    return path


class Page:
    """One browser showing the chat page."""

    def __init__(self, name):
        self.name = name
        self.driver = None
        self.profile = tempfile.mkdtemp(prefix="graceful-server-chromium-")

    def open(self, url):
        """Starts the browser and loads `url`."""
        options = webdriver.ChromeOptions()
        # Both paths given: selenium does not run Selenium Manager, which
        # would look for (and download) a browser and a driver.
        options.binary_location = program("chromium")
        for flag in CHROMIUM_FLAGS + ["--user-data-dir=" + self.profile]:
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(
            service=Service(program("chromedriver")), options=options
        )
        self.driver.set_page_load_timeout(WAIT)
        self.driver.set_script_timeout(WAIT)
        self.driver.get(url)

    def lines(self):
        """The chat log: (class, text) of each line."""
        return self.driver.execute_script(
            "return Array.from(document.querySelectorAll('#log p'),"
            " p => [p.className, p.textContent]);"
        )

    def text(self, element_id):
        return self.driver.execute_script(
            "return document.getElementById(arguments[0]).textContent;", element_id
        )

    def count(self, kind, start):
        """How many lines of class `kind` start with `start`."""
        return sum(1 for k, t in self.lines() if k == kind and t.startswith(start))

    def wait(self, what, check):
        """Waits (at most WAIT seconds) until `check()` is true."""
        try:
            WebDriverWait(self.driver, WAIT, poll_frequency=0.1).until(
                lambda _: check()
            )
        except TimeoutException:
            raise AssertionError(
                "%s: not within %d s: %s" % (self.name, WAIT, what)
            ) from None

    def wait_connected(self, joins):
        """Waits until the page has joined the chat `joins` times in all and
        both its WebSocket and its event stream are connected."""
        self.wait(
            "joined the chat %d times" % joins,
            lambda: self.count("note", JOINED) >= joins,
        )
        self.wait("the chat connected", lambda: self.text("chat-state") == "connected")
        self.wait(
            "the event stream connected",
            lambda: self.text("events-state") == "connected",
        )

    def say(self, message):
        """Types `message` and presses Enter; the page clears the box once
        the message is sent on an open WebSocket."""
        box = self.driver.find_element(By.ID, "text")
        box.clear()
        box.send_keys(message)
        box.send_keys(Keys.ENTER)
        self.wait(
            "the message %r sent" % message,
            lambda: self.driver.execute_script(
                "return document.getElementById('text').value;"
            )
            == "",
        )

    def wait_heard(self, message):
        """Waits for `message` in the log, as the room broadcasts it
        ("ID: message")."""
        self.wait(
            "received %r" % message,
            lambda: any(
                k == "" and t.endswith(": " + message) for k, t in self.lines()
            ),
        )

    def wait_goodbyes(self, n):
        """Waits until the page has shown `n` goodbyes of each kind."""
        self.wait(
            "%d WebSocket goodbyes (close code 1001)" % n,
            lambda: self.count("goodbye", GOODBYE_1001) >= n,
        )
        self.wait(
            "%d event stream goodbyes" % n,
            lambda: self.count("goodbye", SSE_GOODBYE) >= n,
        )

    def report(self):
        """What the page shows, for a failure's message."""
        out = ["--- %s" % self.name]
        try:
            for element_id in ("chat-state", "events-state", "tick"):
                out.append("#%s: %s" % (element_id, self.text(element_id)))
            out.extend("log [%s] %s" % (k, t) for k, t in self.lines())
            for entry in self.driver.get_log("browser"):
                out.append("console: %s %s" % (entry["level"], entry["message"]))
        except Exception as e:  # the browser may be what failed
            out.append("(cannot read the page: %r)" % e)
        return "\n".join(out)

    def close(self):
        if self.driver is not None:
            try:
                self.driver.quit()
            except Exception as e:
                print("%s: quit: %r" % (self.name, e), file=sys.stderr)
        shutil.rmtree(self.profile, ignore_errors=True)


def chat(ann, bob, tag):
    """Ann speaks and both hear her; Bob answers and both hear him."""
    for speaker in (ann, bob):
        message = "%s says hello (%s)" % (speaker.name, tag)
        speaker.say(message)
        for page in (ann, bob):
            page.wait_heard(message)
    step("%s and %s chatted (%s)" % (ann.name, bob.name, tag))


def ask_for(signal_name):
    print("signal " + signal_name, flush=True)


def goodbye(ann, bob):
    chat(ann, bob, "before the signal")
    ask_for("TERM")
    for page in (ann, bob):
        page.wait_goodbyes(1)
        page.wait(
            "the chat reconnecting",
            lambda: page.text("chat-state").startswith("reconnecting"),
        )
    step("both pages show the goodbye")


def restart(ann, bob):
    chat(ann, bob, "before the restart")
    ask_for("HUP")
    for page in (ann, bob):
        page.wait_goodbyes(1)
    step("both pages show the goodbye of the old server")
    for page in (ann, bob):
        page.wait_connected(2)
    step("both pages reconnected by themselves")
    chat(ann, bob, "after the restart")
    ask_for("TERM")
    for page in (ann, bob):
        page.wait_goodbyes(2)
    step("both pages show the goodbye of the new server")


def timed_out(signum, frame):
    raise AssertionError("the script took more than %d s" % LIMIT)


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in ("goodbye", "restart"):
        sys.exit("usage: browser.py URL goodbye|restart")
    url, scenario = sys.argv[1], sys.argv[2]
    signal.signal(signal.SIGALRM, timed_out)
    signal.alarm(LIMIT)
    started = time.monotonic()
    pages = []
    try:
        for name in ("Ann", "Bob"):
            pages.append(Page(name))
            pages[-1].open(url)
        step("two browsers loaded the page")
        for page in pages:
            page.wait_connected(1)
            page.wait("a tick", lambda: page.text("tick").startswith("tick "))
        step("both pages connected, ticks arriving")
        {"goodbye": goodbye, "restart": restart}[scenario](*pages)
    except BaseException:
        for page in pages:
            print(page.report(), file=sys.stderr)
        raise
    finally:
        signal.alarm(0)
        for page in pages:
            page.close()
    print("done in %.1f s" % (time.monotonic() - started), flush=True)


if __name__ == "__main__":
    main()
