"""Redaction: nothing secret leaves the machine in a report, and with --anonymize nothing identifying.

Secrets are replaced always: values of secret-looking environment variables, credentials in URLs,
known token shapes anywhere in any text, and every value a detector flagged (detect.py), wherever
it recurs. With --anonymize, host names, user names (in paths too), IP and MAC addresses, GPU
serials and UUIDs, pod uids, container, pod and job names and cluster host lists are
replaced consistently: one value, one placeholder, in every file (the way sos's cleaner pairs
finders with a mapping), so support can still correlate within the report. Only classes and
counts are reported back, never values.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Iterable

SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|KEY|CREDENTIAL|AUTH|COOKIE|SESSION", re.I)
TOKEN_SHAPES = {
    # to its END line, or to the end of a text that cut it short
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.S),
    # user:password@, :password@ (Redis), or a key alone (a Sentry DSN's https://KEY@host/1)
    "url credentials": re.compile(r"(?<=://)(?:[^/\s:@]*:[^/\s@]+|[^/\s:@]{16,})(?=@)"),
    "webhook url": re.compile(r"https://(?:(?:canary\.|ptb\.)?discord(?:app)?\.com/api/webhooks|hooks\.slack\.com/(?:services|workflows|triggers)"
                              r"|[\w-]+\.webhook\.office\.com/webhookb2|[\w.-]+/hooks)/[^\s\"'<>]+"),
    # only the value (named v) goes: ?user=a&password=SECRET, ;AccountKey=SECRET;EndpointSuffix=...
    "secret in url query": re.compile(r"[?&][\w.-]*(?:pass|pwd|secret|token|key|sig|auth|credential|session)[\w.-]*=(?P<v>[^&#\s\"'<>]+)", re.I),
    "connection string secret": re.compile(r"(?<=;) ?(?:AccountKey|SharedAccessKey|SharedAccessSignature|Password|Pwd)=(?P<v>[^;\s\"'<>]+)", re.I),
    "huggingface token": re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"),
    "github token": re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})\b"),
    "gitlab token": re.compile(r"\bglpat-[A-Za-z0-9_\-]{20,}(?![\w-])"),
    "slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}(?![\w-])"),
    "aws access key": re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"),
    "openai-style key": re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_\-]{20,}(?![\w-])"),
    "jwt": re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}(?![\w-])"),
    "gcp api key": re.compile(r"\bAIza[\w-]{35}(?![\w-])"),  # gitleaks' gcp-api-key
    "age secret key": re.compile(r"\bAGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}\b"),  # gitleaks' age-secret-key
    # what most vendors' tokens share (gitleaks' rules: dop_v1_, dapi, shpat_, glsa_, lin_api_, dp.pt., pul-, r8_, gsk_ ...):
    # a short prefix and a separator, then a long random run; the prefix stays, saying whose token it was
    "prefixed token": re.compile(r"(?<![\w.-])[A-Za-z][A-Za-z0-9]{1,9}(?:[_.-][A-Za-z0-9]{1,9}){0,2}[_.-](?P<v>[\w-]{20,})(?![\w-])"),
}
RANDOM_RUN = re.compile(r"[A-Za-z0-9]{16,}")
ENV_LINE = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$", re.M)
# Each pattern's last group is the identifying value; the rest of the match stays.
IDENTIFIERS = {
    # a whole UUID, or one an error message cut short
    "gpu uuid": re.compile(r"\b((?:GPU|MIG)-[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){0,3}(?:-[0-9a-fA-F]{1,12})?)(?![0-9a-fA-F])"),
    "gpu serial": re.compile(r'((?:Serial Number[\s:"]{1,60}|<serial>))([0-9A-Za-z]{6,})(?![\w-])', re.I),
    "ip address": re.compile(r"(?<![\w.=+-])((?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d))(?![\w.+-])"),
    "mac address": re.compile(r"\b([0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5})\b"),
    # /proc/1/cgroup in a pod: kubepods/.../pod<uid>/<container id>; the 64-hex container id is
    # redacted always, as a hex high-entropy string, by the detector's pass
    "pod uid": re.compile(r"(pod)([0-9a-f]{8}(?:[-_][0-9a-f]{4}){3}[-_][0-9a-f]{12})(?![0-9a-f])"),
}
# Placeholders keep each value's shape (documentation IPs, locally administered MACs), so the
# parsers that re-judge an anonymized report still read it: XML stays XML, a UUID stays one.
PLACEHOLDERS = {"gpu uuid": "GPU-00000000-0000-0000-0000-{n:012d}", "gpu serial": "serial-{n}",
                "ip address": "192.0.2.{n}", "mac address": "02:00:00:00:{hi:02x}:{lo:02x}",
                "pod uid": "00000000-0000-0000-0000-{n:012d}",
                "host name": "host-{n}", "user name": "user-{n}", "container name": "container-{n}",
                "job name": "job-{n}", "host list": "hosts-{n}"}
# Named identities, replaced in this order: a host list before the host names inside it.
NAMED_KINDS = ("host list", "container name", "job name", "host name", "user name")
REDACTED = "[REDACTED "
SERIAL_KEYS = {"serial", "serial_number", "board_serial"}
# Names too common to identify anyone, and too common in text to replace.
COMMON_NAMES = {"root", "localhost", "nobody", "user", "admin", "ubuntu", "debian"}


class Redactor:
    """Scrubs text; keeps a consistent map for anonymized values and counts what it removed.

    Idempotent: what it wrote (a placeholder, a [REDACTED ...] mark) passes through it again
    unchanged and uncounted, so text redacted twice reads and counts as redacted once.
    """

    def __init__(self, anonymize: bool = False, hostnames: Iterable[str] = (), users: Iterable[str] = (),
                 names: dict[str, Iterable[str]] | None = None, found: dict[str, str] | None = None):
        """`names`: more identities by kind (NAMED_KINDS); `found`: values a detector flagged -> its class."""
        self.anonymize = anonymize
        self.counts: Counter = Counter()
        self._map: dict[str, str] = {}
        self._issued: set[str] = set()
        given = {"host name": hostnames, "user name": users, **(names or {})}
        self._named = {kind: _names(given.get(kind, ())) for kind in NAMED_KINDS}
        self._found = dict(found or {})
        self._found_pattern = re.compile("|".join(map(re.escape, sorted(self._found, key=len, reverse=True)))) if found else None

    def text(self, text: str, versions: bool = False) -> str:
        """Every rule applied to one text."""
        text = ENV_LINE.sub(self._env_line, text)
        for kind, pattern in TOKEN_SHAPES.items():
            text = pattern.sub(lambda m, k=kind: self._token(k, m), text)
        if self._found_pattern is not None:
            text = self._found_pattern.sub(lambda m: self._secret(self._found[m.group(0)]), text)
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

    def _token(self, kind: str, match: re.Match) -> str:
        if "v" not in match.re.groupindex:
            return self._secret(kind)
        if match.group("v").startswith(REDACTED[:-1]) or kind == "prefixed token" and not _random(match.group("v")):
            return match.group(0)
        start, end = match.start("v") - match.start(), match.end("v") - match.start()
        return match.group(0)[:start] + self._secret(kind) + match.group(0)[end:]

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


def _random(value: str) -> bool:
    """A run of 16 letters and digits with at least two of each: a key, not a word, a path or a UUID's pieces."""
    return any(sum(c.isdigit() for c in run) >= 2 and sum(c.isalpha() for c in run) >= 2 for run in RANDOM_RUN.findall(value))


def _names(values: Iterable[str]) -> list[str]:
    return sorted({v for v in values if v and len(v) > 1 and v.lower() not in COMMON_NAMES}, key=len, reverse=True)
