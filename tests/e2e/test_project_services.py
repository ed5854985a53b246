"""The four example projects served by `keel serve`, each with its own request model, hit with real examples.

The models are the ones test_projects.py trains from the shipped configs (the session's `trained` fixture: each
project is trained once for the whole run); a real uvicorn process serves each on a free loopback port. Tennis
takes two player names and the match; the others take a record of their own feature columns (tags:
``{"title": ..., "description": ...}``).
"""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.e2e.test_projects import REPO, Trained
from tests.integration.serving_helpers import Server, as_json_records, running_server

MATCH = {"player_1": "Jannik Sinner", "player_2": "Carlos Alcaraz", "surface": "Clay", "tourney_level": "G",
         "round": "F", "best_of": 5}  # fmt: skip


class _Services(dict[str, Server]):
    """Projects trained and served on first use; every server is stopped when the module ends."""

    def __init__(self, trained: dict[str, Trained], factory: pytest.TempPathFactory) -> None:
        super().__init__()
        self.trained, self.factory = trained, factory
        self._contexts: list[Any] = []

    def __missing__(self, project: str) -> Server:
        folder = self.factory.mktemp(f"served-{project}")
        workspace = self.trained[project].workspace
        context = running_server(workspace, folder / "serve.log", f"{project}@champion")
        self[project] = context.__enter__()
        self._contexts.append(context)
        return self[project]

    def close(self) -> None:
        for context in reversed(self._contexts):
            context.__exit__(None, None, None)


@pytest.fixture(scope="module")
def services(trained: dict[str, Trained], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The projects (trained once per session), each served once for this module."""
    served = _Services(trained, tmp_path_factory)
    try:
        yield served
    finally:
        served.close()


def _predict(server: Server, body: Any) -> Any:
    with server.client() as client:
        return client.post("/v1/predict", json=body)


def _win(server: Server, **fields: Any) -> float:
    response = _predict(server, {**MATCH, **fields})
    assert response.status_code == 200, response.text
    return float(response.json()["player_1_win_probability"])


# -- tennis -----------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_tennis_answers_with_the_probability_that_player_1_wins(services: _Services) -> None:
    response = _predict(services["tennis"], MATCH)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model"] == "tennis"
    assert 0.0 < answer["player_1_win_probability"] < 1.0
    assert answer["player_1"]["name"] == "Jannik Sinner"
    assert answer["player_2"]["name"] == "Carlos Alcaraz"
    assert answer["player_1"]["last_match"].startswith("2024-")
    assert answer["match_date"] > answer["player_1"]["last_match"]  # a match after the last known one


@pytest.mark.slow
@pytest.mark.parametrize(
    ("first", "second", "surface"),
    [("Jannik Sinner", "Carlos Alcaraz", "Clay"), ("Novak Djokovic", "Daniil Medvedev", "Grass"),
     ("Casper Ruud", "Taylor Fritz", "Hard")],
)  # fmt: skip
def test_tennis_both_orders_of_a_pair_sum_to_one(services: _Services, first: str, second: str, surface: str) -> None:
    server = services["tennis"]
    forward = _win(server, player_1=first, player_2=second, surface=surface)
    backward = _win(server, player_1=second, player_2=first, surface=surface)
    assert 0.0 < forward < 1.0
    assert forward + backward == pytest.approx(1.0, abs=1e-12)


@pytest.mark.slow
def test_tennis_the_surface_and_the_players_change_the_answer(services: _Services) -> None:
    server = services["tennis"]
    on_clay, on_grass = _win(server, surface="Clay"), _win(server, surface="Grass")
    assert on_clay != on_grass
    # The world number one against a player ranked outside the top 100 is a clear favourite.
    assert _win(server, player_2="Pablo Carreno Busta", surface="Hard") > 0.7


@pytest.mark.slow
def test_tennis_resolves_part_of_a_name_and_answers_a_batch(services: _Services) -> None:
    server = services["tennis"]
    single = _win(server)
    assert _win(server, player_1="sinner", player_2="ALCARAZ") == pytest.approx(single, abs=1e-12)
    response = _predict(server, {"records": [MATCH, {**MATCH, "player_1": "Carlos Alcaraz", "player_2": "Sinner"}]})
    assert response.status_code == 200, response.text
    first, second = response.json()["predictions"]
    assert first["player_1_win_probability"] == pytest.approx(single, abs=1e-12)
    assert first["player_1_win_probability"] + second["player_1_win_probability"] == pytest.approx(1.0, abs=1e-12)


@pytest.mark.slow
def test_tennis_an_unknown_player_is_404_with_the_closest_names(services: _Services) -> None:
    response = _predict(services["tennis"], {**MATCH, "player_2": "Carlos Alcarez"})
    assert response.status_code == 404
    body = response.json()
    (problem,) = body["detail"]
    assert problem["field"] == "player_2"
    assert problem["candidates"][0] == "Carlos Alcaraz"
    assert "Carlos Alcaraz" in body["error"]


@pytest.mark.slow
def test_tennis_an_ambiguous_name_is_409_listing_the_candidates(services: _Services) -> None:
    response = _predict(services["tennis"], {**MATCH, "player_1": "Zverev"})
    assert response.status_code == 409
    (problem,) = response.json()["detail"]
    assert problem["field"] == "player_1"
    assert {"Alexander Zverev", "Mischa Zverev"} <= set(problem["candidates"])
    response = _predict(services["tennis"], {"records": [MATCH, {**MATCH, "player_2": "zverev"}]})
    assert response.status_code == 409
    assert response.json()["detail"][0]["field"] == "records[1].player_2"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fields", "field"),
    [({"surface": "Mud"}, "surface"), ({"round": "Final"}, "round"), ({"best_of": 4}, "best_of"),
     ({"player_3": "Rafael Nadal"}, "player_3")],
)  # fmt: skip
def test_tennis_invalid_fields_are_422(services: _Services, fields: dict[str, Any], field: str) -> None:
    response = _predict(services["tennis"], {**MATCH, **fields})
    assert response.status_code == 422
    assert [p["field"] for p in response.json()["detail"]] == [field]


@pytest.mark.slow
def test_tennis_docs_show_the_match_request_with_a_real_example(services: _Services) -> None:
    with services["tennis"].client() as client:
        document = client.get("/openapi.json").json()
    operation = document["paths"]["/v1/predict"]["post"]
    content = operation["requestBody"]["content"]["application/json"]
    assert content["examples"]["one request"]["value"] == MATCH
    match = document["components"]["schemas"]["TennisMatch"]
    assert set(match["properties"]) >= {"player_1", "player_2", "surface", "tourney_level", "round", "best_of"}
    assert {"404", "409", "422"} <= set(operation["responses"])


@pytest.mark.slow
def test_tennis_rows_are_encoded_as_the_training_pipeline_encodes_them(services: _Services, tmp_path: Path) -> None:
    import dataclasses

    import pandas as pd

    from keel.application.serve import RegistrySource
    from keel.domain.validation import coerce_features
    from keel.errors import IntegrityError
    from keel.io.registry import Registry
    from keel.serving.predictor import Predictor
    from keel.serving.recipe import load_recipe_endpoint

    services["tennis"]  # trains and serves it
    version = RegistrySource(Registry.open(services.trained["tennis"].workspace), "tennis@champion").load(1)
    endpoint = load_recipe_endpoint(version, max_records=10)
    assert endpoint is not None
    _, requests = endpoint.validate({"records": [MATCH, {**MATCH, "player_1": "Daniil Medvedev", "best_of": 3}]})
    rows = [endpoint._as_record(row) for request in requests for row in endpoint.service.rows(request)]
    model = version.model
    expected = model.transform(coerce_features(pd.DataFrame(rows)[model.schema.feature_names], model.schema).frame)
    np.testing.assert_array_equal(Predictor(model).encode(rows), np.asarray(expected, dtype=np.float64))

    # The stored player table is checked against the manifest like every artifact.
    assert version.directory is not None
    copy = shutil.copytree(version.directory, tmp_path / "model")
    (copy / "recipe" / "players.parquet").write_bytes(b"PAR1 not the table that was trained")
    tampered = dataclasses.replace(version, directory=copy)
    with pytest.raises(IntegrityError, match=r"players\.parquet"):
        load_recipe_endpoint(tampered, max_records=10)


# -- the other projects: their own request models, real rows ----------------------------------------------------


def _features(server: Server) -> list[str]:
    with server.client() as client:
        schema = client.get("/v1/model").json()["feature_schema"]
    return [column["name"] for column in schema["columns"] if column["role"] == "feature"]


def _real_rows(shared_data: Path, project: str) -> Any:
    import pandas as pd

    from keel.config import load_config

    if project == "covertype":
        config = load_config([REPO / "configs" / "covertype.yaml"]).config
        assert config.data.train.csv is not None
        with gzip.open(shared_data / "covertype" / "covtype.20k.data.gz", "rt") as handle:
            frame = pd.read_csv(handle, header=None, names=config.data.train.csv.names)
        return frame.sample(40, random_state=1), "Cover_Type"
    if project == "bikes":
        return pd.read_csv(shared_data / "bikes" / "hour.csv.gz").tail(40), "cnt"
    return pd.read_csv(shared_data / "madewithml" / "holdout.csv").head(40), "tag"


@pytest.mark.slow
@pytest.mark.parametrize("project", ["covertype", "bikes", "tags"])
def test_each_project_serves_real_rows_with_its_own_request_model(
    services: _Services, shared_data: Path, project: str
) -> None:
    server = services[project]
    rows, target = _real_rows(shared_data, project)
    features = _features(server)
    assert target not in features
    if project == "tags":
        assert features == ["title", "description"]  # the service takes {"title": ..., "description": ...}
    records = as_json_records(rows, features)
    single = _predict(server, records[0])
    assert single.status_code == 200, single.text
    response = _predict(server, {"records": records})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == len(records)
    truth = rows[target].tolist()
    if project == "bikes":
        values = np.array([p["value"] for p in predictions])
        assert np.all(values >= 0)
        assert float(np.sqrt(np.mean((values - np.array(truth)) ** 2))) < 150  # hourly counts up to ~900
    else:
        labels = [p["label"] for p in predictions]
        for prediction in predictions:
            assert sum(prediction["probabilities"].values()) == pytest.approx(1.0)
        accuracy = np.mean([str(a) == str(b) for a, b in zip(labels, truth, strict=True)])
        assert accuracy >= 0.7, (labels, truth)
    # A field of another project's request model is refused with a hint.
    wrong = _predict(server, {**records[0], "player_1": "Jannik Sinner"})
    assert wrong.status_code == 422
    assert wrong.json()["detail"][0]["field"] == "player_1"
