"""Write docs/cli.md from the click application, so the reference never drifts from the code.

Usage: python scripts/gen_cli_docs.py [--check]
(--check exits 1 when docs/cli.md is out of date; the test suite runs it.)
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from probgen.cli.main import main

OUT = Path(__file__).resolve().parents[1] / "docs" / "cli.md"

INTRO = """# Command-line reference

Generated from the click application by `python scripts/gen_cli_docs.py`; do not edit by hand.

Every command reports bad input (a missing file, a wrong shape, NaN in the data, an unknown
model or option, a damaged run directory) as one line on stderr starting with `error:` and exits
with status 1 (130 after Ctrl-C during `fit`, which saves a checkpoint first). Nothing the user
had is modified by a failing command.
"""


def render() -> str:
    parts = [INTRO]
    width = {"terminal_width": 88, "max_content_width": 88}
    ctx = click.Context(main, info_name="probgen", **width)
    parts.append("## probgen\n\n```text\n" + main.get_help(ctx) + "\n```\n")
    for name in main.list_commands(ctx):
        command = main.get_command(ctx, name)
        sub = click.Context(command, info_name=name, parent=ctx, **width)
        parts.append(f"## probgen {name}\n\n```text\n{command.get_help(sub)}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    text = render()
    if "--check" in sys.argv:
        sys.exit(0 if OUT.exists() and OUT.read_text() == text else 1)
    OUT.write_text(text)
