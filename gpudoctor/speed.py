"""Reference speeds per GPU model (knowledge/speed.json) and the smoke test's figures to hold against them."""

from __future__ import annotations

import re

from gpudoctor import kb


def reference(name: str | None) -> dict | None:
    """The speed row of a GPU's product name ('NVIDIA H200'), first pattern that matches."""
    return next((row for row in kb.load("speed")["models"] if re.search(row["match"], name or "")), None)


def smoke_figure(device: dict, what: str) -> float | None:
    """A smoke-measured figure by the reference's key: bf16_tflops (bf16, else fp16 matmul) or copy_gbps."""
    if what == "bf16_tflops":
        return next(((device.get(k) or {}).get("value") for k in ("matmul_tflops_bfloat16", "matmul_tflops_float16")
                     if (device.get(k) or {}).get("value")), None)
    return (device.get(what) or {}).get("value")
