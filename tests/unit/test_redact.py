"""Redaction: registered secrets and secret-looking fields never survive into text we print."""

from __future__ import annotations

import json
import urllib.parse

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


# A registered secret also goes when it is shown escaped: as a bytes literal (httpx quotes a header it
# refuses), with backslash escapes (repr, JSON) or percent-encoded (a URL or a form body).
ODD = "tok/with+odd=chars'and\"quotes\\99"


@pytest.mark.parametrize(
    "shown",
    [
        repr(f"Bearer {ODD}"),
        repr(f"Bearer {ODD}".encode()),
        ascii(f"Bearer {ODD}"),
        json.dumps({"authorization": f"Bearer {ODD}"}),
        "GET /x?access=" + urllib.parse.quote(ODD, safe=""),
        "body: access=" + urllib.parse.quote_plus(ODD),
        "GET /x/" + urllib.parse.quote(ODD),
    ],
)
def test_registered_secret_is_removed_in_its_escaped_forms(shown):
    register_secret(ODD)
    out = redact(f"error: cannot send {shown}")
    assert REDACTED in out
    for fragment in ("tok/with", "tok%2Fwith", "odd=chars", "odd%3Dchars", "quotes"):
        assert fragment not in out, out


def test_non_ascii_registered_secret_is_removed_escaped():
    secret = "tök-registered-4711"
    register_secret(secret)
    for shown in (repr(secret.encode()), ascii(secret), json.dumps(secret),
                  urllib.parse.quote(secret)):
        out = redact(f"x {shown} y")
        assert "registered-4711" not in out, out


@pytest.mark.parametrize(
    "text, gone",
    [
        # httpx refusing a header: the bytes literal holds a helper's notice line and then the token
        ("Illegal header value b'Bearer notice: refreshed cache\\nvwr-S3cr3t-abcdef'", "S3cr3t"),
        ("Illegal header value b'Bearer vwr-S3cr3t\\x00'", "S3cr3t"),
        ("header 'Bearer vwr-S3cr3t \\u00e9x' refused", "S3cr3t"),
        ('{"Authorization": "Bearer a b\\"c S3cr3t"}', "S3cr3t"),
    ],
)
def test_bearer_credentials_in_a_quoted_literal_are_redacted_to_its_end(text, gone):
    out = redact(text)
    assert gone not in out and REDACTED in out, out


@pytest.mark.parametrize(
    "text",
    [
        "missing bearer token (send 'Authorization: Bearer <token>')",
        "send 'Authorization: Bearer [REDACTED]'",
        "curl -H 'Authorization: Bearer $TOKEN' -H \"Authorization: Bearer ${PLANE_TOKEN}\"",
        "Authorization: Bearer TOKEN",
        "set token: <token> and password=YOUR_PASSWORD",
        "> GET http://x {Authorization: Bearer [REDACTED], Accept: application/json}",
    ],
)
def test_placeholders_are_left_as_they_are(text):
    assert redact(text) == text


def test_display_url_drops_credentials_from_a_url_and_a_server_list():
    from pipelinectl.redact import display_url

    assert display_url("rediss://user:pw@h:6380/2") == "rediss://h:6380/2"
    assert display_url("amqp://u:p@[::1]:5672/vh") == "amqp://[::1]:5672/vh"
    assert display_url("u:p@a:4222, tls://tok@b:4223", default_scheme="nats") == "nats://a:4222,tls://b:4223"
