"""Redaction: nothing secret leaves the machine in a report, and with --anonymize nothing identifying.

Secrets are replaced always: values of secret-looking environment variables, credentials in URLs,
and known token shapes anywhere in any text. With --anonymize, host names, user names (in paths
too), IP and MAC addresses, GPU serials and UUIDs are replaced consistently: one value, one
placeholder, in every file (the way sos's cleaner pairs finders with a mapping), so support can
still correlate within the report. Only classes and counts are reported back, never values.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Iterable

SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|KEY|CREDENTIAL|AUTH|COOKIE|SESSION", re.I)
TOKEN_SHAPES = {
    # to its END line, or to the end of a text that cut it short
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.S),
    "url credentials": re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"),
    "huggingface token": re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"),
    "github token": re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})\b"),
    "gitlab token": re.compile(r"\bglpat-[A-Za-z0-9_\-]{20,}(?![\w-])"),
    "slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}(?![\w-])"),
    "aws access key": re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"),
    "openai-style key": re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_\-]{20,}(?![\w-])"),
    "jwt": re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}(?![\w-])"),
}
ENV_LINE = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$", re.M)
# Each pattern's last group is the identifying value; the rest of the match stays.
IDENTIFIERS = {
    # a whole UUID, or one an error message cut short
    "gpu uuid": re.compile(r"\b((?:GPU|MIG)-[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){0,3}(?:-[0-9a-fA-F]{1,12})?)(?![0-9a-fA-F])"),
    "gpu serial": re.compile(r'((?:Serial Number[\s:"]{1,60}|<serial>))([0-9A-Za-z]{6,})(?![\w-])', re.I),
    "ip address": re.compile(r"(?<![\w.=+-])((?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d))(?![\w.+-])"),
    "mac address": re.compile(r"\b([0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5})\b"),
}
# Placeholders keep each value's shape (documentation IPs, locally administered MACs), so the
# parsers that re-judge an anonymized report still read it: XML stays XML, a UUID stays one.
PLACEHOLDERS = {"gpu uuid": "GPU-00000000-0000-0000-0000-{n:012d}", "gpu serial": "serial-{n}",
                "ip address": "192.0.2.{n}", "mac address": "02:00:00:00:{hi:02x}:{lo:02x}",
                "host name": "host-{n}", "user name": "user-{n}"}
REDACTED = "[REDACTED "
SERIAL_KEYS = {"serial", "serial_number", "board_serial"}
# Names too common to identify anyone, and too common in text to replace.
COMMON_NAMES = {"root", "localhost", "nobody", "user", "admin", "ubuntu", "debian"}


class Redactor:
    """Scrubs text; keeps a consistent map for anonymized values and counts what it removed.

    Idempotent: what it wrote (a placeholder, a [REDACTED ...] mark) passes through it again
    unchanged and uncounted, so text redacted twice reads and counts as redacted once.
    """

    def __init__(self, anonymize: bool = False, hostnames: Iterable[str] = (), users: Iterable[str] = ()):
        self.anonymize = anonymize
        self.counts: Counter = Counter()
        self._map: dict[str, str] = {}
        self._issued: set[str] = set()
        self._named = {"host name": _names(hostnames), "user name": _names(users)}

    def text(self, text: str, versions: bool = False) -> str:
        """Every rule applied to one text."""
        text = ENV_LINE.sub(self._env_line, text)
        for kind, pattern in TOKEN_SHAPES.items():
            text = pattern.sub(lambda m, k=kind: self._secret(k), text)
        if self.anonymize:
            for kind, pattern in IDENTIFIERS.items():
                if versions and kind == "ip address":
                    continue
                text = pattern.sub(lambda m, k=kind: m.group(0)[: m.start(m.lastindex) - m.start()]
                                   + self._placeholder(k, m.group(m.lastindex)), text)
            for kind, values in self._named.items():
                for value in values:
                    text = re.sub(rf"(?<![A-Za-z0-9_.-]){re.escape(value)}(?![A-Za-z0-9_-])",
                                  lambda m, k=kind: self._placeholder(k, m.group(0)), text)
        return text

    def value(self, data, key: str = ""):
        """Every string inside JSON-able data, keys included; a string under a secret-looking key goes whole.

        A value under a `version` key is never taken for an IP address (cuDNN 9.1.0.70 is not one).
        """
        if isinstance(data, str):
            if SECRET_NAME.search(key) and data and "version" not in key.lower() and not data.startswith(REDACTED):
                return self._secret("secret environment variable")
            if self.anonymize and key.lower() in SERIAL_KEYS and data.strip() not in ("", "N/A"):
                return self._placeholder("gpu serial", data)
            return self.text(data, versions="version" in key.lower())
        if isinstance(data, list):
            return [self.value(item, key) for item in data]
        if isinstance(data, dict):
            return {self.text(str(k)): self.value(v, str(k)) for k, v in data.items()}
        return data

    def summary(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))

    def _env_line(self, match: re.Match) -> str:
        value = match.group("value")
        if SECRET_NAME.search(match.group("name")) and value and not value.startswith(REDACTED):
            return f"{match.group('name')}={self._secret('secret environment variable')}"
        return match.group(0)

    def _secret(self, kind: str) -> str:
        self.counts[kind] += 1
        return f"{REDACTED}{kind}]"

    def _placeholder(self, kind: str, value: str) -> str:
        if value in self._issued:
            return value
        if value not in self._map:
            self.counts[kind] += 1
            n = self.counts[kind]
            self._map[value] = PLACEHOLDERS[kind].format(n=n, hi=n >> 8 & 0xFF, lo=n & 0xFF)
            self._issued.add(self._map[value])
        return self._map[value]


def _names(values: Iterable[str]) -> list[str]:
    return sorted({v for v in values if v and len(v) > 1 and v.lower() not in COMMON_NAMES}, key=len, reverse=True)
