"""The core suite's CLI helpers: pipelinectl.testing (shared with the plugins) plus the output schema.

    from tests.support.cli import cli_fixture  # noqa: F401  (the `cli` fixture)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipelinectl.testing import CliEnv, Result, executable, run_pty

__all__ = ["CliEnv", "Result", "cli_fixture", "executable", "run_pty", "validate_output"]


def validate_output(obj: Any) -> None:
    """Validate one machine-output object (a -o json document or a -o jsonl line) against
    docs/schema/output.schema.json; raises jsonschema.ValidationError naming the mismatch."""
    import jsonschema

    global _VALIDATOR
    if _VALIDATOR is None:
        schema = json.loads((Path(__file__).resolve().parents[2] / "docs" / "schema" / "output.schema.json").read_text())
        _VALIDATOR = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    _VALIDATOR.validate(obj)


_VALIDATOR: Any = None


@pytest.fixture(name="cli")
def cli_fixture(tmp_path: Path) -> CliEnv:
    """`cli`: an isolated CliEnv under the test's tmp_path.

    Import it as `from tests.support.cli import cli_fixture  # noqa: F401`.
    """
    return CliEnv(tmp_path)
