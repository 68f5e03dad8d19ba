"""The GPUs' state as `nvidia-smi` shows it: utilisation, memory, temperature, power, clocks, processes.

nvidia-smi's query form is the interface people watch GPUs with; gpudoctor asks it the fields the
NVML probe does not read (utilisation and clocks) beside the rest, once per run, and falls back to
NVML's own answers for what it has where nvidia-smi is missing or not recorded.
"""

from __future__ import annotations

QUERY_GPU = ("index", "pci.bus_id", "name", "utilization.gpu", "utilization.memory", "memory.used", "memory.total",
             "temperature.gpu", "power.draw", "power.limit", "clocks.sm", "clocks.mem", "clocks.max.sm")
QUERY_APPS = ("gpu_bus_id", "pid", "process_name", "used_memory")
GPU_ARGV = ["nvidia-smi", f"--query-gpu={','.join(QUERY_GPU)}", "--format=csv,noheader,nounits"]
APPS_ARGV = ["nvidia-smi", f"--query-compute-apps={','.join(QUERY_APPS)}", "--format=csv,noheader,nounits"]
MIB = 1 << 20


def _number(text: str):
    """nvidia-smi's value as a number; None for '[N/A]', '[Not Supported]' and the like."""
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() else value


def parse_query(text: str, fields: tuple[str, ...]) -> list[dict]:
    """Rows of `nvidia-smi --query-...=FIELDS --format=csv,noheader,nounits`, numbers as numbers.

    >>> parse_query("0, 00000000:00:06.0, NVIDIA H200, 0, 0, 0, 143771, 40, 78.53, 700.00, 345, 3201, 1980", QUERY_GPU)[0]["power.draw"]
    78.53
    """
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != len(fields):
            continue
        rows.append({f: (c if f in ("pci.bus_id", "name", "gpu_bus_id", "process_name") else _number(c)) for f, c in zip(fields, cells)})
    return rows


def state_lines(gpu_state: dict | None, devices: list[dict]) -> list[str]:
    """One line per GPU (and its processes): nvidia-smi's answers where it gave them, else NVML's."""
    rows = {row.get("index"): row for row in (gpu_state or {}).get("gpus") or []}
    apps = (gpu_state or {}).get("processes")
    lines = []
    for device in devices:
        row = rows.get(device["index"]) or {}
        memory = device.get("memory") or {}
        used = row.get("memory.used") * MIB if isinstance(row.get("memory.used"), (int, float)) else memory.get("used")
        total = row.get("memory.total") * MIB if isinstance(row.get("memory.total"), (int, float)) else memory.get("total")
        power = row.get("power.draw") if row.get("power.draw") is not None else _watts(device.get("power_usage_mw"))
        limit = row.get("power.limit") if row.get("power.limit") is not None else _watts(device.get("power_limit_mw"))
        temp = row.get("temperature.gpu") if row.get("temperature.gpu") is not None else device.get("temperature_gpu")
        parts = [f"{row['utilization.gpu']} % busy" if row.get("utilization.gpu") is not None else None,
                 f"{used / (1 << 30):.1f} of {total / (1 << 30):.1f} GiB used" if used is not None and total else None,
                 f"{temp} °C" if temp is not None else None,
                 f"{power:.0f} W of {limit:.0f} W" if power is not None and limit else None,
                 f"SM {row['clocks.sm']} MHz (max {row['clocks.max.sm']}), memory {row['clocks.mem']} MHz"
                 if row.get("clocks.sm") is not None else None]
        lines.append(f"GPU{device['index']} {device.get('name')}: " + ", ".join(p for p in parts if p))
        procs = _processes(apps, device) if apps is not None else device.get("processes") or []
        lines += [f"  pid {p.get('pid')} {p.get('name') or '?'}: {(p.get('used_memory') or 0) / (1 << 30):.1f} GiB" for p in procs]
    return lines


def _watts(milliwatts) -> float | None:
    return milliwatts / 1000 if isinstance(milliwatts, (int, float)) else None


def _processes(apps: list[dict], device: dict) -> list[dict]:
    """nvidia-smi's compute processes on this GPU, in NVML's shape."""
    bus = (device.get("bus") or "").lower()
    return [{"pid": a.get("pid"), "name": a.get("process_name"), "used_memory": (a.get("used_memory") or 0) * MIB}
            for a in apps if bus and (a.get("gpu_bus_id") or "").lower().endswith(bus)]
