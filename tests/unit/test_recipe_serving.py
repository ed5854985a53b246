"""Recipe serving hooks: which recipes declare one, and the tennis hook's names, rows and symmetry."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pandas as pd
import pytest
from pydantic import ValidationError

from keel.domain.recipes.serving import AmbiguousEntityError, InvalidRequestError, UnknownEntityError, serving_hook
from keel.domain.recipes.tennis import MatchFacts, TennisState, tennis_matches
from keel.domain.recipes.tennis_serving import TennisMatch, TennisService, normalise, tennis_service
from tests.unit.test_recipes import matches

NAMES = {
    1: "Alexander Zverev",
    2: "Mischa Zverev",
    3: "Jannik Sinner",
    4: "Carlos Alcaraz",
    5: "José Hernández",
    6: "Juan Martinez",
    7: "Juan Martinez",
}


def _service() -> TennisService:
    state = TennisState()
    day = dt.date(2024, 6, 1).toordinal()
    for player_id, name in NAMES.items():
        facts = MatchFacts(player_id, name, float(player_id), 1000.0, 25.0, 185.0, "R")
        other = MatchFacts(100 + player_id, f"Opponent {player_id}", 50.0, 100.0, 30.0, 180.0, "L")
        state.record(facts, other, day=day + player_id, surface="Hard")
    return TennisService(state)


def _match(**fields: Any) -> TennisMatch:
    return TennisMatch.model_validate(
        {"player_1": "Jannik Sinner", "player_2": "Carlos Alcaraz", "surface": "Clay"} | fields
    )


def test_only_recipes_that_declare_a_hook_get_one() -> None:
    assert serving_hook("tennis") is tennis_service
    assert serving_hook("tags") is None
    assert serving_hook(None) is None
    assert serving_hook(f"{__name__}:_recipe_with_hook") is _hook


def _hook(tables: Any, schema: Any) -> Any:
    return None


def _recipe_with_hook(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return tables["train"]


_recipe_with_hook.serving = _hook  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("sent", "player_id"),
    [
        ("Jannik Sinner", 3),
        ("  jannik   SINNER ", 3),
        ("Sinner", 3),
        ("J Sinner", 3),
        ("carlos alc", 4),
        ("Jose Hernandez", 5),  # accents ignored
        ("Alexander Zverev", 1),
        (4, 4),  # a player id
    ],
)
def test_a_name_resolves_to_one_player_by_full_name_part_or_id(sent: str | int, player_id: int) -> None:
    assert _service().resolve("player_1", sent) == player_id


def test_a_surname_shared_by_several_players_is_ambiguous_and_lists_them() -> None:
    with pytest.raises(AmbiguousEntityError) as caught:
        _service().resolve("player_2", "zverev")
    assert caught.value.status == 409
    assert caught.value.field == "player_2"
    assert caught.value.candidates == ["Mischa Zverev", "Alexander Zverev"]  # most recently active first


def test_two_players_with_the_same_name_are_told_apart_by_id() -> None:
    with pytest.raises(AmbiguousEntityError) as caught:
        _service().resolve("player_1", "Juan Martinez")
    assert caught.value.candidates == [
        "Juan Martinez (id 7, last match 2024-06-08)",
        "Juan Martinez (id 6, last match 2024-06-07)",
    ]
    assert "player id" in str(caught.value)


@pytest.mark.parametrize(("sent", "closest"), [("Jannik Siner", "Jannik Sinner"), ("Alcarez", "Carlos Alcaraz")])
def test_an_unknown_name_suggests_the_closest_known_names(sent: str, closest: str) -> None:
    with pytest.raises(UnknownEntityError) as caught:
        _service().resolve("player_1", sent)
    assert caught.value.status == 404
    assert caught.value.candidates[0] == closest
    assert closest in str(caught.value)


def test_an_unknown_id_is_not_found() -> None:
    with pytest.raises(UnknownEntityError, match="no player with id 999"):
        _service().resolve("player_1", 999)


def test_the_request_names_its_fields_and_refuses_a_bad_surface() -> None:
    match = _match(surface="clay", tourney_level="g", round="f")
    assert (match.surface, match.tourney_level, match.round) == ("Clay", "G", "F")
    with pytest.raises(ValidationError, match="surface"):
        _match(surface="Mud")
    with pytest.raises(ValidationError, match="extra"):
        _match(player_3="Rafael Nadal")


def test_rows_are_both_orders_and_refuse_the_same_player_twice_or_an_early_date() -> None:
    service = _service()
    as_sent, swapped = service.rows(_match())
    assert (as_sent["p1_name"], as_sent["p2_name"]) == ("Jannik Sinner", "Carlos Alcaraz")
    assert (swapped["p1_name"], swapped["p2_name"]) == ("Carlos Alcaraz", "Jannik Sinner")
    assert as_sent["best_of"] == 3.0  # not a Grand Slam: best of 3 unless sent
    assert service.rows(_match(tourney_level="G"))[0]["best_of"] == 5.0
    with pytest.raises(InvalidRequestError, match="both Jannik Sinner"):
        service.rows(_match(player_2="sinner"))
    with pytest.raises(InvalidRequestError, match="before the last match") as caught:
        service.rows(_match(date="2024-01-01"))
    assert caught.value.field == "date"


def test_the_answer_is_symmetric_by_construction() -> None:
    service = _service()

    def answer(first: str, second: str, p_as_sent: float, p_swapped: float) -> float:
        predictions = [
            {"probabilities": {"0": 1 - p_as_sent, "1": p_as_sent}, "warnings": []},
            {"probabilities": {"0": 1 - p_swapped, "1": p_swapped}, "warnings": []},
        ]
        document = service.respond(_match(player_1=first, player_2=second), predictions)
        assert document["player_1_win_probability"] + document["player_2_win_probability"] == 1.0
        return float(document["player_1_win_probability"])

    # A model that is not symmetric on its own (0.7 one way, 0.4 the other) still gives complementary answers.
    forward = answer("Jannik Sinner", "Carlos Alcaraz", 0.7, 0.4)
    backward = answer("Carlos Alcaraz", "Jannik Sinner", 0.4, 0.7)
    assert forward == pytest.approx(0.65)
    assert forward + backward == pytest.approx(1.0, abs=1e-15)


def test_the_served_row_is_the_row_the_recipe_builds_for_the_next_match() -> None:
    raw = matches()
    full = tennis_matches({"train": raw}).train
    before = tennis_matches({"train": raw.iloc[:-1]})
    service = tennis_service(before.artifacts, schema=None)  # type: ignore[arg-type]
    last, played = raw.iloc[-1], full.iloc[-1]
    request = _match(
        player_1=played["p1_name"],
        player_2=played["p2_name"],
        surface=last["surface"],
        tourney_level=last["tourney_level"],
        round=last["round"],
        best_of=int(last["best_of"]),
        date=pd.Timestamp(str(last["tourney_date"])).date().isoformat(),
    )
    served = service.rows(request)[0]
    for column in full.columns:
        if column in ("season", "tourney_date", "tourney_id", "match_num", "player_1_won"):
            continue
        expected, got = played[column], served[column]
        if column.endswith("age") or column == "age_diff":
            assert got == pytest.approx(expected, abs=0.1), column  # advanced to the match day
        elif isinstance(expected, float) and math.isnan(expected):
            assert math.isnan(got), column
        else:
            assert got == pytest.approx(expected), column


def test_names_are_matched_without_accents_case_or_punctuation() -> None:
    assert normalise("  Jo-Wilfried  TSONGA ") == "jo wilfried tsonga"
    assert normalise("Stan Wawrinka") == normalise("stan   wawrinka")
    assert normalise("Gaël Monfils") == "gael monfils"
