"""Exit codes and one-line errors that need no control plane (usage, unknown context, no context)."""

from __future__ import annotations

from tests.support.cli import cli_fixture  # noqa: F401  (the `cli` fixture)


def test_unknown_command_is_usage_error_with_suggestion(cli):
    result = cli.run("statsu")
    assert result.rc == 2, result
    assert result.stdout == ""
    assert result.stderr.startswith("error: unknown command 'statsu'")
    assert "did you mean 'status'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_output_format_is_usage_error(cli):
    result = cli.run("-o", "xml", "status")
    assert result.rc == 2, result
    assert "xml" in result.stderr and "json" in result.stderr


def test_unknown_context_is_not_found(cli):
    result = cli.run("--context", "nope", "status")
    assert result.rc == 3, result
    assert "context 'nope' not found" in result.stderr
    assert "Traceback" not in result.output


def test_no_context_selected_is_usage_error(cli):
    result = cli.run("status")
    assert result.rc == 2, result
    assert "no context selected" in result.stderr
