"""The config file's parsed copy (pipelinectl/config.py `_parsed`): read commands skip PyYAML when it matches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelinectl.config import load_config, parsed_cache_path, save_config
from pipelinectl.errors import UsageError

TEXT = """current-context: a
contexts:
  a: {url: 'http://127.0.0.1:1', pipeline: orders, headers: {X-Team: pay}}
"""


def settled(path: Path, text: str, *, age: float = 10.0) -> Path:
    """A config written `age` seconds ago: old enough for its parsed copy to be kept."""
    path.write_text(text)
    os.chmod(path, 0o600)
    past = time.time() - age
    os.utime(path, (past, past))
    return path


def test_first_load_keeps_a_private_parsed_copy_beside_the_file(tmp_path):
    path = settled(tmp_path / "config.yaml", TEXT)
    first = load_config(path)
    cache = parsed_cache_path(path)
    assert cache.parent == path.parent and cache.exists()
    assert cache.stat().st_mode & 0o777 == 0o600
    assert json.loads(cache.read_text())["data"]["contexts"]["a"]["pipeline"] == "orders"
    again = load_config(path)
    assert again.contexts == first.contexts and again.current_context == "a"


def test_a_read_from_the_copy_does_not_import_yaml(tmp_path):
    path = settled(tmp_path / "config.yaml", TEXT)
    load_config(path)
    probe = ("import sys; from pipelinectl.config import load_config; "
             f"c = load_config({str(path)!r}); print(c.contexts['a'].url, 'yaml' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["http://127.0.0.1:1", "False"]


def test_an_edit_is_seen_even_at_the_same_size(tmp_path):
    path = settled(tmp_path / "config.yaml", TEXT)
    load_config(path)
    settled(path, TEXT.replace("orders", "adders"), age=5.0)  # same length, another mtime
    assert load_config(path).contexts["a"].pipeline == "adders"


def test_a_save_replaces_the_file_and_so_the_key(tmp_path):
    path = settled(tmp_path / "config.yaml", TEXT)
    config = load_config(path)
    config.contexts["a"].pipeline = "payments"
    save_config(config, path)
    past = time.time() - 10
    os.utime(path, (past, past))
    assert load_config(path).contexts["a"].pipeline == "payments"


def test_a_file_changed_a_moment_ago_is_not_copied(tmp_path):
    path = settled(tmp_path / "config.yaml", TEXT, age=0.0)
    load_config(path)
    assert not parsed_cache_path(path).exists()


def test_data_json_cannot_hold_is_not_copied(tmp_path):
    path = settled(tmp_path / "config.yaml", TEXT + "  b: {url: 'http://h:1', settings: {since: 2026-01-02}}\n")
    config = load_config(path)
    assert not parsed_cache_path(path).exists()
    assert str(config.contexts["b"].settings["since"]) == "2026-01-02"


@pytest.mark.parametrize("mode", [0o644, 0o660])
def test_a_copy_others_could_write_or_read_is_ignored(tmp_path, mode):
    path = settled(tmp_path / "config.yaml", TEXT)
    load_config(path)
    cache = parsed_cache_path(path)
    planted = json.loads(cache.read_text())
    planted["data"]["contexts"]["a"]["url"] = "http://attacker:1"
    cache.write_text(json.dumps(planted))
    os.chmod(cache, mode)
    assert load_config(path).contexts["a"].url == "http://127.0.0.1:1"


def test_a_broken_copy_costs_only_speed(tmp_path):
    path = settled(tmp_path / "config.yaml", TEXT)
    load_config(path)
    parsed_cache_path(path).write_text("{not json")
    assert load_config(path).contexts["a"].pipeline == "orders"


def test_invalid_yaml_still_names_its_line(tmp_path):
    path = settled(tmp_path / "config.yaml", "contexts:\n  a: {url: [\n")
    with pytest.raises(UsageError, match=r"is not valid YAML at line \d"):
        load_config(path)
    assert not parsed_cache_path(path).exists()
