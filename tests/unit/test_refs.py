from __future__ import annotations

import pytest

from keel.domain.refs import ModelRef, parse_ref
from keel.errors import RegistryError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("adult-income", ModelRef("adult-income", alias="champion")),
        ("adult-income@challenger", ModelRef("adult-income", alias="challenger")),
        ("adult-income:3", ModelRef("adult-income", version=3)),
    ],
)
def test_references(text: str, expected: ModelRef) -> None:
    assert parse_ref(text) == expected


@pytest.mark.parametrize("text", ["", "a b", "name@", "name:x", "@champion"])
def test_malformed_references_say_how_to_write_one(text: str) -> None:
    with pytest.raises(RegistryError, match="NAME@ALIAS"):
        parse_ref(text)
