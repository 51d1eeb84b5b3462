"""API tokens are refused when short or holding spaces: an empty or blank token in the settings would match
a blank ``Authorization: Bearer`` value (compose substitutes an unset variable with nothing)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from controller.settings import MIN_TOKEN_LENGTH, ApiSettings


@pytest.mark.parametrize(
    ("field", "token"),
    [("tokens", ""), ("tokens", "x" * (MIN_TOKEN_LENGTH - 1)), ("worker_tokens", " " * 20),
     ("worker_tokens", "abcdefgh ijklmnopq")],
)  # fmt: skip
def test_weak_tokens_are_refused_naming_the_field(field: str, token: str) -> None:
    with pytest.raises(ValidationError, match=rf"{field}\.0: a token needs at least {MIN_TOKEN_LENGTH}"):
        ApiSettings.model_validate({field: [token]})


def test_a_long_token_is_accepted() -> None:
    settings = ApiSettings.model_validate({"tokens": ["a" * MIN_TOKEN_LENGTH], "worker_tokens": ["b" * 40]})
    assert len(settings.tokens) == len(settings.worker_tokens) == 1
