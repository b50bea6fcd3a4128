"""Redaction: registered secrets and secret-looking fields never survive into text we print."""

from __future__ import annotations

import pytest

from pipelinectl.redact import REDACTED, redact, register_secret


@pytest.mark.parametrize(
    "text, gone",
    [
        ("Authorization: Bearer abc.def.ghi", "abc.def.ghi"),
        ("authorization=Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
        ('{"token": "t-123456"}', "t-123456"),
        ("password=hunter2-long", "hunter2-long"),
        ("api_key: k-999999", "k-999999"),
        ("api-key=k-888888", "k-888888"),
        ("secret='s-777777'", "s-777777"),
    ],
)
def test_secret_looking_fields_are_redacted(text, gone):
    out = redact(text)
    assert gone not in out and REDACTED in out


def test_registered_secret_is_removed_anywhere():
    register_secret("opaque-value-4242-xyz")
    assert redact("url?x=opaque-value-4242-xyz&y=1") == f"url?x={REDACTED}&y=1"


def test_short_or_empty_secrets_are_not_registered():
    register_secret("")
    register_secret(None)
    register_secret("ab")
    assert redact("ab cab") == "ab cab"


@pytest.mark.parametrize(
    "text",
    ["credentials: env:PLANE_TOKEN", "token-env: PLANE_TOKEN", "stage=parse state=paused", "no secrets here"],
)
def test_ordinary_text_is_left_alone(text):
    assert redact(text) == text
