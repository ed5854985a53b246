"""ATP matches → one row per match with pre-match features only, for predicting the winner.

The input is Jeff Sackmann's tour-level match files (``atp_matches_YYYY.csv``, one row per match, winner and loser
columns). Matches are replayed in order (tournament date, tournament, round, match number); each match's features
are read from :class:`TennisState` *before* the match is added to it, so a row only ever depends on earlier
matches. Rank, rank points and age come from the match row itself: the files give them as of the tournament's
start, which is known before the match.

Which of the two players becomes ``player_1`` is decided by a seeded coin per match, so the target
``player_1_won`` is balanced and the model cannot learn "the first column is the winner".

The same :class:`TennisState` is what a service needs: :meth:`TennisState.to_tables` gives the ``players`` and
``head_to_head`` tables stored with the model version, :meth:`TennisState.from_tables` restores them, and
:meth:`TennisState.pre_match_features` builds a feature row for any two known players (the serving hook).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keel.domain.recipes import RecipeResult
from keel.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

REQUIRED_COLUMNS = (
    "tourney_id",
    "surface",
    "tourney_level",
    "tourney_date",
    "match_num",
    "round",
    "best_of",
    "score",
    *(f"{side}_{name}" for side in ("winner", "loser") for name in ("id", "name", "hand", "ht", "age", "rank")),
    "winner_rank_points",
    "loser_rank_points",
)
ROUND_ORDER: Mapping[str, float] = {
    "Q1": 0,
    "Q2": 1,
    "Q3": 2,
    "ER": 3,
    "R128": 4,
    "R64": 5,
    "R32": 6,
    "RR": 6.5,
    "R16": 7,
    "QF": 8,
    "SF": 9,
    "BR": 9.5,
    "F": 10,
}
INITIAL_ELO = 1500.0
PLAIN_K = 32.0
"""The plain Elo (the baseline) uses this constant K."""
RECENT_MATCHES = 10
"""Recent form is the share of wins over this many last matches."""
ACTIVITY_DAYS = 365
"""Activity is the number of matches played in this many days before the match."""
SERVE_WEIGHT = 0.1
"""Weight of the newest match in the moving averages of serve and return points won."""

MATCH_CONTEXT = ("surface", "tourney_level", "round", "best_of")
"""Columns describing the match itself (known before it starts); a service request supplies them."""


def _expected(rating: float, opponent: float) -> float:
    return 1.0 / (1.0 + math.pow(10.0, (opponent - rating) / 400.0))


def _k_factor(matches: int) -> float:
    # FiveThirtyEight's decaying K: new players' ratings move fast, established ones slowly.
    return 250.0 / math.pow(matches + 5, 0.4)


@dataclass
class PlayerState:
    """What is known about one player before their next match.

    Attributes:
        player_id: Sackmann's player id.
        name: Full name as in the match files.
        elo: Overall Elo (decaying K).
        plain_elo: Overall Elo with a constant K (the baseline's rating).
        matches: Matches played (in the data replayed).
        surface_elo: Elo per surface.
        surface_matches: Matches per surface.
        recent: Last results, 1 for a win, newest last.
        dates: Days (ordinal) of the matches in the activity window, oldest first.
        last_day: Day (ordinal) of the last match.
        rank: Rank at the last match's tournament.
        rank_points: Rank points at the last match's tournament.
        age: Age in years at the last match's tournament.
        height: Height in cm.
        hand: ``R``, ``L`` or ``U``.
        serve_won: Moving average of the share of serve points won (matches with statistics).
        return_won: Moving average of the share of return points won.
    """

    player_id: int
    name: str = ""
    elo: float = INITIAL_ELO
    plain_elo: float = INITIAL_ELO
    matches: int = 0
    surface_elo: dict[str, float] = field(default_factory=dict)
    surface_matches: dict[str, int] = field(default_factory=dict)
    recent: deque[int] = field(default_factory=lambda: deque(maxlen=RECENT_MATCHES))
    dates: deque[int] = field(default_factory=deque)
    last_day: int | None = None
    rank: float = math.nan
    rank_points: float = math.nan
    age: float = math.nan
    height: float = math.nan
    hand: str | None = None
    serve_won: float = math.nan
    return_won: float = math.nan


@dataclass
class MatchFacts:
    """One player's side of a match as the files give it before play (rank, points and age as of the event)."""

    player_id: int
    name: str
    rank: float
    rank_points: float
    age: float
    height: float
    hand: str | None


class TennisState:
    """Ratings, form and head-to-head records built from matches replayed in order."""

    def __init__(self) -> None:
        self.players: dict[int, PlayerState] = {}
        self.head_to_head: dict[tuple[int, int], int] = {}

    def player(self, player_id: int) -> PlayerState:
        """The state of a player (a new, unrated one if never seen)."""
        state = self.players.get(player_id)
        if state is None:
            state = self.players[player_id] = PlayerState(player_id)
        return state

    def pre_match_features(
        self,
        player_1: MatchFacts,
        player_2: MatchFacts,
        *,
        day: int,
        surface: str,
        tourney_level: str,
        round_name: str,
        best_of: float,
    ) -> dict[str, Any]:
        """The feature row for a match about to be played, from the state as it is now.

        Args:
            player_1: Facts about the first player (rank, points and age as of the event; missing as NaN).
            player_2: Facts about the second player.
            day: The day of the match (proleptic Gregorian ordinal).
            surface: ``Hard``, ``Clay``, ``Grass`` or ``Carpet``.
            tourney_level: Sackmann's level code (``G``, ``M``, ``A``, ``F``, ``D``, ``O``).
            round_name: ``R128`` … ``F``, ``RR``.
            best_of: 3 or 5.

        Returns:
            Column → value, the same columns the recipe's model table has (without target and bookkeeping).
        """
        row: dict[str, Any] = {
            "surface": surface,
            "tourney_level": tourney_level,
            "round": round_name,
            "best_of": best_of,
        }
        sides = (("p1", player_1), ("p2", player_2))
        states = {prefix: self.player(facts.player_id) for prefix, facts in sides}
        for prefix, facts in sides:
            state = states[prefix]
            while state.dates and state.dates[0] < day - ACTIVITY_DAYS:
                state.dates.popleft()
            row[f"{prefix}_elo"] = state.elo
            row[f"{prefix}_surface_elo"] = state.surface_elo.get(surface, INITIAL_ELO)
            row[f"{prefix}_matches"] = state.matches
            row[f"{prefix}_surface_matches"] = state.surface_matches.get(surface, 0)
            row[f"{prefix}_recent_win_rate"] = sum(state.recent) / len(state.recent) if state.recent else math.nan
            row[f"{prefix}_matches_last_year"] = len(state.dates)
            row[f"{prefix}_days_since_last"] = math.nan if state.last_day is None else float(day - state.last_day)
            row[f"{prefix}_rank"] = facts.rank
            row[f"{prefix}_rank_points"] = facts.rank_points
            row[f"{prefix}_age"] = facts.age
            row[f"{prefix}_height"] = facts.height if not math.isnan(facts.height) else state.height
            row[f"{prefix}_hand"] = facts.hand or state.hand
            row[f"{prefix}_serve_won"] = state.serve_won
            row[f"{prefix}_return_won"] = state.return_won
        p1, p2 = states["p1"], states["p2"]
        row["elo_diff"] = p1.elo - p2.elo
        row["elo_p1_win_prob"] = _expected(p1.elo, p2.elo)
        row["surface_elo_diff"] = row["p1_surface_elo"] - row["p2_surface_elo"]
        row["surface_elo_p1_win_prob"] = _expected(row["p1_surface_elo"], row["p2_surface_elo"])
        ranked = player_1.rank > 0 < player_2.rank
        row["log_rank_ratio"] = math.log(player_2.rank / player_1.rank) if ranked else math.nan
        row["rank_points_diff"] = player_1.rank_points - player_2.rank_points
        row["age_diff"] = player_1.age - player_2.age
        # Points: p1's serve against p2's return, and the other way round.
        row["serve_edge"] = (p1.serve_won - p2.return_won) - (p2.serve_won - p1.return_won)
        row["h2h_p1_wins"] = self.head_to_head.get((player_1.player_id, player_2.player_id), 0)
        row["h2h_p2_wins"] = self.head_to_head.get((player_2.player_id, player_1.player_id), 0)
        # Baselines (not features): a plain constant-K Elo, and "the better-ranked player wins" (unranked is worst).
        row["plain_elo_p1_win_prob"] = _expected(p1.plain_elo, p2.plain_elo)
        rank_1 = player_1.rank if player_1.rank > 0 else math.inf
        rank_2 = player_2.rank if player_2.rank > 0 else math.inf
        row["better_ranked_p1_wins"] = int(rank_1 < rank_2) if rank_1 != rank_2 else int(p1.elo >= p2.elo)
        return row

    def record(
        self,
        winner: MatchFacts,
        loser: MatchFacts,
        *,
        day: int,
        surface: str,
        serve: tuple[float, float, float, float] | None = None,
    ) -> None:
        """Add a played match to the state (after its features were read).

        Args:
            winner: The winner's facts.
            loser: The loser's facts.
            day: Day of the match (ordinal).
            surface: Surface.
            serve: ``(winner serve points, winner serve points won, loser serve points, loser serve points won)``
                when the match has statistics.
        """
        w, lo = self.player(winner.player_id), self.player(loser.player_id)
        if serve is not None and all(not math.isnan(v) for v in serve) and serve[0] > 0 and serve[2] > 0:
            w_points, w_won, l_points, l_won = serve
            _blend(w, "serve_won", w_won / w_points)
            _blend(w, "return_won", 1 - l_won / l_points)
            _blend(lo, "serve_won", l_won / l_points)
            _blend(lo, "return_won", 1 - w_won / w_points)
        expected_w = _expected(w.elo, lo.elo)
        k_w, k_l = _k_factor(w.matches), _k_factor(lo.matches)
        w.elo, lo.elo = w.elo + k_w * (1 - expected_w), lo.elo - k_l * (1 - expected_w)
        plain = PLAIN_K * (1 - _expected(w.plain_elo, lo.plain_elo))
        w.plain_elo, lo.plain_elo = w.plain_elo + plain, lo.plain_elo - plain
        sw, sl = w.surface_elo.get(surface, INITIAL_ELO), lo.surface_elo.get(surface, INITIAL_ELO)
        expected_sw = _expected(sw, sl)
        k_sw, k_sl = _k_factor(w.surface_matches.get(surface, 0)), _k_factor(lo.surface_matches.get(surface, 0))
        w.surface_elo[surface], lo.surface_elo[surface] = sw + k_sw * (1 - expected_sw), sl - k_sl * (1 - expected_sw)
        for state, facts, won in ((w, winner, 1), (lo, loser, 0)):
            state.matches += 1
            state.surface_matches[surface] = state.surface_matches.get(surface, 0) + 1
            state.recent.append(won)
            state.dates.append(day)
            state.last_day = day
            state.name = facts.name or state.name
            for attribute in ("rank", "rank_points", "age", "height"):
                value = getattr(facts, attribute)
                if not math.isnan(value):
                    setattr(state, attribute, value)
            state.hand = facts.hand or state.hand
        key = (winner.player_id, loser.player_id)
        self.head_to_head[key] = self.head_to_head.get(key, 0) + 1

    def to_tables(self) -> dict[str, pd.DataFrame]:
        """The state as two tables: ``players`` (one row per player) and ``head_to_head`` (wins per ordered pair).

        ``players`` holds what a service needs to build a request's features: ratings overall and per surface,
        counts, recent results, the days of the last year's matches, and the last known rank, points, age (with
        the day it was true), height and hand.
        """
        import pandas as pd

        surfaces = sorted({s for p in self.players.values() for s in p.surface_elo})
        rows = []
        for p in self.players.values():
            row: dict[str, Any] = {
                "player_id": p.player_id,
                "name": p.name,
                "elo": p.elo,
                "plain_elo": p.plain_elo,
                "matches": p.matches,
                "recent": "".join(str(r) for r in p.recent),
                "dates": " ".join(str(d) for d in p.dates),
                "last_day": p.last_day,
                "rank": p.rank,
                "rank_points": p.rank_points,
                "age": p.age,
                "height": p.height,
                "hand": p.hand,
                "serve_won": p.serve_won,
                "return_won": p.return_won,
            }
            for surface in surfaces:
                row[f"elo_{surface}"] = p.surface_elo.get(surface, math.nan)
                row[f"matches_{surface}"] = p.surface_matches.get(surface, 0)
            rows.append(row)
        players = pd.DataFrame(rows).sort_values("player_id", kind="stable").reset_index(drop=True)
        head_to_head = pd.DataFrame(
            [{"player_id": a, "opponent_id": b, "wins": n} for (a, b), n in sorted(self.head_to_head.items())],
            columns=["player_id", "opponent_id", "wins"],
        )
        return {"players": players, "head_to_head": head_to_head}

    @classmethod
    def from_tables(cls, players: pd.DataFrame, head_to_head: pd.DataFrame) -> TennisState:
        """Restore the state saved by :meth:`to_tables` (e.g. from a model version's ``recipe/`` files)."""
        state = cls()
        surfaces = [c.removeprefix("elo_") for c in players.columns if c.startswith("elo_")]
        for row in players.to_dict("records"):
            p = state.player(int(row["player_id"]))
            p.name = str(row["name"])
            p.elo, p.plain_elo, p.matches = float(row["elo"]), float(row["plain_elo"]), int(row["matches"])
            for surface in surfaces:
                if not _missing(row[f"elo_{surface}"]):
                    p.surface_elo[surface] = float(row[f"elo_{surface}"])
                if int(row[f"matches_{surface}"]):
                    p.surface_matches[surface] = int(row[f"matches_{surface}"])
            p.recent.extend(int(c) for c in str(row["recent"] or ""))
            p.dates.extend(int(d) for d in str(row["dates"] or "").split())
            p.last_day = None if _missing(row["last_day"]) else int(row["last_day"])
            p.rank, p.rank_points = float(row["rank"]), float(row["rank_points"])
            p.age, p.height = float(row["age"]), float(row["height"])
            p.hand = None if _missing(row["hand"]) else str(row["hand"])
            p.serve_won, p.return_won = float(row["serve_won"]), float(row["return_won"])
        for row in head_to_head.to_dict("records"):
            state.head_to_head[(int(row["player_id"]), int(row["opponent_id"]))] = int(row["wins"])
        return state


def _blend(state: PlayerState, attribute: str, value: float) -> None:
    old = getattr(state, attribute)
    setattr(state, attribute, value if math.isnan(old) else (1 - SERVE_WEIGHT) * old + SERVE_WEIGHT * value)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


def tennis_matches(tables: Mapping[str, pd.DataFrame], seed: int = 2024) -> RecipeResult:
    """Turn ATP match rows into the model table: one row per match, pre-match features only.

    Walkovers (``W/O`` in the score) were never played: they are dropped and do not move ratings.

    Args:
        tables: Raw tables; ``train`` holds the matches (all years stacked).
        seed: Seed of the coin deciding which player is ``player_1``.

    Returns:
        The model table (target ``player_1_won``; bookkeeping columns ``season``, ``tourney_date``,
        ``tourney_id``, ``match_num``, ``p1_id``, ``p2_id``, ``p1_name``, ``p2_name``; baseline columns
        ``plain_elo_p1_win_prob`` and ``better_ranked_p1_wins``) and the ``players`` and ``head_to_head`` tables
        of the state after the last match.

    Raises:
        DataError: A required column is missing or a date cannot be read.
    """
    import numpy as np
    import pandas as pd

    matches = tables["train"]
    missing = [c for c in REQUIRED_COLUMNS if c not in matches.columns]
    if missing:
        raise DataError(
            f"the tennis recipe needs Sackmann's atp_matches columns; missing: {', '.join(missing)} "
            f"(the table has {', '.join(map(str, matches.columns[:12]))} …)"
        )
    dates = pd.to_datetime(matches["tourney_date"].astype("string"), format="%Y%m%d", errors="coerce")
    if dates.isna().any():
        bad = matches.loc[dates.isna(), "tourney_date"].astype(str).unique()[:5].tolist()
        raise DataError(f"tourney_date: {int(dates.isna().sum()):,} value(s) are not YYYYMMDD dates, e.g. {bad}")
    frame = matches.assign(
        _day=[d.toordinal() for d in dates],
        _round=matches["round"].map(ROUND_ORDER).fillna(6.0),
    )
    walkover = frame["score"].astype("string").str.contains("W/O", case=False, na=False).to_numpy()
    frame = (
        frame.loc[~walkover]
        .sort_values(["_day", "tourney_id", "_round", "match_num"], kind="stable")
        .reset_index(drop=True)
    )
    coins = np.random.default_rng(seed).random(len(frame)) < 0.5
    state = TennisState()
    rows = []
    records: list[dict[str, Any]] = frame.to_dict("records")  # type: ignore[assignment]
    for index, match in enumerate(records):
        winner, loser = _facts(match, "winner"), _facts(match, "loser")
        surface = str(match["surface"]) if not _missing(match["surface"]) else "Unknown"
        first_wins = bool(coins[index])
        player_1, player_2 = (winner, loser) if first_wins else (loser, winner)
        row = state.pre_match_features(
            player_1,
            player_2,
            day=int(match["_day"]),
            surface=surface,
            tourney_level=str(match["tourney_level"]),
            round_name=str(match["round"]),
            best_of=_number(match["best_of"]),
        )
        row.update(
            season=int(str(match["tourney_id"])[:4]) if str(match["tourney_id"])[:4].isdigit() else dates.iloc[0].year,
            tourney_date=int(match["tourney_date"]),
            tourney_id=str(match["tourney_id"]),
            match_num=int(match["match_num"]),
            p1_id=player_1.player_id,
            p2_id=player_2.player_id,
            p1_name=player_1.name,
            p2_name=player_2.name,
            player_1_won=int(first_wins),
        )
        rows.append(row)
        serve = (
            _number(match.get("w_svpt")),
            _number(match.get("w_1stWon")) + _number(match.get("w_2ndWon")),
            _number(match.get("l_svpt")),
            _number(match.get("l_1stWon")) + _number(match.get("l_2ndWon")),
        )
        state.record(winner, loser, day=int(match["_day"]), surface=surface, serve=serve)
    table = pd.DataFrame(rows)
    notes = [f"tennis: {len(table):,} matches replayed; {int(walkover.sum()):,} walkover(s) dropped"]
    return RecipeResult(train=table, artifacts=state.to_tables(), notes=notes)


def _facts(match: Mapping[str, Any], side: str) -> MatchFacts:
    hand = match[f"{side}_hand"]
    return MatchFacts(
        player_id=int(match[f"{side}_id"]),
        name=str(match[f"{side}_name"]),
        rank=_number(match[f"{side}_rank"]),
        rank_points=_number(match[f"{side}_rank_points"]),
        age=_number(match[f"{side}_age"]),
        height=_number(match[f"{side}_ht"]),
        hand=None if _missing(hand) else str(hand),
    )
