"""Dataset recipes: lookup by name or module:function, and the tennis recipe's promise of no leakage."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from keel.domain.recipes import RecipeResult, apply_recipe, resolve_recipe
from keel.domain.recipes.tags import add_slices
from keel.domain.recipes.tennis import MatchFacts, TennisState, tennis_matches
from keel.errors import ConfigError, DataError

PLAYERS = ["Ann", "Bea", "Cid", "Dan", "Eve", "Fay"]
BOOKKEEPING = {"tourney_id", "tourney_date", "match_num", "season", "player_1_won"}


def matches(rows: int = 240, seed: int = 0) -> pd.DataFrame:
    """Sackmann-like match rows: a few players, weekly tournaments, a skill order that mostly decides."""
    rng = np.random.default_rng(seed)
    records = []
    for index in range(rows):
        week = index // 6
        a, b = rng.choice(len(PLAYERS), size=2, replace=False)
        winner, loser = (a, b) if (a < b) == (rng.random() < 0.8) else (b, a)
        day = pd.Timestamp("2020-01-06") + pd.Timedelta(weeks=week)
        records.append(
            {
                "tourney_id": f"{day.year}-{week:04d}",
                "surface": ["Hard", "Clay", "Grass"][week % 3],
                "tourney_level": "A",
                "tourney_date": int(day.strftime("%Y%m%d")),
                "match_num": index % 6,
                "round": ["R16", "R16", "QF", "QF", "SF", "F"][index % 6],
                "best_of": 3,
                "score": "6-4 6-4",
                **_side("winner", winner),
                **_side("loser", loser),
            }
        )
    return pd.DataFrame(records)


def _side(side: str, player: int) -> dict[str, object]:
    return {
        f"{side}_id": 100 + player,
        f"{side}_name": PLAYERS[player],
        f"{side}_hand": "R" if player % 2 else "L",
        f"{side}_ht": 180 + player,
        f"{side}_age": 20.0 + player,
        f"{side}_rank": float(player + 1),
        f"{side}_rank_points": 1000.0 - 100 * player,
    }


def feature_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c not in BOOKKEEPING]


def test_a_later_result_never_changes_an_earlier_matchs_features() -> None:
    raw = matches()
    before = tennis_matches({"train": raw}).train
    cut = 150
    changed = raw.copy()
    # Swap winner and loser of every match from the cut on: later results change, earlier ones do not.
    winner_cols = [c for c in raw.columns if c.startswith("winner_")]
    for column in winner_cols:
        other = column.replace("winner_", "loser_")
        changed.loc[cut:, [column, other]] = raw.loc[cut:, [other, column]].to_numpy()
    after = tennis_matches({"train": changed}).train
    columns = feature_columns(before)
    pd.testing.assert_frame_equal(before.loc[: cut - 1, columns], after.loc[: cut - 1, columns])
    # ... and the perturbation is real: ratings after the cut do move.
    assert not np.allclose(before.loc[cut + 20 :, "elo_diff"], after.loc[cut + 20 :, "elo_diff"])


def test_a_match_sees_only_earlier_matches_in_its_ratings_and_head_to_head() -> None:
    table = tennis_matches({"train": matches()}).train
    first = table.iloc[0]
    assert first["p1_elo"] == first["p2_elo"] == 1500.0
    assert first["p1_matches"] == first["p2_matches"] == 0
    assert first["h2h_p1_wins"] == first["h2h_p2_wins"] == 0
    assert math.isnan(first["p1_recent_win_rate"])


def test_players_are_assigned_by_a_seeded_coin() -> None:
    raw = matches(rows=600)
    one = tennis_matches({"train": raw}, seed=1).train
    again = tennis_matches({"train": raw}, seed=1).train
    other = tennis_matches({"train": raw}, seed=2).train
    pd.testing.assert_frame_equal(one, again)
    assert not one["player_1_won"].equals(other["player_1_won"])
    assert 0.4 < one["player_1_won"].mean() < 0.6


def test_walkovers_are_dropped_and_do_not_move_ratings() -> None:
    raw = matches(rows=60)
    with_walkover = raw.copy()
    with_walkover.loc[10, "score"] = "W/O"
    result = tennis_matches({"train": with_walkover})
    assert len(result.train) == len(raw) - 1
    assert "1 walkover" in result.notes[0]


def test_the_stored_player_state_rebuilds_the_same_features_for_a_service() -> None:
    raw = matches()
    result = tennis_matches({"train": raw})
    assert set(result.artifacts) == {"players", "head_to_head"}
    restored = TennisState.from_tables(result.artifacts["players"], result.artifacts["head_to_head"])
    replayed = TennisState()  # the live state, built by replaying the same matches
    for record in raw.to_dict("records"):
        day = pd.Timestamp(str(record["tourney_date"])).toordinal()
        replayed.record(_facts(record, "winner"), _facts(record, "loser"), day=day, surface=record["surface"])
    request = {"day": pd.Timestamp("2021-01-04").toordinal(), "surface": "Clay", "tourney_level": "G"}
    ann, bea = _facts_for(restored, 100), _facts_for(restored, 101)
    live = replayed.pre_match_features(ann, bea, round_name="F", best_of=5, **request)
    stored = restored.pre_match_features(ann, bea, round_name="F", best_of=5, **request)
    assert _same(live, stored)
    assert live["h2h_p1_wins"] + live["h2h_p2_wins"] > 0


def _same(left: dict[str, object], right: dict[str, object]) -> bool:
    assert left.keys() == right.keys()
    for key in left:
        a, b = left[key], right[key]
        if isinstance(a, float) and math.isnan(a):
            assert isinstance(b, float), key
            assert math.isnan(b), key
        else:
            assert a == pytest.approx(b), key
    return True


def _facts(record: dict[str, object], side: str) -> MatchFacts:
    return MatchFacts(
        player_id=int(record[f"{side}_id"]),  # type: ignore[call-overload]
        name=str(record[f"{side}_name"]),
        rank=float(record[f"{side}_rank"]),  # type: ignore[arg-type]
        rank_points=float(record[f"{side}_rank_points"]),  # type: ignore[arg-type]
        age=float(record[f"{side}_age"]),  # type: ignore[arg-type]
        height=float(record[f"{side}_ht"]),  # type: ignore[arg-type]
        hand=str(record[f"{side}_hand"]),
    )


def _facts_for(state: TennisState, player_id: int) -> MatchFacts:
    player = state.players[player_id]
    return MatchFacts(player_id, player.name, player.rank, player.rank_points, player.age, player.height, player.hand)


def test_the_recipe_names_missing_columns() -> None:
    with pytest.raises(DataError, match="winner_id"):
        tennis_matches({"train": matches().drop(columns=["winner_id"])})


def test_recipes_resolve_by_name_or_module_function() -> None:
    assert resolve_recipe("tennis") is tennis_matches
    assert resolve_recipe("keel.domain.recipes.tennis:tennis_matches") is tennis_matches
    with pytest.raises(ConfigError, match="no recipe called 'tenis'"):
        resolve_recipe("tenis")
    with pytest.raises(ConfigError, match="has no function"):
        resolve_recipe("keel.domain.recipes.tennis:nothing_here")


def test_unknown_recipe_parameters_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"recipe_params.*sed.*accepts: seed"):
        apply_recipe("tennis", {"train": matches(rows=12)}, {"sed": 3})


def test_a_recipe_may_return_a_bare_table() -> None:
    result = apply_recipe("tests.unit.test_recipes:_double", {"train": pd.DataFrame({"a": [1, 2]})}, {})
    assert isinstance(result, RecipeResult)
    assert result.train["a"].tolist() == [2, 4]


def _double(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return tables["train"] * 2


def test_tags_slices_mark_short_texts_and_framework_mentions() -> None:
    frame = pd.DataFrame(
        {
            "title": ["BERT in PyTorch", "A long study of transformers for very many languages and tasks"],
            "description": ["Fine-tuning.", "We compare models across corpora without naming any library at all."],
        }
    )
    sliced = add_slices(frame)
    assert sliced["text_length"].tolist() == ["short", "long"]
    assert sliced["mentions_framework"].tolist() == ["yes", "no"]
