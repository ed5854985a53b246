"""The service's report page, drift monitoring window and gauges, seen over HTTP from a real `keel serve`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.serving_helpers import Server, as_json_records, running_server

pytestmark = pytest.mark.slow

WINDOW = 200


@pytest.fixture(scope="module")
def server(adult_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("serve-insights") / "serve.log"
    with running_server(adult_workspace, log, "--poll-interval", "0", "--monitor-window", str(WINDOW)) as running:
        yield running


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


def test_the_report_page_needs_a_key_like_every_other_route(adult_workspace: Path, tmp_path: Path) -> None:
    with running_server(adult_workspace, tmp_path / "serve.log", "--poll-interval", "0", KEEL_API_KEYS="s3cret") as s:
        assert httpx.get(f"{s.url}/", timeout=30).status_code == 401
        assert httpx.get(f"{s.url}/v1/monitoring", timeout=30).status_code == 401
        page = httpx.get(f"{s.url}/", headers={"X-API-Key": "s3cret"}, timeout=30)
        assert page.status_code == 200
        assert "API key" in page.text
