"""The tennis recipe's serving hook: two player names and the match context in, P(player_1 wins) out.

The model version stores the :class:`~keel.domain.recipes.tennis.TennisState` after the last match of its data
(``recipe/players.parquet`` and ``recipe/head_to_head.parquet``). A request names two players and the match
(surface, level, round, best-of, optionally a date); each name is resolved to one player, and the feature row is
built by :meth:`TennisState.pre_match_features`, the very code that built the training rows, for a match played
after the last known one. Rank, points, height and hand are each player's last known values; age is advanced to
the match day.

The answer is symmetric by construction: the match is scored in both orders, ``(A, B)`` and ``(B, A)``, and
P(A wins) is the mean of ``p(A, B)`` and ``1 - p(B, A)``, so asking about ``(B, A)`` gives exactly the complement.
"""

from __future__ import annotations

import copy
import datetime as dt
import difflib
import math
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, StringConstraints

from keel.domain.recipes.serving import AmbiguousEntityError, InvalidRequestError, UnknownEntityError
from keel.domain.recipes.tennis import MatchFacts, PlayerState, TennisState
from keel.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

    from keel.domain.schema import FeatureSchema

SUGGESTIONS = 5
"""Closest known names given with an unknown player."""
MAX_CANDIDATES = 20
"""Matching players listed with an ambiguous name (the most recently active first)."""
DAYS_PER_YEAR = 365.25


def _title_case(value: Any) -> Any:
    return value.strip().capitalize() if isinstance(value, str) else value


def _upper_case(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


Surface = Annotated[Literal["Hard", "Clay", "Grass", "Carpet"], BeforeValidator(_title_case)]
Level = Annotated[Literal["G", "M", "A", "F", "D", "O"], BeforeValidator(_upper_case)]
Round = Annotated[
    Literal["Q1", "Q2", "Q3", "ER", "R128", "R64", "R32", "RR", "R16", "QF", "SF", "BR", "F"],
    BeforeValidator(_upper_case),
]
PlayerName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]

EXAMPLE: dict[str, Any] = {
    "player_1": "Jannik Sinner",
    "player_2": "Carlos Alcaraz",
    "surface": "Clay",
    "tourney_level": "G",
    "round": "F",
    "best_of": 5,
}


class TennisMatch(BaseModel):
    """A match to predict: two players (names as in the ATP files, or player ids) and what is known before it."""

    model_config = ConfigDict(extra="forbid", title="TennisMatch", json_schema_extra={"examples": [EXAMPLE]})

    player_1: PlayerName | StrictInt = Field(
        description="Full name ('Jannik Sinner'), a unique part of it ('Sinner'), or the player id"
    )
    player_2: PlayerName | StrictInt = Field(description="The opponent, the same way")
    surface: Surface = Field(description="Hard, Clay, Grass or Carpet")
    tourney_level: Level = Field(
        default="A",
        description="G Grand Slam, M Masters 1000, A other tour event, F Tour Finals, D Davis Cup, O Olympics",
    )
    round: Round = Field(default="R32", description="R128, R64, R32, R16, QF, SF, F, RR (round robin), …")
    best_of: Literal[3, 5] | None = Field(default=None, description="Sets; default 5 at a Grand Slam, else 3")
    date: dt.date | None = Field(
        default=None,
        description="Day of the match (ISO 8601); default the day after the last match in the model's data",
    )


class PlayerSummary(BaseModel):
    """The state a player was resolved to."""

    name: str
    player_id: int
    elo: float = Field(description="Overall Elo before the match")
    surface_elo: float = Field(description="Elo on the match's surface")
    rank: float | None = Field(description="Last known ATP rank")
    last_match: dt.date | None = Field(description="Day of the player's last match in the data")


class TennisPrediction(BaseModel):
    """P(player_1 wins), the same whichever order the players are sent in."""

    player_1: PlayerSummary
    player_2: PlayerSummary
    player_1_win_probability: float
    player_2_win_probability: float
    favourite: str = Field(description="The name of the more likely winner")
    match_date: dt.date = Field(description="The day the features were computed for")
    warnings: list[dict[str, str]] = Field(default_factory=list)
    explanation: dict[str, Any] | None = Field(default=None, description="With ?explain=true: for the order sent")


@dataclass(frozen=True)
class _Known:
    """One player as the name index sees them."""

    player_id: int
    name: str
    key: str
    tokens: tuple[str, ...]
    last_day: int


def normalise(name: str) -> str:
    """A name as matched: accents removed, case folded, punctuation turned into single spaces."""
    decomposed = unicodedata.normalize("NFKD", name)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    return " ".join("".join(ch if ch.isalnum() else " " for ch in plain).split())


class TennisService:
    """Resolves players and builds model rows from a stored :class:`TennisState`.

    Args:
        state: The state after the last match of the model's data.
    """

    request_type = TennisMatch
    response_type = TennisPrediction
    example = EXAMPLE

    def __init__(self, state: TennisState) -> None:
        if not state.players:
            raise DataError("the stored tennis player table is empty; retrain the model")
        self.state = state
        self.last_day = max((p.last_day for p in state.players.values() if p.last_day is not None), default=0)
        self.known = [
            _Known(p.player_id, p.name, normalise(p.name), tuple(normalise(p.name).split()), p.last_day or 0)
            for p in state.players.values()
            if p.name
        ]
        self.by_key: dict[str, list[_Known]] = {}
        for known in self.known:
            self.by_key.setdefault(known.key, []).append(known)

    # -- names -----------------------------------------------------------------------------------------------

    def resolve(self, field: str, value: str | int) -> int:
        """The id of the one player ``value`` names.

        A full name (accents and case ignored) wins; otherwise a part of the name must match exactly one player
        (``Sinner``, ``J Sinner``).

        Raises:
            UnknownEntityError: No player matches; the closest names are suggested.
            AmbiguousEntityError: Several players match; they are listed.
        """
        if isinstance(value, int):
            if value in self.state.players:
                return value
            raise UnknownEntityError(
                f"{field}: no player with id {value} in the model's data", field=field, value=str(value), candidates=[]
            )
        key = normalise(value)
        matches = self.by_key.get(key) or [k for k in self.known if self._partial(key, k)]
        if len(matches) == 1:
            return matches[0].player_id
        if not matches:
            suggestions = self.closest(key)
            hint = f"; closest known names: {', '.join(suggestions)}" if suggestions else ""
            raise UnknownEntityError(
                f"{field}: no player called {value!r} in the model's data{hint}",
                field=field,
                value=value,
                candidates=suggestions,
            )
        matches = sorted(matches, key=lambda k: (-k.last_day, k.name))
        names = self._labels(matches[:MAX_CANDIDATES])
        more = f" and {len(matches) - MAX_CANDIDATES} more" if len(matches) > MAX_CANDIDATES else ""
        raise AmbiguousEntityError(
            f"{field}: {value!r} matches {len(matches)} players ({', '.join(names)}{more}); send the full name "
            "or the player id",
            field=field,
            value=value,
            candidates=names,
        )

    @staticmethod
    def _partial(key: str, known: _Known) -> bool:
        if not key:
            return False
        if key in known.key:
            return True
        words = key.split()
        remaining = list(known.tokens)
        for word in words:  # every word starts a different word of the name, in order: "j sinner", "carlos alc"
            position = next((i for i, token in enumerate(remaining) if token.startswith(word)), None)
            if position is None:
                return False
            remaining = remaining[position + 1 :]
        return True

    def _labels(self, players: list[_Known]) -> list[str]:
        names = [p.name for p in players]
        return [
            f"{p.name} (id {p.player_id}, last match {_date(p.last_day)})" if names.count(p.name) > 1 else p.name
            for p in players
        ]

    def closest(self, key: str) -> list[str]:
        """The known names closest to ``key`` (a full name or a surname with a typo), best first."""
        scored: dict[int, tuple[float, _Known]] = {}
        matcher = difflib.SequenceMatcher(b=key, autojunk=False)
        for known in self.known:
            best = 0.0
            # The whole name, and each ending of it ("sinner", "del potro"): a typo in a surname alone matches too.
            for candidate in {known.key, *(" ".join(known.tokens[i:]) for i in range(1, len(known.tokens)))}:
                matcher.set_seq1(candidate)
                if matcher.real_quick_ratio() > best and matcher.quick_ratio() > best:
                    best = max(best, matcher.ratio())
            if best >= 0.6:
                scored[known.player_id] = (best, known)
        ranked = sorted(scored.values(), key=lambda item: (-item[0], -item[1].last_day, item[1].name))
        return self._labels([known for _, known in ranked[:SUGGESTIONS]])

    # -- rows ------------------------------------------------------------------------------------------------

    def match_day(self, request: TennisMatch) -> int:
        """The ordinal day of the match (the day after the last known match unless the request gives one).

        Raises:
            InvalidRequestError: The date is before the last match in the data (the stored state already includes later
                results, so features for that day would see the future).
        """
        if request.date is None:
            return self.last_day + 1
        day = request.date.toordinal()
        if day < self.last_day:
            raise InvalidRequestError(
                f"{request.date.isoformat()} is before the last match in the model's data ({_date(self.last_day)}); "
                "the stored state would include later results. Send a later date or leave it out",
                field="date",
            )
        return day

    def rows(self, request: TennisMatch) -> list[dict[str, Any]]:
        """The model rows for the match in both orders: ``[(player_1, player_2), (player_2, player_1)]``.

        Raises:
            UnknownEntityError: A player is not in the data.
            AmbiguousEntityError: A name matches several players.
            InvalidRequestError: Both names are the same player, or the date is too early.
        """
        first = self.resolve("player_1", request.player_1)
        second = self.resolve("player_2", request.player_2)
        if first == second:
            name = self.state.players[first].name
            raise InvalidRequestError(f"player_1 and player_2 are both {name}; send two different players")
        day = self.match_day(request)
        best_of = request.best_of or (5 if request.tourney_level == "G" else 3)
        return [self._row(first, second, request, day, best_of), self._row(second, first, request, day, best_of)]

    def _row(self, one: int, two: int, request: TennisMatch, day: int, best_of: int) -> dict[str, Any]:
        # A private state holding copies of the two players: building the row prunes their activity windows, and
        # the shared state must stay read-only while requests run concurrently.
        private = TennisState()
        for player_id in (one, two):
            private.players[player_id] = _copy_player(self.state.players[player_id])
        for pair in ((one, two), (two, one)):
            if pair in self.state.head_to_head:
                private.head_to_head[pair] = self.state.head_to_head[pair]
        row = private.pre_match_features(
            self._facts(one, day),
            self._facts(two, day),
            day=day,
            surface=request.surface,
            tourney_level=request.tourney_level,
            round_name=request.round,
            best_of=float(best_of),
        )
        row.update(p1_id=one, p2_id=two, p1_name=self.state.players[one].name, p2_name=self.state.players[two].name)
        return row

    def _facts(self, player_id: int, day: int) -> MatchFacts:
        player = self.state.players[player_id]
        age = player.age
        if player.last_day is not None and not math.isnan(age):
            age += (day - player.last_day) / DAYS_PER_YEAR
        return MatchFacts(player_id, player.name, player.rank, player.rank_points, age, player.height, player.hand)

    # -- answer ----------------------------------------------------------------------------------------------

    def respond(self, request: TennisMatch, predictions: list[dict[str, Any]]) -> dict[str, Any]:
        """P(player_1 wins) as the mean of the two orders' answers, with the players it was computed for."""
        as_sent, swapped = predictions
        p = (_positive(as_sent) + 1.0 - _positive(swapped)) / 2.0
        first = self.resolve("player_1", request.player_1)
        second = self.resolve("player_2", request.player_2)
        day = self.match_day(request)
        answer: dict[str, Any] = {
            "player_1": self._summary(first, request.surface),
            "player_2": self._summary(second, request.surface),
            "player_1_win_probability": p,
            "player_2_win_probability": 1.0 - p,
            "favourite": self.state.players[first if p >= 0.5 else second].name,
            "match_date": _date(day),
            "warnings": _unique(as_sent["warnings"] + swapped["warnings"]),
        }
        if "explanation" in as_sent:
            answer["explanation"] = as_sent["explanation"]
        return answer

    def _summary(self, player_id: int, surface: str) -> dict[str, Any]:
        player = self.state.players[player_id]
        return {
            "name": player.name,
            "player_id": player_id,
            "elo": player.elo,
            "surface_elo": player.surface_elo.get(surface, 1500.0),
            "rank": None if math.isnan(player.rank) else player.rank,
            "last_match": None if player.last_day is None else _date(player.last_day),
        }


def _positive(prediction: dict[str, Any]) -> float:
    probabilities = prediction["probabilities"]
    return float(probabilities.get("1", probabilities.get("True", math.nan)))


def _unique(warnings: list[dict[str, str]]) -> list[dict[str, str]]:
    seen: list[dict[str, str]] = []
    for warning in warnings:
        if warning not in seen:
            seen.append(warning)
    return seen


def _date(day: int) -> str:
    return dt.date.fromordinal(day).isoformat() if day > 0 else "unknown"


def _copy_player(player: PlayerState) -> PlayerState:
    clone = copy.copy(player)
    clone.dates = copy.copy(player.dates)
    return clone


def tennis_service(tables: Mapping[str, pd.DataFrame], schema: FeatureSchema) -> TennisService:
    """The serving hook of the ``tennis`` recipe: restores the stored state.

    Args:
        tables: The version's recipe tables; ``players`` and ``head_to_head`` are used.
        schema: The feature schema (unused: the rows have the recipe's own columns).

    Raises:
        DataError: A table is missing (the version was trained before the state was stored).
    """
    del schema
    missing = [name for name in ("players", "head_to_head") if name not in tables]
    if missing:
        raise DataError(
            f"the tennis model version has no stored {' or '.join(missing)} table (recipe/*.parquet); "
            "retrain it with `keel train configs/tennis.yaml`"
        )
    return TennisService(TennisState.from_tables(tables["players"], tables["head_to_head"]))
