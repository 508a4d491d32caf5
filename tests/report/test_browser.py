"""report.html in a real browser: headless Chromium driven through the DevTools protocol.

Every image must decode (naturalWidth > 0), every table must hold its rows, and nothing may be
fetched from the network (only file: and data: URLs). Skips where Chromium (Debian's
``chromium``) or the ``websocket-client`` package is absent; ``.ci/run`` installs Chromium.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from shiftlab.report import write_report
from shiftlab.report.render import build_report
from test_compare import MODELS, write_run

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

PAGE_FACTS = """(() => ({
  images: [...document.images].map(i => ({
    src: i.src.slice(0, 30), complete: i.complete, width: i.naturalWidth, height: i.naturalHeight
  })),
  tables: [...document.querySelectorAll('table')].map(t => ({
    heading: t.previousElementSibling && t.previousElementSibling.tagName === 'P'
      ? t.previousElementSibling.previousElementSibling.textContent
      : t.previousElementSibling && t.previousElementSibling.textContent,
    columns: t.querySelectorAll('thead th').length,
    rows: t.querySelectorAll('tbody tr').length,
    cells: [...t.querySelectorAll('tbody tr')].map(r => r.children.length)
  })),
  resources: performance.getEntriesByType('resource').map(e => e.name)
}))()"""


class DevTools:
    """A minimal DevTools-protocol client over one page's websocket."""

    def __init__(self, url: str) -> None:
        import websocket

        self.socket = websocket.create_connection(url, timeout=30, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Call ``method`` and return its result; events read meanwhile are kept."""
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
        """The first event ``method`` (already received or arriving within ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event.get("method") == method:
                    return event
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} within {timeout} s")
            self.events.append(json.loads(self.socket.recv()))

    def close(self) -> None:
        self.socket.close()


@pytest.fixture
def chromium(tmp_path: Path):
    """A headless Chromium with remote debugging on a free port; yields its HTTP endpoint."""
    pytest.importorskip("websocket", reason="websocket-client not installed (the dev extra)")
    binary = next((b for b in map(shutil.which, BROWSERS) if b), None)
    if binary is None:
        pytest.skip("Chromium not installed (Debian: apt-get install chromium; .ci/run does)")
    profile = tmp_path / "chromium-profile"
    command = [
        binary,
        "--headless=new",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        "--remote-allow-origins=*",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "about:blank",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and port_file.read_text().strip()):
            if process.poll() is not None:
                pytest.fail(f"{binary} exited with status {process.returncode} before starting")
            if time.monotonic() > deadline:
                pytest.fail(f"{binary} wrote no DevToolsActivePort within 60 s")
            time.sleep(0.1)
        port = port_file.read_text().splitlines()[0]
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def page_websocket(endpoint: str) -> str:
    """The websocket URL of the browser's open page (about:blank)."""
    deadline = time.monotonic() + 30
    while True:
        with urllib.request.urlopen(f"{endpoint}/json/list", timeout=10) as response:
            targets = json.load(response)
        pages = [t for t in targets if t.get("type") == "page"]
        if pages:
            return pages[0]["webSocketDebuggerUrl"]
        if time.monotonic() > deadline:
            raise TimeoutError("Chromium opened no page")
        time.sleep(0.1)


def test_report_html_renders_offline_in_chromium(tmp_path, chromium):
    run = write_run(tmp_path / "run", groups=True)
    # what the page must show: every table of the report, with its rows
    _, markdown, images = build_report(run)
    expected = [
        (block.splitlines()[0], sum(1 for line in block.splitlines() if line.startswith("| ")) - 1)
        for block in markdown.split("### ")[1:]
        if "\n| " in block
    ]
    assert len(expected) >= 5 and len(images) >= 2
    page_path = write_report(run)

    devtools = DevTools(page_websocket(chromium))
    try:
        devtools.send("Network.enable")
        devtools.send("Page.enable")
        devtools.send("Page.navigate", url=page_path.resolve().as_uri())
        devtools.wait_for("Page.loadEventFired")
        facts = devtools.send("Runtime.evaluate", expression=PAGE_FACTS, returnByValue=True)
        facts = facts["result"]["value"]
        requested = [
            e["params"]["request"]["url"]
            for e in devtools.events
            if e.get("method") == "Network.requestWillBeSent"
        ]
    finally:
        devtools.close()

    assert page_path.resolve().as_uri() in requested
    offline = [u for u in requested + facts["resources"] if not u.startswith(("file:", "data:"))]
    assert offline == [], f"fetched from the network: {offline}"
    assert len(facts["images"]) == len(images)
    for image in facts["images"]:
        assert image["src"].startswith("data:image/png")
        assert image["complete"] and image["width"] > 0 and image["height"] > 0, image
    shown = [(t["heading"], t["rows"]) for t in facts["tables"]]
    assert shown == expected
    for table in facts["tables"]:
        assert table["rows"] > 0 and set(table["cells"]) == {table["columns"]}, table


DEPLOY_FACTS = """(() => {
  const table = document.querySelector('table.deploy');
  const box = table.getBoundingClientRect();
  const cell = table.querySelector('tbody tr td:nth-child(2)');
  const cellBox = cell.getBoundingClientRect();
  const hit = document.elementFromPoint(
    (cellBox.left + cellBox.right) / 2, (cellBox.top + cellBox.bottom) / 2);
  const details = table.parentElement.querySelector('details');
  return {
    viewport: [document.documentElement.clientWidth, window.innerHeight],
    table: {left: box.left, right: box.right, width: box.width, top: box.top},
    heading: table.previousElementSibling.textContent,
    model: cell.innerText,
    modelBox: {width: cellBox.width, height: cellBox.height, bottom: cellBox.bottom},
    clipped: cell.scrollWidth > cell.clientWidth,
    shown: hit === cell || cell.contains(hit),
    links: [...table.querySelectorAll('a')].map(a => a.getAttribute('href')),
    targets: [...table.querySelectorAll('a')].map(
      a => !!document.getElementById(a.getAttribute('href').slice(1))),
    commands: document.querySelector('pre.commands').innerText,
    detailsOpen: details.open,
    detailsItems: details.querySelectorAll('li').length
  };
})()"""


def test_what_to_deploy_reads_at_a_glance_on_a_laptop_screen(tmp_path, chromium):
    """At 1366x768 the What-to-deploy table fits the width (no horizontal scrolling), its first
    row's model name is drawn on the first screen, its links land on sections of the page, and
    the details stay collapsed below it."""
    models = [*MODELS, ("wise_ft[alpha=0.5]", "wise_ft", (0.86, 0.72), {})]
    run = write_run(tmp_path / "run", groups=True, models=models)
    page_path = write_report(run)
    markdown = (run / "report.md").read_text()
    first_row = markdown.split("### What to deploy", 1)[1].split("\n| Best ", 1)[1]
    first_model = first_row.split(" | ")[1]

    devtools = DevTools(page_websocket(chromium))
    try:
        devtools.send(
            "Emulation.setDeviceMetricsOverride",
            width=1366,
            height=768,
            deviceScaleFactor=1,
            mobile=False,
        )
        devtools.send("Page.enable")
        devtools.send("Page.navigate", url=page_path.resolve().as_uri())
        devtools.wait_for("Page.loadEventFired")
        facts = devtools.send("Runtime.evaluate", expression=DEPLOY_FACTS, returnByValue=True)
        facts = facts["result"]["value"]
    finally:
        devtools.close()

    width, height = facts["viewport"]
    assert 1300 <= width <= 1366 and height == 768, facts["viewport"]  # less a scrollbar
    table = facts["table"]
    assert table["left"] >= 0 and table["right"] <= width and table["width"] <= width, facts
    assert facts["heading"] == "What to deploy"
    assert facts["model"] == first_model and first_model in {m[0] for m in models}
    box = facts["modelBox"]
    assert box["width"] > 0 and box["height"] > 0 and not facts["clipped"], facts
    assert facts["shown"] and box["bottom"] <= height, facts  # drawn, on the first screen
    assert facts["links"] and all(facts["targets"]), facts
    assert "'wise_ft[alpha=0.5]'" in facts["commands"]  # the recommended choice, quoted
    assert not facts["detailsOpen"] and facts["detailsItems"] >= 4
