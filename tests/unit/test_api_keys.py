"""API keys: read only from the environment (or a file it names) and compared in constant time."""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Any

import pytest

from keel.errors import KeelError
from keel.serving import gateway as service


def test_keys_come_from_the_variable_and_the_file_it_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text("# rotated monthly\nfirst, second\n\nthird  # the new one\n", encoding="utf-8")
    monkeypatch.setenv("KEEL_API_KEYS", " env-one ,env-two,")
    monkeypatch.setenv("KEEL_API_KEYS_FILE", str(key_file))
    assert service.api_keys_from_environment() == ["env-one", "env-two", "first", "second", "third"]
    monkeypatch.delenv("KEEL_API_KEYS_FILE")
    monkeypatch.delenv("KEEL_API_KEYS")
    assert service.api_keys_from_environment() == []


def test_an_unreadable_or_empty_key_file_is_an_error_that_names_the_file_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEL_API_KEYS_FILE", str(tmp_path / "missing"))
    with pytest.raises(KeelError, match="cannot read the API key file"):
        service.api_keys_from_environment()
    empty = tmp_path / "empty"
    empty.write_text("# nothing yet\n", encoding="utf-8")
    monkeypatch.setenv("KEEL_API_KEYS_FILE", str(empty))
    with pytest.raises(KeelError, match="holds no API key"):
        service.api_keys_from_environment()
    binary = tmp_path / "binary"
    binary.write_bytes(b"secret-\xff-key")
    monkeypatch.setenv("KEEL_API_KEYS_FILE", str(binary))
    with pytest.raises(KeelError) as error:
        service.api_keys_from_environment()
    assert "secret" not in str(error.value).replace(str(binary), "")


def test_every_key_is_compared_with_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(service.hmac, "compare_digest", spy)
    gateway = service.Gateway(app=None, keys=[b"alpha", b"bravo", b"charlie"], metrics=None, known=frozenset())  # type: ignore[arg-type]
    assert gateway._authorised({"headers": [(b"authorization", b"Bearer alpha")]})
    assert [b for _, b in calls] == [b"alpha", b"bravo", b"charlie"]  # no early exit on the first match
    calls.clear()
    assert not gateway._authorised({"headers": [(b"x-api-key", b"delta")]})
    assert len(calls) == 3
    assert not gateway._authorised({"headers": []})
