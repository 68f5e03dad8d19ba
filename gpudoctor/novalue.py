"""NVIDIA's words for "no value": the one place that tells an answer from its absence.

nvidia-smi fills a field it cannot read with `N/A`, `[N/A]`, `Not Found`, `Not Supported`,
`Unknown Error`, `[Insufficient Permissions]`, `[GPU requires reset]` and the like (WDDM and
WSL2 say `N/A` for persistence mode; old drivers `Not Found` for the CUDA version), and the
NVML worker records a call that failed as `{"error": "..."}`. Read as values, these became
"persistence mode is on" and "a build for CUDA Not Found"; every field goes through here.
"""

from __future__ import annotations

# lower-case, without brackets; "None" is not here: <mig_devices>None</mig_devices> means zero
WORDS = frozenset({
    "n/a", "na", "not found", "not supported", "not available", "unknown", "unknown error",
    "insufficient permissions", "no permission", "gpu requires reset", "gpu is lost",
    "requested functionality has been deprecated", "not applicable",
})


def no_value(raw) -> str | None:
    """Why `raw` is no value (NVIDIA's word as printed, or NVML's error), or None when it is one."""
    if raw is None:
        return "missing"
    if isinstance(raw, dict) and "error" in raw:
        return str(raw["error"])
    if isinstance(raw, str):
        word = raw.strip()
        if not word or word.strip("[]").strip().lower() in WORDS:
            return word or "empty"
    return None


def known(raw):
    """`raw` with every no-value answer as None, through lists and dicts; a list of only those is None."""
    if isinstance(raw, list):
        values = [known(item) for item in raw]
        return None if values and all(v is None for v in values) else values
    if no_value(raw) is not None:
        return None
    if isinstance(raw, dict):
        return {key: known(value) for key, value in raw.items()}
    return raw


def reasons(raw: dict) -> dict:
    """{field: why it has no value} for a GPU's top-level fields, kept so a check can say *why* it cannot tell."""
    out = {}
    for key, value in raw.items():
        items = value if isinstance(value, list) else [value]
        why = [no_value(item) for item in items]
        if items and all(why):
            out[key] = why[0]
    return out
