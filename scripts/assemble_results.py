"""Rebuild ``benchmarks/RESULTS.md`` from its summary and the section files in ``results/``.

The summary (everything above the first ``---`` line of RESULTS.md) is kept as written; each
section file follows it with its headings one level down (outside code blocks) and its images
turned into a line naming the file, since RESULTS.md is also included in the docs site, which
cannot link into ``benchmarks/``.

Run: ``python scripts/assemble_results.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SECTIONS = (
    "programs",
    "vae",
    "metrics",
    "flows",
    "diffusion",
    "score",
    "gan",
    "ebm",
    "mnist",
    "scale",
)
IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<path>[^)]+)\)")


def demoted(text: str) -> str:
    """Headings one level down and images as 'Figure:' lines; code blocks untouched."""
    lines, in_code = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            line = "#" + line
        elif not in_code:
            line = IMAGE.sub(
                lambda m: f"Figure: `benchmarks/results/{m['path']}` ({m['alt']}).", line
            )
        lines.append(line)
    return "\n".join(lines)


def main() -> None:
    results = BENCHMARKS / "RESULTS.md"
    summary = results.read_text().split("\n---\n", 1)[0].rstrip()
    parts = [summary]
    for name in SECTIONS:
        parts.append(demoted((BENCHMARKS / "results" / f"{name}.md").read_text().strip()))
    results.write_text("\n\n---\n\n".join(parts) + "\n")


if __name__ == "__main__":
    main()
