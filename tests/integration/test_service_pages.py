"""The service's pages as people and monitors see them, from a real `keel serve` (uvicorn) on loopback.

The report at ``GET /`` in a real browser (headless Chromium, Debian's package, driven over WebDriver), the bounded
drift window behind ``GET /v1/monitoring`` and its Prometheus gauges. The browser test installs Chromium and
ChromeDriver with apt-get when they are missing and it runs as root (as in CI), talks the W3C WebDriver protocol to
ChromeDriver with httpx, and saves a screenshot of the page under ``KEEL_TEST_ARTIFACTS`` (default:
``.test-artifacts/`` in the repository).
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
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO
from tests.integration.serving_helpers import Server, as_json_records, free_port, running_server

pytestmark = pytest.mark.slow

WINDOW = 200

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
    with running_server(adult_workspace, log, "--poll-interval", "0", "--monitor-window", str(WINDOW)) as running:
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


def _features(rows: Any) -> list[str]:
    return [c for c in rows.columns if c != "income"]


def test_the_root_page_is_the_versions_report_with_a_prediction_form(server: Server) -> None:
    with server.client() as client:
        page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "adult-income" in html
    assert "version 1" in html
    assert 'id="try-form"' in html
    assert '"endpoint": "/v1/predict"' in html
    assert html.count('src="data:image/png;base64,') >= 5


def test_monitoring_window_is_bounded_and_flags_the_shift(server: Server, adult_rows: Any) -> None:
    old = adult_rows[adult_rows["age"] >= 60]
    records = as_json_records(old.iloc[: WINDOW + 150], _features(adult_rows))
    with server.client() as client:
        empty = client.get("/v1/monitoring").json()
        for start in range(0, len(records), 100):
            assert client.post("/v1/predict", json={"records": records[start : start + 100]}).status_code == 200
        drift = client.get("/v1/monitoring").json()
        metrics = client.get("/metrics").text
    assert empty["available"] is True
    assert drift["window"] == WINDOW
    assert drift["rows"] == WINDOW  # only the most recent records are kept
    assert drift["features"][0]["name"] == "age"
    assert "age" in drift["drifting"]
    assert not {"sex", "race", "fnlwgt"} & set(drift["drifting"])
    assert drift["prediction"]["name"] == "prediction"
    assert sum(drift["prediction"]["current"]) == pytest.approx(1.0)
    gauges = {
        (sample.labels.get("feature"), sample.name): sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name.startswith("keel_drift")
    }
    assert gauges[("age", "keel_drift_psi")] > 0.2
    assert gauges[("age", "keel_drift_drifting")] == 1.0
    assert gauges[("sex", "keel_drift_drifting")] == 0.0
    assert gauges[(None, "keel_drift_window_records")] == WINDOW


def test_the_report_page_needs_a_key_like_every_other_route(adult_workspace: Path) -> None:
    from fastapi.testclient import TestClient

    from keel.application.serve import RegistrySource
    from keel.io.registry import Registry
    from keel.serving.app import create_app

    source = RegistrySource(Registry.open(adult_workspace), "adult-income@champion")
    client = TestClient(create_app(source, api_keys=["s3cret"], poll_interval=0))
    assert client.get("/").status_code == 401
    assert client.get("/v1/monitoring").status_code == 401
    page = client.get("/", headers={"X-API-Key": "s3cret"})
    assert page.status_code == 200
    assert "API key" in page.text
    assert client.get("/v1/monitoring", headers={"Authorization": "Bearer s3cret"}).json()["rows"] == 0
