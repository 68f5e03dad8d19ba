"""The second pass: a maintained secret detector over every member of a report before it is written.

gpudoctor's own patterns (redact.py) know a dozen token shapes; detect-secrets (Yelp's library,
its plugins kept up by its maintainers) knows more: keywords, high-entropy base64 and hex strings,
cloud, chat, payment and registry tokens, connection strings, private keys, JWTs. Its plugins are
line scanners; here they run once over the report's distinct lines (JSON members flattened to
`"key": "value"` lines, the way detect-secrets reads a JSON file), which keeps the pass fast.
What they flag is returned as value -> class, for the redactor to remove everywhere.

detect-secrets imports `requests` at its top (for verifying secrets online, which gpudoctor never
does): 0.2 s, so `preload()` starts the import in a thread while the report's collectors wait on
their commands, and `check` and `list` never import it.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Iterable

# Public IP addresses are identities, not secrets: --anonymize replaces them, and the plugin's
# pattern takes version strings (cuDNN 9.1.0.70) for addresses.
SKIPPED_CLASSES = {"Public IP (ipv4)"}
MIN_LENGTH = 4  # a shorter "secret" replaced everywhere would shred the report and hide little
# Unquoted runs long enough to be keys: 24 hex characters spare UUID pieces (12) and kernel addresses (16).
UNQUOTED_SHORTEST = {"Base64HighEntropyString": 20, "HexHighEntropyString": 24}
_lock = threading.Lock()
_loaded: list | None = None


class DetectorMissing(RuntimeError):
    """detect-secrets cannot be imported: no report may be written without its pass."""


def preload() -> None:
    """Import detect-secrets in the background; `Scanner()` later waits for it or imports it itself."""
    threading.Thread(target=_quietly, daemon=True, name="gpudoctor-detect-secrets").start()


def _quietly() -> None:
    try:
        plugins()
    except Exception:  # said by the report's own call, in one line
        pass


def plugins() -> list:
    """Every detect-secrets plugin, instantiated with its defaults, once per process."""
    global _loaded
    with _lock:
        if _loaded is None:
            try:
                from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
            except ImportError as exc:
                raise DetectorMissing(f"detect-secrets is not importable ({exc}); reinstall gpudoctor") from None
            found = get_mapping_from_secret_type_to_class()
            _loaded = [found[name]() for name in sorted(found) if name not in SKIPPED_CLASSES]
        return _loaded


class Scanner:
    """detect-secrets' plugins over whole texts, one regex pass per plugin; each distinct line is
    scanned once, so raw evidence scanned early makes the final pass over the members short."""

    def __init__(self):
        from detect_secrets.plugins import keyword
        from detect_secrets.plugins.base import RegexBasedDetector
        from detect_secrets.plugins.high_entropy_strings import HighEntropyStringsPlugin

        loaded = plugins()
        self._regex = [p for p in loaded if isinstance(p, RegexBasedDetector)]
        self._entropy = [p for p in loaded if isinstance(p, HighEntropyStringsPlugin)]
        self._keyword = [p for p in loaded if isinstance(p, keyword.KeywordDetector)]
        self._unquoted = {id(p): _runs(p) for p in self._entropy}
        # its words, matched in lower case (10 times faster than ignoring case) to pick the few
        # lines worth its slower per-line search
        self._keyword_words = re.compile("|".join(keyword.DENYLIST))
        self._keyword_tables = (keyword.CONFIG_DENYLIST_REGEX_TO_GROUP, keyword.QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP)
        self._seen: set[str] = set()
        self.found: dict[str, str] = {}

    def find(self, members: dict[str, bytes]) -> dict[str, str]:
        """Every value flagged so far -> detect-secrets' class, after scanning these members' names and contents."""
        return self.scan(line for name, data in members.items() for line in (name, *member_lines(name, data)))

    def scan(self, lines: Iterable[str]) -> dict[str, str]:
        """Every value flagged so far -> its class, after scanning the lines not seen before."""
        new = [line for line in dict.fromkeys(lines) if line not in self._seen]
        self._seen.update(new)
        document = "\n".join(new)
        found: dict[str, str] = {}
        for plugin in self._regex:
            for value in plugin.analyze_string(document):
                found.setdefault(value, plugin.secret_type)
        for plugin in self._entropy:
            for value in self._random(plugin, document):
                found.setdefault(value, plugin.secret_type)
        for plugin in self._keyword:
            for line in self._keyword_lines(new, document):
                for table in self._keyword_tables:
                    for value in plugin.analyze_string(line, table):
                        found.setdefault(value, plugin.secret_type)
        for value, kind in found.items():
            if len(value.strip()) >= MIN_LENGTH:
                self.found.setdefault(value, kind)
        return dict(self.found)

    def _random(self, plugin, document: str) -> list[str]:
        """Strings above the plugin's entropy limit: quoted ones (its own rule, made for source code)
        and, since a report is mostly command output where nothing is quoted, long unquoted runs."""
        candidates = set(plugin.analyze_string(document))
        candidates.update(self._unquoted[id(plugin)].findall(document))
        # entropy never exceeds log2 of the number of distinct characters: a cheap test first
        return [value for value in candidates if len(set(value)) > 2 ** plugin.entropy_limit
                and plugin.calculate_shannon_entropy(value) > plugin.entropy_limit]

    def _keyword_lines(self, lines: list[str], document: str) -> list[str]:
        if not self._keyword_words.search(document.lower()):
            return []
        return [line for line in lines if self._keyword_words.search(line.lower())]


def _runs(plugin) -> re.Pattern:
    """Unquoted runs of the plugin's characters, '=' only as base64's padding (NAME=value is two words)."""
    shortest = UNQUOTED_SHORTEST.get(type(plugin).__name__, 20)
    return re.compile("[{}]{{{},}}=*".format(re.escape(plugin.charset.replace("=", "")), shortest))


def member_lines(name: str, data: bytes) -> Iterable[str]:
    """A member as the lines detect-secrets would scan: JSON flattened to quoted key/value lines."""
    text = data.decode(errors="replace")
    if name.endswith(".json"):
        try:
            return list(json_lines(json.loads(text)))
        except ValueError:
            pass
    return text.splitlines()


def json_lines(data, key: str = ""):
    """JSON-able data as `"key": "value"` lines; a multi-line string as its own lines under its key."""
    if isinstance(data, dict):
        for k, v in data.items():
            yield from json_lines(v, str(k))
    elif isinstance(data, list):
        for item in data:
            yield from json_lines(item, key)
    elif isinstance(data, str):
        if "\n" in data:
            yield f'"{key}":'
            yield from data.splitlines()
        else:
            yield f'"{key}": "{data}"'
