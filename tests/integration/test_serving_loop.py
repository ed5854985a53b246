"""The production loop on a real service: prediction log and shadow under traffic and a hard kill, then labels,
live metrics and promotion from the evidence; canary splits; one /metrics for several workers."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from keel.cli import app
from keel.io.registry import Registry
from tests.integration import serving_helpers
from tests.integration.live_helpers import FEATURES, NAME, train_live_versions
from tests.integration.serving_helpers import running_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, module_workspace: Path) -> dict[str, Any]:
    traffic = train_live_versions(module_workspace, tmp_path_factory.mktemp("live"))
    records = json.loads(traffic[FEATURES].to_json(orient="records"))
    return {"workspace": module_workspace, "traffic": traffic, "records": records}


def _samples(text: str, family: str) -> list[Any]:
    return [s for f in text_string_to_metric_families(text) if f.name == family for s in f.samples]


def test_log_and_shadow_survive_a_hard_kill_and_feed_evaluation_and_promotion(
    live: dict[str, Any], tmp_path: Path
) -> None:
    workspace, records, traffic = live["workspace"], live["records"], live["traffic"]
    log_dir = tmp_path / "predictions"
    answered: dict[str, dict[str, Any]] = {}
    args = ["live@champion", "--log-dir", str(log_dir), "--shadow", f"{NAME}:2", "--log-rotate-seconds", "0.5"]
    with running_server(workspace, tmp_path / "server.log", *args) as server:
        with server.client() as http:
            for i, record in enumerate(records[:40]):
                response = http.post("/v1/predict", json=record, headers={"X-Request-ID": f"warm-{i}"})
                assert response.status_code == 200
                body = response.json()
                assert body["version"] == 1  # the response is the primary's alone
                assert "role" not in body
                answered[f"warm-{i}"] = {"row": i}
            # Agreement is counted once the shadow has scored (off the response path).
            deadline = pd.Timestamp.now() + pd.Timedelta(seconds=20)
            while True:
                agreement = _samples(http.get("/metrics").text, "keel_shadow_agreement")
                counted = sum(s.value for s in agreement if s.name.endswith("_total"))
                if counted >= 40 or pd.Timestamp.now() > deadline:
                    break
                threading.Event().wait(0.1)
            assert counted == 40
            assert {s.labels["primary"] for s in agreement} == {"1"}
            assert {s.labels["shadow"] for s in agreement} == {"2"}

        # Traffic keeps coming while the process is killed outright.
        stop = threading.Event()

        def stream() -> None:
            with httpx.Client(base_url=server.url, timeout=5) as client:
                i = 40
                while not stop.is_set():
                    rid = f"live-{i}"
                    try:
                        response = client.post(
                            "/v1/predict", json=records[i % len(records)], headers={"X-Request-ID": rid}
                        )
                    except httpx.TransportError:
                        return
                    if response.status_code == 200:
                        answered[rid] = {"row": i % len(records)}
                    i += 1

        thread = threading.Thread(target=stream)
        thread.start()
        try:
            deadline = pd.Timestamp.now() + pd.Timedelta(seconds=30)
            while len(list(log_dir.glob("part-*.parquet"))) < 3 and pd.Timestamp.now() < deadline:
                threading.Event().wait(0.1)
            threading.Event().wait(0.3)  # mid-interval
            server.process.kill()
            server.process.wait()
        finally:
            stop.set()
            thread.join()

    # No visible partial file: the folder reads as one table, and every row is whole.
    logged = pd.read_parquet(log_dir)
    assert len(logged) > 0
    assert set(logged["role"]) == {"primary", "shadow"}
    assert (logged.loc[logged.shadow, "version"] == 2).all()
    assert (logged.loc[~logged.shadow, "version"] == 1).all()
    assert set(logged["request_id"]) <= set(answered)
    assert {f"warm-{i}" for i in range(40)} <= set(logged["request_id"])  # long completed before the kill
    row = logged.loc[(logged.request_id == "warm-3") & ~logged.shadow].iloc[0]
    assert json.loads(row.features) == records[3]

    # Labels arrive later for what was answered; live metrics per version, then promotion on that evidence.
    labels = pd.DataFrame(
        {"request_id": list(answered), "label": [traffic["label"].iloc[a["row"]] for a in answered.values()]}
    )
    labels_file = tmp_path / "outcomes.csv"
    labels.to_csv(labels_file, index=False)
    env = {"KEEL_WORKSPACE": str(workspace)}
    done = CliRunner().invoke(
        app, ["evaluate", "--log", str(log_dir), "--labels", str(labels_file), "--on", "request_id", "--json"], env=env
    )
    assert done.exit_code == 0, done.output
    blocks = {(b["version"], b["role"]): b for b in json.loads(done.stdout)["versions"]}
    assert set(blocks) == {(1, "primary"), (2, "shadow")}
    assert blocks[(1, "primary")]["unmatched"] == 0  # every logged record was answered, so it has a label
    assert blocks[(2, "shadow")]["metrics"]["roc_auc"] > blocks[(1, "primary")]["metrics"]["roc_auc"]

    registry = Registry.open(workspace)
    try:
        promoted = CliRunner().invoke(
            app,
            ["models", "promote", NAME, "2", "--evidence", str(log_dir), "--labels", str(labels_file)],
            env=env,
        )
        assert promoted.exit_code == 0, promoted.output
        assert registry.alias_version(NAME, "champion") == 2
    finally:
        registry.set_alias(NAME, "champion", 1)


def test_canary_answers_its_share_sticky_by_the_id_column(live: dict[str, Any], tmp_path: Path) -> None:
    workspace, records = live["workspace"], live["records"]
    args = ["live@champion", "--canary", f"{NAME}:2:30", "--log-dir", str(tmp_path / "log")]
    with running_server(workspace, tmp_path / "server.log", *args) as server, server.client() as http:
        first = {}
        for record in records[:200]:
            body = http.post("/v1/predict", json=record).json()
            assert (body["version"], body["role"]) in ((1, "primary"), (2, "canary"))
            first[record["row_id"]] = body["version"]
        for record in records[:200]:  # the same customer meets the same version again
            assert http.post("/v1/predict", json=record).json()["version"] == first[record["row_id"]]
        share = sum(v == 2 for v in first.values()) / len(first)
        assert 0.15 < share < 0.45
        batch = http.post("/v1/predict", json={"records": records[:3]}).json()
        assert batch["version"] == first[records[0]["row_id"]]  # a batch goes by its first record
    logged = pd.read_parquet(tmp_path / "log")
    assert set(logged["role"]) == {"primary", "canary"}
    assert set(logged.loc[logged.role == "canary", "version"]) == {2}


def test_two_workers_one_scrape_counts_every_request(
    live: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(serving_helpers, "STARTUP_SECONDS", 420)  # the parent and then each worker load the model
    workspace, records = live["workspace"], live["records"]
    log_dir = tmp_path / "log"
    args = ["live@champion", "--workers", "2", "--log-dir", str(log_dir)]
    with running_server(workspace, tmp_path / "server.log", *args) as server:
        for i in range(100):  # a new connection each time, so both workers answer
            with httpx.Client(base_url=server.url, timeout=30) as http:
                assert http.post("/v1/predict", json=records[i]).status_code == 200
        for _ in range(4):  # whichever worker answers the scrape, it counts all 100
            with httpx.Client(base_url=server.url, timeout=30) as http:
                text = http.get("/metrics").text
            requests = _samples(text, "keel_requests")
            ok = [s for s in requests if s.name.endswith("_total") and s.labels["route"] == "/v1/predict"]
            assert sum(s.value for s in ok) == 100
            predictions = [s for s in _samples(text, "keel_predictions") if s.name.endswith("_total")]
            assert sum(s.value for s in predictions) == 100
    # Each worker wrote its own files (its process id in their names), flushed when the service stopped.
    logged = pd.read_parquet(log_dir)
    assert len(logged) == 100
    writers = {path.name.split("-")[-2] for path in log_dir.glob("part-*.parquet")}
    assert len(writers) == 2
