"""The report page in a real browser: headless Chromium (Debian's package) driven over WebDriver.

The test installs Chromium and ChromeDriver with apt-get when they are missing and it runs as root (as in CI), talks
the W3C WebDriver protocol to ChromeDriver with httpx, and saves a screenshot of the page under
``KEEL_TEST_ARTIFACTS`` (default: ``.test-artifacts/`` in the repository).
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO
from tests.integration.serving_helpers import Server, free_port, running_server

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Flags this machine needs: no sandbox as root, and no background connections (the network is closed).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1280,1600",
]


def _install_chromium() -> None:
    if Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists():
        return
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        why = "Chromium is not installed and cannot be installed here (needs root and apt-get)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([apt, "update", "-qq"], check=True, env=env, timeout=600, capture_output=True)
    subprocess.run(
        [apt, "install", "-y", "-qq", "chromium", "chromium-driver"],
        check=True,
        env=env,
        timeout=900,
        capture_output=True,
    )


class Browser:
    """A WebDriver session (just the calls this test needs)."""

    def __init__(self, driver: str, session: str) -> None:
        self.http = httpx.Client(base_url=f"{driver}/session/{session}", timeout=60)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.http.request(method, path, json=body)
        assert response.status_code == 200, response.text
        return response.json()["value"]

    def script(self, source: str) -> Any:
        return self.call("POST", "/execute/sync", {"script": source, "args": []})

    def element(self, css: str) -> str:
        found = self.call("POST", "/element", {"using": "css selector", "value": css})
        return str(next(iter(found.values())))


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    _install_chromium()
    port = free_port()
    log = tmp_path_factory.mktemp("chromedriver") / "chromedriver.log"
    with log.open("wb") as out:
        driver = subprocess.Popen([CHROMEDRIVER, f"--port={port}"], stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    profile = tempfile.mkdtemp(prefix="keel-chromium-")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/status", timeout=2).json()["value"]["ready"]:
                    break
            except (httpx.TransportError, ValueError, KeyError):
                pass
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.2)
        options = {"binary": CHROMIUM, "args": [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]}
        capabilities = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}}
        created = httpx.post(f"{url}/session", json=capabilities, timeout=120)
        assert created.status_code == 200, created.text
        session = created.json()["value"]["sessionId"]
        browser = Browser(url, session)
        try:
            yield browser
        finally:
            httpx.delete(f"{url}/session/{session}", timeout=60)
    finally:
        driver.terminate()
        driver.wait(timeout=30)
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def server(adult_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("serve-browser") / "serve.log"
    with running_server(adult_workspace, log, "--poll-interval", "0") as running:
        yield running


def _artifacts() -> Path:
    folder = Path(os.environ.get("KEEL_TEST_ARTIFACTS") or REPO / ".test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_report_page_renders_and_its_form_returns_a_prediction(browser: Browser, server: Server) -> None:
    browser.call("POST", "/url", {"url": f"{server.url}/"})
    assert "adult-income" in browser.call("GET", "/title")
    metrics = browser.script(
        "const t = document.querySelector('table.metrics');"
        "return {rows: t.querySelectorAll('tbody tr').length, text: t.innerText,"
        " visible: t.getBoundingClientRect().height > 0};"
    )
    assert metrics["visible"]
    assert metrics["rows"] == 5
    assert "roc_auc" in metrics["text"]
    assert "0.9" in metrics["text"]
    images = browser.script(
        "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.getBoundingClientRect().width]);"
    )
    assert len(images) >= 5
    assert all(complete and natural > 0 and shown > 0 for complete, natural, shown in images)

    browser.call("POST", f"/element/{browser.element('#try-button')}/click", {})
    deadline = time.monotonic() + 30
    result = None
    while result is None and time.monotonic() < deadline:
        result = browser.script("const p = document.querySelector('#result .prediction'); return p && p.innerText;")
        time.sleep(0.2)
    assert result is not None, browser.script("return document.getElementById('result').innerText;")
    assert result.startswith("Prediction: ")
    assert result.split()[1] in ("<=50K", ">50K")
    contributions = browser.script("return document.querySelectorAll('#result table').length;")
    assert contributions == 2  # probabilities and the largest contributions

    browser.call("POST", "/execute/sync", {"script": "document.getElementById('try').scrollIntoView();", "args": []})
    shot = base64.b64decode(browser.call("GET", "/screenshot"))
    path = _artifacts() / "report-page.png"
    path.write_bytes(shot)
    assert shot[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 20_000
