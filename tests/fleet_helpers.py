"""A fleet of reports made from the real H200 run (tests/fixtures/h200-firecracker-2026-11-27/check.json), re-judged by
this gpudoctor, each node changed only where its story is: its name, a policy failure, a slow GPU, another torch."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

H200 = Path(__file__).parent / "fixtures" / "h200-firecracker-2026-11-27" / "check.json"
EIGHT_GPUS = "[gpus]\ncount = 8\n"


def h200_document() -> dict:
    """The recorded run with the bus id that that commit's NVML probe failed to decode (see the fixture's README)."""
    document = json.loads(H200.read_text())
    document["facts"]["nvml"]["devices"][0]["pci"]["busId"] = document["facts"]["nvidia_smi"]["parsed"]["devices"][0]["pci"]["busId"]
    return document


def rejudged(folder: Path, policy: str | None = None) -> dict:
    """The H200 run judged by today's checks (and a policy), as `gpudoctor check --from --format json` writes it."""
    source = folder / "h200-source.json"
    source.write_text(json.dumps(h200_document()))
    args = ["check", "--from", str(source), "--format", "json"]
    if policy:
        (folder / "policy.toml").write_text(policy)
        args += ["--policy", str(folder / "policy.toml")]
    out = subprocess.run([sys.executable, "-m", "gpudoctor", *args], capture_output=True, text=True, timeout=120).stdout
    source.unlink()
    return json.loads(out)


def node(base: dict, host: str, started_at: str = "2026-11-27T06:36:40+00:00", copy_share: float = 1.0, torch: str | None = None) -> dict:
    document = copy.deepcopy(base)
    document["host"], document["started_at"] = host, started_at
    document["facts"]["os"]["kernel"]["hostname"] = host
    device = document["facts"]["smoke"]["runs"][0]["answer"]["devices"][0]
    device["copy_gbps"]["value"] = round(device["copy_gbps"]["value"] * copy_share, 1)
    if torch:
        document["facts"]["python_envs"]["interpreters"][0]["torch"]["version"]["value"] = torch
    return document


def write_fleet(folder: Path, count: int, work: Path) -> dict[str, dict]:
    """`count` nodes: every 10th fails the 8-GPU policy, every 25th copies at half speed, every 50th runs torch 2.10."""
    healthy, failing = rejudged(work), rejudged(work, EIGHT_GPUS)
    written = {}
    for i in range(count):
        host = f"gpu{i:04d}"
        document = node(failing if i % 10 == 7 else healthy, host, copy_share=0.5 if i % 25 == 9 else 1.0,
                        torch="2.10.0+cu130" if i % 50 == 3 else None)
        (folder / f"{host}.json").write_text(json.dumps(document))
        written[host] = document
    return written
