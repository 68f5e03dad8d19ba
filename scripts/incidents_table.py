"""README's list of what gpudoctor diagnoses, generated from the incident corpus (tests/incidents/*.json).

`python scripts/incidents_table.py` rewrites the part of README.md between the two markers;
`--check` exits 1 when README is out of date (tests/test_incidents.py runs it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- incidents: begin (scripts/incidents_table.py) -->", "<!-- incidents: end -->"


def table() -> str:
    rows = []
    for path in sorted((ROOT / "tests" / "incidents").glob("*.json")):
        incident = json.loads(path.read_text())
        expect = incident["expect"]
        checks = ", ".join(f"`{c}`" for c in expect.get("fail", []) + expect.get("warn", [])) or "no alarm"
        thread = incident["source"].replace("https://github.com/", "").replace("/issues/", "#").replace("/pull/", "#")
        title = incident["title"].replace("|", "\\|")
        rows.append(f"| {title} | {checks} | [{thread}]({incident['source']}) |")
    head = ["| incident | gpudoctor's verdict | thread |", "| --- | --- | --- |"]
    return "\n".join([BEGIN, f"{len(rows)} real incidents, each replayed as evidence by `tests/test_incidents.py`:", "", *head, *rows, END])


def main(argv: list[str]) -> int:
    readme = ROOT / "README.md"
    text = readme.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    updated = text[:start] + table() + text[end:]
    if "--check" in argv:
        return 0 if updated == text else 1
    readme.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
