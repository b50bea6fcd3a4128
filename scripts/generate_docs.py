#!/usr/bin/env python3
"""Regenerate completions/, man/ and the completion table from the command tree.

    python scripts/generate_docs.py            # rewrite the checked-in files
    python scripts/generate_docs.py --check    # exit 1 and name the files that are stale
    python scripts/generate_docs.py --out DIR  # write the whole set under DIR (tests diff it)

The tree is walked through typer's public API (typer.main.get_command on the
root that pipelinectl.cli.app.build_root mounts), one command at a time, so a
command whose module does not exist yet is skipped with a note instead of
stopping the run. Plugin commands are left out: they depend on what is
installed, and the checked-in files must not.

Man pages carry the release date below, never today's, so regenerating is
deterministic. Examples come from each command's docstring "Examples:"
section, the same lines `--help` shows.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# Plugin command groups depend on the machine; the generated files must not.
os.environ["PIPELINECTL_LOAD_PLUGINS"] = ""

RELEASE_DATE = "2026-11-29"  # the date of the release these pages describe; bump with __version__

DATA_MODULE = Path("pipelinectl/cli/_completion_data.py")

# -- which values complete where --------------------------------------------------------------------------
# Kinds: a CHOICES key (fixed values), "context", "driver" (local), "pipeline", "stage", "dlq-id", "saga-id",
# "replay-id" (asked of the control plane), "file", "dir" (the shell's own), "" (free text).
OPTION_KINDS = {
    "--pipeline": "pipeline",
    "--stage": "stage",
    "--context": "context",
    "--driver": "driver",
    "--error-kind": "error-kind",
    "--config": "file",
    "--token-file": "file",
    "--ca-file": "file",
    "--db": "file",
    "--file": "file",
    "--junit": "file",
}
# (first word of the command path, parameter name) -> kind; "*" matches any command.
ARGUMENT_KINDS = {
    ("*", "stage"): "stage",
    ("*", "pipeline"): "pipeline",
    ("*", "shell"): "shell",
    ("*", "file"): "file",
    ("*", "files"): "file",
    ("*", "path"): "file",
    ("*", "paths"): "file",
    ("dlq", "item_id"): "dlq-id",
    ("dlq", "ids"): "dlq-id",
    ("dlq", "id"): "dlq-id",
    ("saga", "saga_id"): "saga-id",
    ("saga", "ids"): "saga-id",
    ("replay", "job_id"): "replay-id",
    ("config", "name"): "context",
    ("wait", "target"): "stage",
}
# (first word, option) -> kind, where an option's values depend on the command.
COMMAND_OPTION_KINDS = {
    ("saga", "--status"): "saga-status",
    ("wait", "--for"): "wait-condition",
}
FILE_METAVARS = {"FILE", "PATH", "DRILL", "DRILL_FILE"}
DIR_METAVARS = {"DIR", "DIRECTORY"}


def choices() -> dict[str, tuple[str, ...]]:
    from pipelinectl.cli.completion import SHELLS
    from pipelinectl.cli.options import OUTPUT_FORMATS
    from pipelinectl.model import ERROR_KINDS, SAGA_STATUSES, STAGE_STATES

    return {
        "wait-condition": wait_conditions(),
        "format": tuple(OUTPUT_FORMATS),
        "error-kind": tuple(ERROR_KINDS),
        "saga-status": tuple(SAGA_STATUSES),
        "stage-state": tuple(STAGE_STATES),
        "shell": tuple(SHELLS),
    }


def wait_conditions() -> tuple[str, ...]:
    """`wait --for` values: the status conditions in full. Numeric ones (queue_depth<=10) are left to the
    operator: completing `<`/`>` unquoted would make the shell redirect."""
    if importlib.util.find_spec("pipelinectl.cli.wait") is None:
        return ()
    from pipelinectl.cli.wait import KEYS
    from pipelinectl.model import REPLAY_STATES, SAGA_STATUSES, STAGE_STATES

    states = {"state": STAGE_STATES, "saga": SAGA_STATUSES, "replay": REPLAY_STATES}
    return tuple(f"{key}={value}" for key, (_, kind) in KEYS.items() if kind == "enum" for value in states[key])


# -- the command tree -------------------------------------------------------------------------------------
def load_commands() -> tuple[dict[str, Any], list[str]]:
    """name -> click command for every command in the lazy table; notes for those that cannot load yet."""
    import typer

    from pipelinectl.cli.app import build_root
    from pipelinectl.cli.commands import COMMANDS

    commands: dict[str, Any] = {}
    notes: list[str] = []
    for name, spec in COMMANDS.items():
        module = spec.target.partition(":")[0]
        if importlib.util.find_spec(module) is None:
            notes.append(f"skipped '{name}': module {module} does not exist yet")
            continue
        root = build_root(name)  # any other failure is a real bug: let it stop the run
        commands[name] = typer.main.get_command(root).commands[name]  # type: ignore[attr-defined]
    return commands, notes


def subcommands(cmd: Any) -> dict[str, Any]:
    return dict(getattr(cmd, "commands", {}) or {})


def split_examples(help_text: str | None) -> tuple[str, list[str]]:
    """(the help without its "Examples:" section, the example lines)."""
    from pipelinectl.cli.examples import split_examples as split

    return split(help_text)


def clean_help(cmd: Any, fallback: str = "") -> str:
    return inspect.cleandoc(cmd.help or fallback or "").partition("\f")[0].strip()


def summary_of(cmd: Any, fallback: str = "") -> str:
    body, _ = split_examples(clean_help(cmd, fallback))
    first = body.split("\n\n")[0].replace("\n", " ").strip()
    return first.rstrip(".") if first else fallback


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    import re

    return re.split(r"\.\s+(?=[A-Z])", text)[0].rstrip(".")


def param_kind(param: Any, top: str) -> str | None:
    """The value kind of an option (None for a flag) or argument."""
    if param.param_type_name == "option" and (getattr(param, "is_flag", False) or getattr(param, "count", False)):
        return None
    descriptor = getattr(param, "type_descriptor", None)
    try:
        fixed = descriptor.choices if descriptor is not None else None
    except Exception:
        fixed = None
    if fixed:
        return "choice:" + "|".join(str(getattr(c, "value", c)) for c in fixed)
    metavar = (param.metavar or "").strip("[]{}.").upper()
    if param.param_type_name == "option":
        for opt in param.opts:
            if (top, opt) in COMMAND_OPTION_KINDS:
                return COMMAND_OPTION_KINDS[(top, opt)]
        for opt in param.opts:
            if opt in OPTION_KINDS:
                return OPTION_KINDS[opt]
    else:
        for key in ((top, param.name), ("*", param.name)):
            if key in ARGUMENT_KINDS:
                return ARGUMENT_KINDS[key]
    if metavar in FILE_METAVARS:
        return "file"
    if metavar in DIR_METAVARS:
        return "dir"
    return ""


def completion_node(cmd: Any, top: str, fallback: str, extra_choices: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    options: dict[str, tuple[str | None, str]] = {}
    args: list[str] = []
    variadic = False
    for param in cmd.params:
        if getattr(param, "hidden", False):
            continue
        kind = param_kind(param, top)
        if kind and kind.startswith("choice:"):
            values = tuple(kind.removeprefix("choice:").split("|"))
            kind = f"choice-{'-'.join(values)}"
            extra_choices[kind] = values
        if param.param_type_name == "option":
            text = _first_sentence(param.help or "")
            for opt in [*param.opts, *param.secondary_opts]:
                options[opt] = (kind if opt in param.opts else None, text)
        else:
            args.append(kind or "")
            variadic = param.nargs == -1
    options.setdefault("--help", (None, "show the help and exit"))
    options.setdefault("-h", (None, "show the help and exit"))
    return {
        "summary": summary_of(cmd, fallback),
        "hidden": bool(cmd.hidden),
        "options": dict(sorted(options.items(), key=lambda kv: (kv[0].lstrip("-").lower(), kv[0]))),
        "args": args,
        "variadic": variadic,
        "commands": {name: completion_node(sub, top, "", extra_choices) for name, sub in subcommands(cmd).items()},
    }


def global_options() -> dict[str, tuple[str | None, str]]:
    from pipelinectl.cli.options import GLOBAL_OPTIONS_HELP

    kinds = {"--context": "context", "--config": "file", "--output": "format", "--timeout": ""}
    found: dict[str, tuple[str | None, str]] = {}
    for flags, text in GLOBAL_OPTIONS_HELP:
        names, _, metavar = flags.partition(" ") if "," not in flags else (flags.rsplit(" ", 1)[0], " ", flags.rsplit(" ", 1)[1])
        if not metavar.isupper():  # "-v, --verbose": a flag
            names, metavar = flags, ""
        opts = [n.strip() for n in names.split(",")]
        long = next((o for o in opts if o.startswith("--")), opts[0])
        kind = kinds.get(long, "") if metavar else None
        for opt in opts:
            found[opt] = (kind, _first_sentence(text))
    found["--help"] = (None, "show the help and exit")
    found["-h"] = (None, "show the help and exit")
    return found


def completion_data(commands: dict[str, Any]) -> str:
    from pipelinectl.cli.commands import COMMANDS

    extra: dict[str, tuple[str, ...]] = {}
    tree = {
        "summary": "operate data and event pipelines",
        "hidden": False,
        "options": {},
        "args": [],
        "variadic": False,
        "commands": {},
    }
    for name, spec in COMMANDS.items():  # every name in the table, loaded or not, in its order
        node = completion_node(commands[name], name, spec.summary, extra) if name in commands else {
            "options": {"--help": (None, "show the help and exit"), "-h": (None, "show the help and exit")},
            "args": [], "variadic": False, "commands": {}}
        tree["commands"][name] = {**node, "summary": spec.summary, "hidden": spec.alias_of is not None}
    all_choices = {**choices(), **extra}
    lines = [
        '"""The completion table: generated by scripts/generate_docs.py from the command tree; do not edit.',
        "",
        "pipelinectl/complete.py reads it at every Tab, so it holds plain literals and imports nothing.",
        '"""',
        "",
        f"CHOICES = {_literal(all_choices)}",
        "",
        f"GLOBAL_OPTIONS = {_literal(global_options())}",
        "",
        f"TREE = {_literal(tree)}",
        "",
    ]
    return "\n".join(lines)


def _literal(value: Any, indent: int = 0) -> str:
    """A stable, readable Python literal (pprint's line breaking depends on widths we do not want to pin)."""
    pad = "    " * (indent + 1)
    end = "    " * indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        inner = ",\n".join(f"{pad}{_literal(k)}: {_literal(v, indent + 1)}" for k, v in value.items())
        return "{\n" + inner + ",\n" + end + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(_literal(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value)


# -- man pages -------------------------------------------------------------------------------------------
def roff(text: str) -> str:
    """Escape text for a roff text line: backslashes, hyphens (copyable as ASCII), quotes, leading dots."""
    out = (text.replace("\\", "\\e").replace("-", "\\-").replace("'", "\\(aq").replace("`", "\\(ga")
           .replace('"', "\\(dq"))
    out = "".join(ch if ord(ch) < 128 else f"\\[u{ord(ch):04X}]" for ch in out)  # groff reads ASCII only
    lines = []
    for line in out.split("\n"):
        if line.startswith((".", "'")):
            line = "\\&" + line
        lines.append(line)
    return "\n".join(lines)


def paragraphs(text: str) -> list[str]:
    """Prose paragraphs, each rejoined on one line; indented blocks (code) are kept as they are."""
    return [p.strip("\n") for p in text.split("\n\n") if p.strip()]


def prose(text: str) -> list[str]:
    out: list[str] = []
    for para in paragraphs(text):
        lines = para.split("\n")
        if all(line.startswith("  ") for line in lines if line.strip()):
            out += [".PP", ".RS 4", ".nf", *(roff(line[2:] if line.startswith("  ") else line) for line in lines),
                    ".fi", ".RE"]
        else:
            out += [".PP", roff(" ".join(line.strip() for line in lines))]
    return out


def option_names(param: Any) -> str:
    opts = sorted(param.opts, key=lambda o: (o.startswith("--"), o))
    text = ", ".join(f"\\fB{roff(o)}\\fR" for o in opts)
    if param.secondary_opts:
        text += " / " + ", ".join(f"\\fB{roff(o)}\\fR" for o in param.secondary_opts)
    if not (getattr(param, "is_flag", False) or getattr(param, "count", False)):
        text += f" \\fI{roff(metavar(param))}\\fR"
    return text


def metavar(param: Any) -> str:
    if param.metavar:
        return param.metavar.strip("[]{}")
    descriptor = getattr(param, "type_descriptor", None)
    try:
        fixed = descriptor.choices if descriptor is not None else None
    except Exception:
        fixed = None
    if fixed:
        return "{" + "|".join(str(getattr(c, "value", c)) for c in fixed) + "}"
    return (param.name or "value").upper().rstrip("_")


def param_help(param: Any, ctx: Any) -> str:
    record = param.get_help_record(ctx)
    return record[1] if record else (param.help or "")


def usage(path: str, cmd: Any) -> str:
    pieces = [f"\\fB{roff(path)}\\fR"]
    if subcommands(cmd):
        pieces.append("\\fICOMMAND\\fR")
    if any(p.param_type_name == "option" and not getattr(p, "hidden", False) for p in cmd.params):
        pieces.append("[\\fIOPTIONS\\fR]")
    for p in cmd.params:
        if p.param_type_name != "argument":
            continue
        name = f"\\fI{roff(metavar(p))}\\fR" + ("..." if p.nargs == -1 else "")
        pieces.append(name if p.required else f"[{name}]")
    return " ".join(pieces)


def command_section(path: str, cmd: Any, heading: str | None, fallback: str = "") -> list[str]:
    """One command: usage, description, arguments, options, examples."""
    import typer._click as click  # typer's own copy of click: only for the Context get_help_record needs

    ctx = click.Context(cmd, info_name=path)
    body, examples = split_examples(clean_help(cmd, fallback))
    out: list[str] = []
    if heading:
        out += [f'.SS "{roff(heading)}"']
    out += [".PP", usage(path, cmd)]
    out += prose(body)
    arguments = [p for p in cmd.params if p.param_type_name == "argument" and not getattr(p, "hidden", False)]
    options = [p for p in cmd.params if p.param_type_name == "option" and not getattr(p, "hidden", False)]
    if arguments:
        out += [".PP", "Arguments:"]
        for p in arguments:
            out += [".TP", f"\\fI{roff(metavar(p))}\\fR", roff(param_help(p, ctx) or " ")]
    if options:
        out += [".PP", "Options:"]
        for p in options:
            out += [".TP", option_names(p), roff(param_help(p, ctx) or " ")]
    if examples:
        out += [".PP", "Examples:", ".PP", ".RS 4", ".nf", *(roff(e) for e in examples), ".fi", ".RE"]
    return out


def header(name: str, description: str) -> list[str]:
    from pipelinectl import __version__

    return [
        ".\\\" Generated by scripts/generate_docs.py from the command tree; do not edit.",
        f'.TH {name.upper()} 1 "{RELEASE_DATE}" "pipelinectl {__version__}" "pipelinectl manual"',
        ".nh",
        ".ad l",
        ".SH NAME",
        f"{roff(name)} \\- {roff(description)}",
    ]


def command_page(name: str, cmd: Any, summary: str, aliases: list[str]) -> str:
    path = f"pipelinectl {name}"
    out = header(f"pipelinectl-{name}", summary)
    out += [".SH SYNOPSIS", usage(path, cmd) if not subcommands(cmd) else f"\\fB{roff(path)}\\fR \\fICOMMAND\\fR [\\fIOPTIONS\\fR] [\\fIARGS\\fR]..."]
    out += [".SH DESCRIPTION"]
    out += command_section(path, cmd, None, summary)
    if aliases:
        out += [".PP", roff(f"Alias: {', '.join('pipelinectl ' + a for a in aliases)}.")]
    subs = {n: c for n, c in subcommands(cmd).items() if not c.hidden}
    if subs:
        out += [".SH COMMANDS"]
        for sub_name, sub in subs.items():
            sub_path = f"{path} {sub_name}"
            hidden_aliases = [n for n, c in subcommands(cmd).items() if c.hidden and c.callback is sub.callback]
            heading = sub_path + (f" (alias: {', '.join(hidden_aliases)})" if hidden_aliases else "")
            out += command_section(sub_path, sub, heading)
    out += [
        ".SH GLOBAL OPTIONS",
        ".PP",
        roff("--context, --config, -o/--output, --timeout, --no-color and -v/--verbose are accepted anywhere "
             "on the command line; see pipelinectl(1)."),
        ".SH EXIT STATUS",
        ".PP",
        roff("0 on success; see pipelinectl(1) for the table of exit codes."),
        ".SH SEE ALSO",
        ".BR pipelinectl (1)",
        "",
    ]
    return "\n".join(out)


ENVIRONMENT = (
    ("PIPELINECTL_CONTEXT", "The context to use instead of the config's current-context (--context wins)."),
    ("PIPELINECTL_CONFIG", "The config file (--config wins)."),
    ("PIPELINECTL_AUDIT_LOG", "Write the audit log here instead of the state directory."),
    ("PIPELINECTL_LOAD_PLUGINS", "Load only these plugins (comma-separated names or distributions; empty: none)."),
    ("PIPELINECTL_COMPLETE_TIMEOUT", "Seconds shell completion may wait for the control plane (default 1)."),
    ("PIPELINECTL_COMPLETE_TTL", "Seconds shell completion reuses what the control plane said (default 10)."),
    ("NO_COLOR", "When set and not empty, no colour in any output."),
    ("XDG_CONFIG_HOME", "Base of the default config file (default ~/.config)."),
    ("XDG_STATE_HOME", "Base of the audit log and the demo server's files (default ~/.local/state)."),
    ("XDG_CACHE_HOME", "Base of the completion cache (default ~/.cache)."),
)

FILES = (
    ("$XDG_CONFIG_HOME/pipelinectl/config.yaml", "Contexts and the current context; keep it mode 600."),
    ("$XDG_STATE_HOME/pipelinectl/audit.jsonl", "One JSON line per mutating command: who, when, where, what, result."),
    ("$XDG_STATE_HOME/pipelinectl/demo/", "The demo control plane's pid file, log and database."),
    ("$XDG_CACHE_HOME/pipelinectl/completion.json", "Shell completion's cache of control-plane names (seconds old)."),
)

DESCRIPTION = """pipelinectl is the operator's command line for data and event pipelines: see what every stage is doing, pause, drain, resume and scale stages, replay a range of the input, inspect, redrive and purge dead-letter items, and untangle stuck sagas. Drills rehearse incidents in CI.

A command runs against the current context (like a kubeconfig context): which control plane, reached how, with which credentials. The built-in driver speaks the project's HTTP API (pipelinectl server, or the embedded demo); plugins add drivers for other engines, and command groups. Every command accepts -o table|wide|json|yaml|jsonl|name; machine output has a stable schema and diagnostics go to standard error. Mutating commands accept --dry-run, destructive ones ask first on a terminal and need --yes elsewhere, and each mutation writes one line to the local audit log."""


def main_page(commands: dict[str, Any]) -> str:
    import pipelinectl.config as config_module
    from pipelinectl.cli.commands import COMMANDS, SECTIONS
    from pipelinectl.cli.help import EXAMPLES
    from pipelinectl.cli.options import GLOBAL_OPTIONS_HELP
    from pipelinectl.errors import EXIT_CODE_MEANINGS

    out = header("pipelinectl", "operate data and event pipelines from one command tree")
    out += [".SH SYNOPSIS", "\\fBpipelinectl\\fR [\\fIGLOBAL OPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]...",
            ".br", "\\fBpipelinectl\\fR \\fB\\-\\-version\\fR | \\fB\\-\\-help\\fR"]
    out += [".SH DESCRIPTION"] + prose(DESCRIPTION)
    out += [".SH COMMANDS"]
    for section in SECTIONS:
        listed = [n for n, s in COMMANDS.items() if s.section == section and not s.alias_of and n in commands]
        if listed:
            out += [f'.SS "{roff(section)}"']
        for name in listed:
            spec = COMMANDS[name]
            aliases = [a for a, s in COMMANDS.items() if s.alias_of == name]
            label = f"\\fB{roff(name)}\\fR" + "".join(f", \\fB{roff(a)}\\fR" for a in aliases)
            out += [".TP", label, f"{roff(spec.summary)}; see \\fBpipelinectl\\-{roff(name)}\\fR(1)."]
    out += [".SH GLOBAL OPTIONS", ".PP", roff("Accepted before or after the command, by every command.")]
    for flags, text in GLOBAL_OPTIONS_HELP:
        names, _, meta = flags.rpartition(" ") if flags.rsplit(" ", 1)[-1].isupper() else (flags, "", "")
        label = ", ".join(f"\\fB{roff(n.strip())}\\fR" for n in names.split(","))
        if meta:
            label += f" \\fI{roff(meta)}\\fR"
        out += [".TP", label, roff(text + ".")]
    out += [".TP", "\\fB\\-\\-version\\fR", "Print the version and exit.",
            ".TP", "\\fB\\-h\\fR, \\fB\\-\\-help\\fR", roff("Show help: pipelinectl --help, pipelinectl COMMAND --help.")]
    out += [".SH CONFIGURATION"]
    out += prose(inspect.getdoc(config_module).split("\n", 1)[1].replace("The config file is YAML::",
                                                                         "The config file is YAML:"))
    out += prose("Create and switch contexts with pipelinectl config set-context and pipelinectl config "
                 "use-context; see pipelinectl-config(1).")
    out += [".SH ENVIRONMENT"]
    for name, text in ENVIRONMENT:
        out += [".TP", f"\\fB{roff(name)}\\fR", roff(text)]
    out += [".SH FILES"]
    for name, text in FILES:
        out += [".TP", f"\\fI{roff(name)}\\fR", roff(text)]
    out += [".SH EXIT STATUS", ".PP", roff("Every failure is one line on standard error and one of these codes:")]
    for code, meaning in EXIT_CODE_MEANINGS.items():
        out += [".TP", f"\\fB{int(code)}\\fR", roff(f"{meaning} ({code.name}).")]
    out += [".SH EXAMPLES", ".PP", ".RS 4", ".nf", *(roff(e) for e in EXAMPLES), ".fi", ".RE"]
    out += [".SH SEE ALSO"]
    see = [n for n, s in COMMANDS.items() if n in commands and not s.alias_of]
    out += [",\n".join(f".BR pipelinectl\\-{roff(n)} (1)" for n in see)] if see else []
    out.append("")
    return "\n".join(out)


# -- putting it together ----------------------------------------------------------------------------------
def render_all() -> tuple[dict[Path, str], list[str]]:
    """relative path -> content for every generated file, and the notes about skipped commands."""
    from pipelinectl.cli.commands import COMMANDS
    from pipelinectl.cli.completion import FILENAMES, script

    commands, notes = load_commands()
    files: dict[Path, str] = {DATA_MODULE: completion_data(commands)}
    for shell, filename in FILENAMES.items():
        files[Path("completions") / filename] = script(shell)
    files[Path("man/pipelinectl.1")] = main_page(commands)
    for name, cmd in commands.items():
        spec = COMMANDS[name]
        if spec.alias_of:
            continue
        aliases = [a for a, s in COMMANDS.items() if s.alias_of == name]
        files[Path(f"man/pipelinectl-{name}.1")] = command_page(name, cmd, spec.summary, aliases)
    return files, notes


def stale_files(files: dict[Path, str], root: Path) -> list[str]:
    """Generated files that differ from, are missing from, or linger in root."""
    stale = [str(p) for p, text in files.items() if not (root / p).exists() or (root / p).read_text() != text]
    for folder in ("completions", "man"):
        for existing in sorted((root / folder).glob("*")) if (root / folder).is_dir() else []:
            if existing.relative_to(root) not in files:
                stale.append(f"{existing.relative_to(root)} (no longer generated)")
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail when checked-in files are stale")
    parser.add_argument("--out", type=Path, help="write under this directory instead of the repository")
    args = parser.parse_args(argv)
    files, notes = render_all()
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if args.check:
        stale = stale_files(files, ROOT)
        for path in stale:
            print(f"stale: {path}", file=sys.stderr)
        if stale:
            print("run: python scripts/generate_docs.py", file=sys.stderr)
        return 1 if stale else 0
    target = args.out or ROOT
    for folder in ("completions", "man"):  # drop pages of commands that no longer exist
        for existing in (target / folder).glob("*") if (target / folder).is_dir() else []:
            if existing.relative_to(target) not in files:
                existing.unlink()
    for path, text in files.items():
        (target / path).parent.mkdir(parents=True, exist_ok=True)
        (target / path).write_text(text)
    print(f"wrote {len(files)} files under {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
