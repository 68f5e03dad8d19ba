"""The knowledge base: compatibility tables and explanations kept as data, with sources.

Each table is a JSON file in `gpudoctor/knowledge/`, so updating what gpudoctor knows
never means editing a check.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

_DIR = Path(__file__).parent / "knowledge"


@functools.lru_cache(maxsize=None)
def load(name: str) -> dict:
    """The table `name` (e.g. "xid"), parsed once per process."""
    return json.loads((_DIR / f"{name}.json").read_text(encoding="utf-8"))
