"""The prediction service as a client sees it: a real `keel serve` (uvicorn) process on a loopback port."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.serving_helpers import Server, as_json_records, running_server

pytestmark = pytest.mark.slow

MAX_RECORDS = 50
MAX_EXPLAIN_RECORDS = 5


@pytest.fixture(scope="module")
def server(adult_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    limits = ["--max-records", str(MAX_RECORDS), "--max-explain-records", str(MAX_EXPLAIN_RECORDS)]
    with running_server(adult_workspace, log, "--poll-interval", "0", *limits) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http


@pytest.fixture(scope="module")
def example(client: httpx.Client) -> dict[str, Any]:
    schema = client.get("/v1/model").json()["feature_schema"]
    return dict(schema["example"])


def _batch_predictions(rows: Any, tmp_path: Path) -> Any:
    """What `keel predict` writes for the same rows."""
    from keel.application.models import load_version
    from keel.application.predict import predict_file
    from keel.io.registry import Registry
    from keel.io.tables import read_table

    source, output = tmp_path / "rows.csv", tmp_path / "predicted.csv"
    rows.to_csv(source, index=False)
    handle = load_version(Registry.open(), "adult-income@champion")
    predict_file(handle, source, output)
    return read_table(output)


def test_single_and_batch_predictions_equal_keel_predict(
    client: httpx.Client, adult_rows: Any, adult_workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEL_WORKSPACE", str(adult_workspace))
    features = [c for c in adult_rows.columns if c != "income"]
    rows = adult_rows.iloc[:MAX_RECORDS].reset_index(drop=True)
    assert rows[features].isna().any(axis=None), "the sample should include missing values"
    expected = _batch_predictions(rows, tmp_path)
    records = as_json_records(rows, features)

    batch = client.post("/v1/predict", json={"records": records})
    assert batch.status_code == 200, batch.text
    body = batch.json()
    assert body["model"] == "adult-income"
    assert body["version"] == 1
    assert body["request_id"] == batch.headers["x-request-id"]
    assert len(body["predictions"]) == len(rows)
    for i, prediction in enumerate(body["predictions"]):
        assert prediction["label"] == expected.loc[i, "prediction"]
        for label, probability in prediction["probabilities"].items():
            assert math.isclose(probability, expected.loc[i, f"probability_{label}"], abs_tol=1e-9)

    for i in range(0, len(records), 10):
        single = client.post("/v1/predict", json=records[i])
        assert single.status_code == 200, single.text
        answer = single.json()
        assert answer["label"] == expected.loc[i, "prediction"]
        assert math.isclose(answer["probabilities"][">50K"], expected.loc[i, "probability_>50K"], abs_tol=1e-9)
        assert answer["version"] == 1


def test_columns_are_answered_in_columns_as_the_same_records_would_be(client: httpx.Client, adult_rows: Any) -> None:
    features = [c for c in adult_rows.columns if c != "income"]
    records = as_json_records(adult_rows.iloc[:MAX_RECORDS].reset_index(drop=True), features)
    records[3] = {**records[3], "workclass": "Astronaut"}
    records[7] = {**records[7], "age": 130}
    columns = {name: [record[name] for record in records] for name in features}

    response = client.post("/v1/predict", json={"columns": columns})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["model"], answer["version"]) == ("adult-income", 1)
    assert answer["request_id"] == response.headers["x-request-id"]
    expected = client.post("/v1/predict", json={"records": records}).json()["predictions"]
    assert answer["predictions"]["label"] == [p["label"] for p in expected]
    for label, values in answer["predictions"]["probabilities"].items():
        assert values == pytest.approx([p["probabilities"][label] for p in expected], abs=1e-12)
    assert [(w["record"], w["field"]) for w in answer["warnings"]] == [(3, "workclass"), (7, "age")]
    assert answer["warnings"][1]["problem"] == expected[7]["warnings"][0]["problem"]

    # An optional column left out is missing in every record, as an absent field is in a record.
    without = {name: values for name, values in columns.items() if name != "occupation"}
    answer = client.post("/v1/predict", json={"columns": without}).json()
    plain = client.post(
        "/v1/predict", json={"records": [{k: v for k, v in r.items() if k != "occupation"} for r in records]}
    ).json()
    assert answer["predictions"]["label"] == [p["label"] for p in plain["predictions"]]


def test_columnar_mistakes_are_422_naming_the_column(client: httpx.Client, example: dict[str, Any]) -> None:
    columns = {name: [value, value, value] for name, value in example.items()}

    def problems(body: Any) -> dict[str, str]:
        response = client.post("/v1/predict", json=body)
        assert response.status_code == 422, response.text
        return {item["field"]: item["problem"] for item in response.json()["detail"]}

    assert problems({"columns": {**columns, "age": [39, 40]}}) == {
        "columns.age": "2 values where the other columns have 3"
    }
    assert 'got "old"' in problems({"columns": {**columns, "age": [39, 40, "old"]}})["columns.age[2]"]
    assert "did you mean 'age'" in problems({"columns": {**columns, "agee": [1, 2, 3]}})["columns.agee"]
    missing = {name: values for name, values in columns.items() if name != "age"}
    assert problems({"columns": missing})["columns.age"].startswith("required column is missing")
    many = {name: [value] * (MAX_RECORDS + 1) for name, value in example.items()}
    assert str(MAX_RECORDS) in problems({"columns": many})["columns.age"]


def test_explaining_more_records_than_the_limit_is_422_naming_it(client: httpx.Client, example: dict[str, Any]) -> None:
    over = MAX_EXPLAIN_RECORDS + 1
    bodies = {
        "records": {"records": [example] * over},
        "columns": {"columns": {name: [value] * over for name, value in example.items()}},
    }
    for kind, body in bodies.items():
        refused = client.post("/v1/predict", json=body, params={"explain": "true"})
        assert refused.status_code == 422, kind
        answer = refused.json()
        assert f"at most {MAX_EXPLAIN_RECORDS} records" in answer["error"]
        assert "--max-explain-records" in answer["error"]
        assert answer["detail"][0]["field"] == "explain"
        assert client.post("/v1/predict", json=body).status_code == 200  # the same records without explanations
    at_limit = client.post("/v1/predict", json={"records": [example] * MAX_EXPLAIN_RECORDS}, params={"explain": "true"})
    assert at_limit.status_code == 200
    assert all(p["explanation"] for p in at_limit.json()["predictions"])


def test_columns_can_be_explained_record_by_record(client: httpx.Client, example: dict[str, Any]) -> None:
    columns = {name: [value, value] for name, value in example.items()}
    answer = client.post("/v1/predict", json={"columns": columns}, params={"explain": "true"}).json()
    single = client.post("/v1/predict", json=example, params={"explain": "true"}).json()
    assert answer["predictions"]["explanations"] == [single["explanation"]] * 2


def test_unseen_category_and_out_of_range_value_are_scored_with_warnings(
    client: httpx.Client, example: dict[str, Any]
) -> None:
    response = client.post("/v1/predict", json={**example, "workclass": "Astronaut", "age": 130})
    assert response.status_code == 200, response.text
    warnings = {w["field"]: w["problem"] for w in response.json()["warnings"]}
    assert set(warnings) == {"workclass", "age"}
    assert "'Astronaut' was not seen in training" in warnings["workclass"]
    assert "130 is above the training maximum 90" in warnings["age"]
    plain = client.post("/v1/predict", json=example).json()
    assert plain["warnings"] == []


def test_optional_fields_accept_null_and_absence(client: httpx.Client, example: dict[str, Any]) -> None:
    with_null = client.post("/v1/predict", json={**example, "occupation": None})
    without = client.post("/v1/predict", json={k: v for k, v in example.items() if k != "occupation"})
    assert with_null.status_code == without.status_code == 200
    assert with_null.json()["probabilities"] == without.json()["probabilities"]


def test_explain_returns_top_contributions_that_add_up(client: httpx.Client, example: dict[str, Any]) -> None:
    response = client.post("/v1/predict", params={"explain": "true"}, json=example)
    assert response.status_code == 200, response.text
    explanation = response.json()["explanation"]
    contributions = explanation["contributions"]
    assert len(contributions) == 5
    sizes = [abs(c["contribution"]) for c in contributions]
    assert sizes == sorted(sizes, reverse=True)
    assert all(c["value"] == pytest.approx(example[c["feature"]]) for c in contributions if c["feature"] == "age")
    assert explanation["unit"] == "log-odds"
    assert "explanation" not in client.post("/v1/predict", json=example).json()


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"drop": "age"}, "age", "required field is missing"),
        ({"age": "thirty"}, "age", "valid number"),
        ({"workclass": 7}, "workclass", "valid string"),
        ({"sex": None}, "sex", "null is not allowed"),
        ({"agee": 30}, "agee", "did you mean 'age'"),
    ],
)
def test_invalid_fields_are_422_with_the_field_path(
    client: httpx.Client, example: dict[str, Any], body: dict[str, Any], field: str, words: str
) -> None:
    record = {k: v for k, v in example.items() if k != body.get("drop")}
    record.update({k: v for k, v in body.items() if k != "drop"})
    response = client.post("/v1/predict", json=record)
    assert response.status_code == 422, response.text
    problems = {p["field"]: p["problem"] for p in response.json()["detail"]}
    assert field in problems
    assert words in problems[field]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_422(client: httpx.Client, example: dict[str, Any], literal: str) -> None:
    text = json.dumps({**example, "age": 0}).replace('"age": 0', f'"age": {literal}')
    response = client.post("/v1/predict", content=text, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["field"] == "age"
    assert "finite" in response.json()["detail"][0]["problem"]


def test_batch_errors_name_the_record(client: httpx.Client, example: dict[str, Any]) -> None:
    response = client.post("/v1/predict", json={"records": [example, {**example, "hours_per_week": "many"}]})
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "records[1].hours_per_week"


def test_too_many_records_is_422(client: httpx.Client, example: dict[str, Any]) -> None:
    response = client.post("/v1/predict", json={"records": [example] * (MAX_RECORDS + 1)})
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "records"
    assert str(MAX_RECORDS) in response.json()["detail"][0]["problem"]


@pytest.mark.parametrize("text", ['{"age": 39,', "not json", "", '{"age": 39}}'])
def test_malformed_json_is_400(client: httpx.Client, text: str) -> None:
    response = client.post("/v1/predict", content=text, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert "JSON" in response.json()["error"] or "empty" in response.json()["error"]


def test_body_over_the_limit_is_413(client: httpx.Client) -> None:
    response = client.post(
        "/v1/predict", content=b" " * (9 * 1024 * 1024), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert "limit" in response.json()["error"]


def test_client_mistakes_never_get_5xx(client: httpx.Client, example: dict[str, Any]) -> None:
    bodies: list[Any] = [[], [example], "text", 3, None, {"records": "x"}, {"records": [1]}, {"records": []}, {"": 1}]
    bodies += [{**example, "age": [1]}, {**example, "age": {"x": 1}}, {**example, "race": ""}, "[" * 100_000]
    for body in bodies:
        content = body if isinstance(body, str) and body.startswith("[") else json.dumps(body)
        response = client.post("/v1/predict", content=content, headers={"content-type": "application/json"})
        assert response.status_code < 500, (body if len(str(body)) < 100 else "deep", response.text)
    assert client.get("/v1/nowhere").status_code == 404
    assert client.get("/v1/predict").status_code == 405
    assert client.post("/v1/predict", params={"explain": "perhaps"}, json=example).status_code == 422


def test_model_health_ready_and_docs(client: httpx.Client) -> None:
    model = client.get("/v1/model").json()
    assert model["name"] == "adult-income"
    assert model["version"] == 1
    assert model["alias"] == "champion"
    assert model["metrics"]["roc_auc"] > 0.85
    assert model["trained_at"]
    assert model["data_fingerprint"]
    assert all(len(sha256) == 64 for sha256 in model["data_fingerprint"].values())
    assert model["compiled_predictor"] is True
    assert client.get("/health").json() == {"status": "alive"}
    assert client.get("/ready").json()["version"] == 1
    openapi = client.get("/openapi.json").json()
    body = openapi["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert body["examples"]["one record"]["value"]["education"]
    record = openapi["components"]["schemas"]["AdultIncomeRecord"]
    assert "age" in record["required"]
    assert "workclass" not in record["required"]  # it had missing values in training
    assert record["additionalProperties"] is False
    assert client.get("/docs").status_code == 200


def test_prometheus_metrics_parse_and_count_requests(client: httpx.Client, example: dict[str, Any]) -> None:
    client.post("/v1/predict", json={"records": [example, example, example]})
    client.post("/v1/predict", content="{", headers={"content-type": "application/json"})
    text = client.get("/metrics").text
    families = {family.name: family for family in text_string_to_metric_families(text)}
    requests = {
        (s.labels["route"], s.labels["status"]): s.value
        for s in families["keel_requests"].samples
        if s.name.endswith("_total")
    }
    assert requests[("/v1/predict", "200")] >= 1
    assert requests[("/v1/predict", "400")] >= 1
    predicted = {s.labels["label"]: s.value for s in families["keel_predictions"].samples if s.name.endswith("_total")}
    assert sum(predicted.values()) >= 3
    info = list(families["keel_model_info"].samples)
    assert [(s.labels["model"], s.labels["version"], s.value) for s in info] == [("adult-income", "1", 1.0)]
    assert "keel_request_duration_seconds" in families
    assert "keel_records_per_request" in families


def test_plain_and_unusual_query_strings_are_answered_alike(client: httpx.Client, example: dict[str, Any]) -> None:
    # A plain request (no query string, or exactly explain=true/false) is answered by the gateway's lane for
    # POST /v1/predict; any other query string goes through FastAPI's route. Both must give the same answers.
    def without_id(document: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in document.items() if key != "request_id"}

    unseen = {**example, "race": "Martian", "age": 150}
    for body in (example, unseen, {"records": [example, unseen]}):
        plain = client.post("/v1/predict", json=body)
        routed = client.post("/v1/predict?explain=false&extra=1", json=body)
        assert plain.status_code == routed.status_code == 200
        assert without_id(plain.json()) == without_id(routed.json())
        assert plain.headers["content-type"] == routed.headers["content-type"] == "application/json"
    explained = client.post("/v1/predict?explain=true", json=example).json()
    assert without_id(explained) == without_id(client.post("/v1/predict?explain=True", json=example).json())
    assert explained["explanation"]["contributions"]
    for query in ("", "?explain=false", "?explain=1"):  # refusals: the same status, shape, headers and request id
        refused = client.post(f"/v1/predict{query}", json={**example, "age": "old"}, headers={"x-request-id": "r-1"})
        assert refused.status_code == 422
        assert refused.json()["request_id"] == refused.headers["x-request-id"] == "r-1"
        assert refused.json()["detail"][0]["field"] == "age"
        wrong_type = client.post(f"/v1/predict{query}", content=b"{}", headers={"content-type": "text/plain"})
        assert wrong_type.status_code == 415
        assert set(wrong_type.json()) == {"error", "detail", "request_id"}
    families = {family.name: family for family in text_string_to_metric_families(client.get("/metrics").text)}
    counted = {
        (s.labels["route"], s.labels["method"], s.labels["status"])
        for s in families["keel_requests"].samples
        if s.name.endswith("_total")
    }
    assert {("/v1/predict", "POST", "200"), ("/v1/predict", "POST", "422")} <= counted
