"""Builds the command tree for one invocation and turns every outcome into an exit code.

Only the invoked command's module is imported (the table in commands.py names
the rest). Plugin command groups come from entry points; an unknown command
falls back to an executable `pipelinectl-NAME` on PATH, as git and kubectl do.
This is the one place where exceptions become exit codes (httpie's habit).
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from pipelinectl.errors import ExitCode, PipelinectlError

from . import session as session_module
from .commands import COMMANDS, CONTEXT_SETTINGS
from .options import GlobalOptions

MAX_ERROR_LINE = 1000  # characters of the one error line


def _import_target(target: str) -> Any:
    import importlib

    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:  # a missing dependency inside the module: a real bug, say so
            raise
        from pipelinectl.errors import InternalError

        raise InternalError(f"this installation has no '{module_name}' module for the command",
                            hint="reinstall pipelinectl") from None
    return getattr(module, attr)


def mount(root: typer.Typer, name: str, obj: Any, *, help: str | None = None, hidden: bool = False) -> None:
    """Mount a group (typer.Typer) or a single command (function) under `name`."""
    if isinstance(obj, typer.Typer):
        single = obj.registered_commands
        if len(single) == 1 and not obj.registered_groups and obj.registered_callback is None:
            info = single[0]
            root.command(name, help=info.help or help, hidden=hidden, context_settings=CONTEXT_SETTINGS,
                         epilog=info.epilog)(info.callback)
        else:
            # typer gives add_typer(help=) priority over the group's own text: pass the table's
            # one-line summary only when the group has no help of its own (keeps its Examples).
            own = obj.info.help if isinstance(obj.info.help, str) else None
            callback = obj.registered_callback
            if own is None and callback is not None:
                own = callback.help if isinstance(callback.help, str) else getattr(callback.callback, "__doc__", None)
            root.add_typer(obj, name=name, hidden=hidden, **({} if own else {"help": help}))
    else:
        root.command(name, help=help if obj.__doc__ is None else None, hidden=hidden,
                     context_settings=CONTEXT_SETTINGS)(obj)


def _root_callback() -> None:
    """Operate data and event pipelines from one command tree."""


def build_root(name: str | None) -> typer.Typer:
    """A root app holding only the command being run (all of them when name is None)."""
    root = typer.Typer(
        name="pipelinectl",
        add_completion=False,
        no_args_is_help=True,
        context_settings=CONTEXT_SETTINGS,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,  # plain help, like the top-level help (and no rich import)
    )
    root.callback()(_root_callback)  # keeps the root a group even with one command mounted
    names = list(COMMANDS) if name is None else [name]
    for command in names:
        spec = COMMANDS[command]
        mount(root, command, _import_target(spec.target), help=spec.summary, hidden=spec.alias_of is not None)
    if name is None:
        from pipelinectl.plugins import command_entries

        for plugin_name, entry in command_entries().items():
            if plugin_name not in COMMANDS:
                try:
                    mount(root, plugin_name, entry.load(), help=entry.summary)
                except PipelinectlError as exc:  # the registry's message already names the plugin
                    sys.stderr.write(f"warning: {exc.one_line()}\n")
                except Exception as exc:  # a broken plugin is named, never fatal
                    sys.stderr.write(f"warning: plugin command '{plugin_name}' failed to load: {exc}\n")
    return root


def _unknown_command(name: str) -> str:
    from pipelinectl.plugins import command_entries

    from .suggest import unknown

    return unknown("command", name, list(COMMANDS) + list(command_entries()), "pipelinectl")


def _usage_message(exc: Exception, ctx: Any) -> str:
    """click's usage errors in the project's words; unknown names get the shared suggestion wording."""
    import re

    from .suggest import unknown

    where = ctx.command_path if ctx is not None else "pipelinectl"
    command = getattr(ctx, "command", None)
    if type(exc).__name__ == "NoSuchOption" and command is not None:
        options = [o for p in command.params if not getattr(p, "hidden", False) for o in (*p.opts, *p.secondary_opts)]
        return unknown("option", exc.option_name, [*options, "--help"], where)  # type: ignore[attr-defined]
    typo = re.fullmatch(r"No such command '(.*)'\..*", exc.format_message(), re.S)  # type: ignore[attr-defined]
    if typo and hasattr(command, "commands"):
        names = [n for n, c in command.commands.items() if not getattr(c, "hidden", False)]
        return unknown("command", typo.group(1), names, where)
    return f"{exc.format_message()} (see '{where} --help')"  # type: ignore[attr-defined]


def _resolve(name: str) -> typer.Typer | int:
    """The root app for `name`, or an exit code when an external plugin ran instead."""
    if name in COMMANDS:
        return build_root(name)
    from pipelinectl.plugins import command_entries, find_external

    entry = command_entries().get(name)
    if entry is not None:
        root = typer.Typer(add_completion=False, pretty_exceptions_enable=False, context_settings=CONTEXT_SETTINGS,
                          rich_markup_mode=None)
        mount(root, name, entry.load(), help=entry.summary)
        return root
    if find_external(name) is not None:
        return -1
    raise _UnknownCommand(name)


class _UnknownCommand(Exception):
    pass


def run(options: GlobalOptions, argv: list[str]) -> int:
    """Run one command; every failure becomes one line on stderr and a documented code."""
    session_module.start(options)
    name = argv[0]
    try:
        if name.startswith("-"):
            return _fail(f"unknown option '{name}' before the command; see 'pipelinectl --help'", ExitCode.USAGE)
        root = _resolve(name)
        if root == -1:
            from pipelinectl.plugins import run_external

            return run_external(name, argv[1:], session_module.current().external_env())
        command = typer.main.get_command(root)  # type: ignore[arg-type]
        bare_group = len(argv) == 1 and hasattr(getattr(command, "commands", {}).get(name), "commands")
        if "--help" in argv or "-h" in argv or bare_group:
            from pipelinectl.cli.examples import prepare_help

            prepare_help(command)  # plain, values named, the examples last (kubectl, gh)
        # Outside standalone mode, typer's click returns a raised typer.Exit's code instead of raising it.
        returned = command.main(args=argv, prog_name="pipelinectl", standalone_mode=False)
        return returned if isinstance(returned, int) and not isinstance(returned, bool) else int(ExitCode.OK)
    except _UnknownCommand:
        return _fail(_unknown_command(name), ExitCode.USAGE)
    except PipelinectlError as exc:
        if options.verbose >= 2:  # an expected error: -v traces requests, -vv adds the traceback
            import traceback

            traceback.print_exc(file=sys.stderr)
        return _fail(exc.one_line(), exc.exit_code)
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        return _fail("aborted; nothing was changed", ExitCode.ABORTED)
    except typer.TyperException as exc:  # click's usage errors, in typer's own copy of click
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError":  # a group run without a subcommand
            sys.stdout.write(exc.format_message() + "\n")
            return int(ExitCode.OK)
        return _fail(_usage_message(exc, ctx), ExitCode.USAGE)
    except KeyboardInterrupt:
        return _fail("interrupted", ExitCode.INTERRUPTED)
    except BrokenPipeError:
        return int(ExitCode.OK)
    except Exception as exc:  # a bug: one line, traceback only with -v
        if options.verbose:
            import traceback

            traceback.print_exc(file=sys.stderr)
        from pipelinectl.redact import redact

        return _fail(
            f"internal error: {type(exc).__name__}: {redact(str(exc))} (rerun with -v for a traceback)",
            ExitCode.INTERNAL,
        )
    finally:
        session_module.finish()


def _fail(message: str, code: ExitCode) -> int:
    session = session_module.peek()
    if session is not None:
        message = session.redact(message)
    message = " ".join(message.splitlines())  # one line, whatever a value or a plane's message held
    if len(message) > MAX_ERROR_LINE:  # an argument of 100k characters echoed back: keep both ends readable
        message = message[:MAX_ERROR_LINE - 300] + " [...] " + message[-300:]
    sys.stderr.write(f"error: {message}\n")
    return int(code)
