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


def test_a_config_file_named_but_missing_is_said_so(cli, tmp_path):
    missing = tmp_path / "missing.yaml"
    for args, env in (((("--config", str(missing), "status")), None),
                      (("status",), {"PIPELINECTL_CONFIG": str(missing)})):
        result = cli.run(*args, env=env)
        assert result.rc == 2, result
        assert result.stderr.startswith(f"error: config file not found: {missing}"), result
        assert len(result.stderr.strip().splitlines()) == 1
    assert not missing.exists()


def test_timeout_out_of_range_names_the_real_range(cli):
    for value in ("0", "-1", "86401"):
        result = cli.run("--timeout", value, "status")
        assert result.rc == 2, result
        assert "between 0 and" not in result.stderr
        assert "more than 0 and at most 86400 seconds" in result.stderr and f"'{value}'" in result.stderr


def test_typos_get_one_wording_of_suggestions_at_every_level(cli):
    top = cli.run("staus")
    sub = cli.run("dlq", "lsit")
    option = cli.run("status", "--wtch")
    assert top.stderr == "error: unknown command 'staus'; did you mean 'status'? (see 'pipelinectl --help')\n"
    assert sub.stderr == "error: unknown command 'lsit'; did you mean 'list'? (see 'pipelinectl dlq --help')\n"
    assert option.stderr == ("error: unknown option '--wtch'; did you mean '--watch'? "
                             "(see 'pipelinectl status --help')\n")
    assert {top.rc, sub.rc, option.rc} == {2}
    nothing_close = cli.run("dlq", "zzzz")
    assert nothing_close.stderr == "error: unknown command 'zzzz' (see 'pipelinectl dlq --help')\n"
