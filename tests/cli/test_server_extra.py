"""`pipelinectl demo` and `pipelinectl server` without the server extra: a one-line hint, exit 2, no traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

# Hide the server extra the way a plain `pip install pipelinectl` leaves it: the import fails.
RUN_WITHOUT = (
    "import sys\n"
    "for name in {missing!r}:\n"
    "    sys.modules[name] = None\n"
    "from pipelinectl.__main__ import main\n"
    "sys.exit(main({argv!r}))\n"
)


def _run(tmp_path, missing: tuple[str, ...], argv: list[str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINECTL_", "XDG_"))}
    env.update(HOME=str(tmp_path), NO_COLOR="1")
    return subprocess.run([sys.executable, "-c", RUN_WITHOUT.format(missing=missing, argv=argv)],
                          capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("missing", [("uvicorn",), ("fastapi",), ("fastapi", "uvicorn")])
@pytest.mark.parametrize("argv", [["server", "--demo", "--port", "1"], ["demo"], ["demo", "up"]])
def test_without_the_server_extra_a_one_line_hint_and_exit_2(tmp_path, missing, argv):
    demo = tmp_path / ".local" / "state" / "pipelinectl" / "demo"
    try:
        done = _run(tmp_path, missing, argv)
        assert done.returncode == 2, done
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert "pip install 'pipelinectl[server]'" in lines[0] and missing[0] in lines[0], lines
        assert "Traceback" not in done.stderr and "internal error" not in done.stderr
        assert not demo.exists()  # nothing was started
    finally:  # if a regression did start the demo (its child has the extra), stop it by its pid
        state = demo / "demo.json"
        if state.exists():
            os.kill(json.loads(state.read_text())["pid"], signal.SIGTERM)
