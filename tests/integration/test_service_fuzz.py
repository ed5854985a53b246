"""Schemathesis against the service's own OpenAPI schema, served by a real `keel serve` on 127.0.0.1.

Two models (the Adult classifier and a small synthetic regression with an id column and an optional field), each
fuzzed with schema-valid ("positive") and schema-violating ("negative") cases for every operation. Generation is
derandomized and bounded by count, so the run is repeatable in CI and takes about half a minute per model. Every
response must be below 500 and conform to the schema (status code, content type, headers and body), and valid
input must be accepted. Failures are collected rather than shrunk, so a failing run stays bounded in time too.

One rule of the columnar body cannot be stated in JSON Schema: every column holds the same number of values. A
positive case's columns are cut to their shortest length before it is sent (negative cases keep any lengths, and
must get a 4xx).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from pathlib import Path

import pytest
import requests

from tests.integration.reliability_helpers import SECOND_MODEL, train_second_model
from tests.integration.serving_helpers import running_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

POSITIVE_PREDICT_CASES = 250
NEGATIVE_PREDICT_CASES = 250
OTHER_CASES = 25
"""Cases per mode for operations other than predict (most have no parameters, so one case covers them)."""
MIN_CASES_PER_MODEL = 500


@pytest.fixture(scope="module")
def regression_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_second_model(tmp_path_factory.mktemp("second") / "workspace")


def fuzz(url: str) -> tuple[Counter[tuple[str, str, int]], list[str]]:
    """Run every operation of the service at ``url`` through schemathesis' positive and negative generation.

    Returns:
        Cases by (operation, mode, status) and one description per distinct failure.
    """
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", timeout=30)
    cases: Counter[tuple[str, str, int]] = Counter()
    failures: dict[str, str] = {}
    with requests.Session() as session:

        def exercise(operation: schemathesis.APIOperation, mode: GenerationMode, budget: int) -> None:
            label, kind = operation.label, mode.value

            @settings(
                max_examples=budget,
                derandomize=True,
                database=None,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.explicit, Phase.generate],
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: schemathesis.Case) -> None:
                if mode is GenerationMode.POSITIVE:
                    _same_length(case.body)
                response = case.call(base_url=url, session=session, timeout=30)
                cases[(label, kind, response.status_code)] += 1
                try:
                    case.validate_response(response, transport_kwargs={"base_url": url, "session": session})
                except BaseExceptionGroup as error:  # schemathesis' FailureGroup
                    key = f"{label} [{kind}] {sorted(type(e).__name__ for e in error.exceptions)}"
                    failures.setdefault(key, str(error)[:3000])

            # An operation without parameters or body has no negative cases to generate.
            with contextlib.suppress(Unsatisfiable):
                run()

        for result in schema.get_all_operations():
            operation = result.ok()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                budget = OTHER_CASES
                if operation.label == "POST /v1/predict":
                    budget = POSITIVE_PREDICT_CASES if mode is GenerationMode.POSITIVE else NEGATIVE_PREDICT_CASES
                exercise(operation, mode, budget)
    return cases, [f"{key}\n{text}" for key, text in failures.items()]


def _same_length(body: object) -> None:
    """Cut the columns of a columnar body to the shortest one's length (the rule JSON Schema cannot state)."""
    columns = body.get("columns") if isinstance(body, dict) else None
    if isinstance(columns, dict) and columns and all(isinstance(values, list) for values in columns.values()):
        shortest = min(len(values) for values in columns.values())
        for name, values in columns.items():
            columns[name] = values[:shortest]


@pytest.mark.parametrize("project", ["adult", "regression"])
def test_generated_requests_never_get_5xx_and_every_response_conforms(
    project: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if project == "adult":
        workspace, reference = request.getfixturevalue("adult_workspace"), "adult-income@champion"
    else:
        workspace, reference = request.getfixturevalue("regression_workspace"), f"{SECOND_MODEL}@champion"
    with running_server(workspace, tmp_path / "serve.log", reference, "--poll-interval", "0") as server:
        cases, failures = fuzz(server.url)
        assert server.process.poll() is None, server.output()
        with server.client() as http:
            assert http.get("/health").status_code == 200
    total = sum(cases.values())
    errors = {key: count for key, count in cases.items() if key[2] >= 500}
    summary = "\n".join(f"{key}: {count}" for key, count in sorted(cases.items()))
    assert not errors, summary
    assert not failures, "\n\n".join(failures)
    assert total >= MIN_CASES_PER_MODEL, summary
    # Both kinds of case reached the model: valid records were scored and invalid ones refused with a 4xx.
    assert cases[("POST /v1/predict", "positive", 200)] >= POSITIVE_PREDICT_CASES // 2, summary
    assert sum(n for (op, mode, status), n in cases.items() if op == "POST /v1/predict" and status == 422) > 50
    assert "Traceback" not in server.output()
