"""payload_view: how every driver shows a message body in a DLQ item (plugins share it through plugin_api)."""

from pipelinectl.plugin_api import payload_view


def test_json_text_and_binary_bodies():
    assert payload_view(b'{"a": 1}', 512) == ({"a": 1}, {"payload_size": 8, "payload_encoding": "json"})
    assert payload_view(b"plain") == ("plain", {"payload_size": 5, "payload_encoding": "utf-8"})
    assert payload_view(b"\xff\x00") == ("/wA=", {"payload_size": 2, "payload_encoding": "base64"})


def test_a_declared_json_content_type_and_a_broken_json_body():
    assert payload_view(b' {"a": 1}', content_type="application/json")[0] == {"a": 1}
    assert payload_view(b' {"a": 1}')[0] == ' {"a": 1}'  # no content type, no leading brace: text
    assert payload_view(b"{not json") == ("{not json", {"payload_size": 9, "payload_encoding": "utf-8"})


def test_a_long_body_is_cut_and_says_so():
    text, info = payload_view(b"x" * 600, 512)
    assert len(text) == 512 and info == {"payload_size": 600, "payload_encoding": "utf-8", "payload_truncated": True}
