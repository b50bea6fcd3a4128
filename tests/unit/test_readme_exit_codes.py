"""The README's exit-code table is the documented contract: pin it to pipelinectl.errors."""

import re
from pathlib import Path

from pipelinectl.errors import ExitCode

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_exit_code_table_lists_every_code_once():
    text = README.read_text(encoding="utf-8")
    section = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    documented = [int(code) for code in re.findall(r"^\| (\d+) \|", section, flags=re.M)]
    assert documented == sorted(int(code) for code in ExitCode)
