"""Is this machine fit for training: the setup guide's choices as checks, and the GPUs' state.

The guide gpudoctor grew from says what to choose: at least 16 GB of GPU memory for training, GPUs
with tensor cores (compute capability 7.0; bf16 needs 8.0, FP8 8.9), and a virtual or conda
environment for the frameworks. Its figures live in gpudoctor/knowledge/advice.json, one place to
change them (and the policy's, when there is one). The GPUs' state is what nvidia-smi shows.
"""

from __future__ import annotations

from gpudoctor import kb
from gpudoctor.frameworks import interpreters
from gpudoctor.gpus import answering
from gpudoctor.gpustate import APPS_ARGV, GPU_ARGV, QUERY_APPS, QUERY_GPU, parse_query, state_lines
from gpudoctor.host import NOT_RECORDED, NotRecorded
from gpudoctor.plugin import check, collector, ok, skip, warn

FRAMEWORKS = ("torch", "tensorflow", "jax", "jaxlib", "onnxruntime-gpu")


@check("advice.gpu_memory", "Enough GPU memory to train", needs=("gpus",))
def gpu_memory(gpus):
    """Below about 16 GB a GPU limits the model and batch sizes that fit for training (the guide's first choice)."""
    advice = kb.load("advice")["gpu_memory"]
    floor = advice["gb"] * 1e9 * advice["reported_fraction"]
    small = [d for d in answering(gpus) if ((d.get("memory") or {}).get("total") or floor) < floor]
    if not small:
        return ok(f"every GPU has at least {advice['gb']} GB of memory")
    shown = "; ".join(f"{d['label']} {d.get('name')} has {d['memory']['total'] / 1e9:.1f} GB" for d in small)
    return warn(f"{shown}: {advice['why']}", fix="\n".join(f"# {line}" for line in advice["fix"]))


@check("advice.tensor_cores", "Tensor cores and the training precisions they run", needs=("gpus",), uses=("options",))
def tensor_cores(gpus, options):
    """Tensor cores from compute capability 7.0, bf16 from 8.0, FP8 from 8.9; warns when an asked precision cannot run."""
    table = kb.load("advice")["precisions"]
    asked = [p for p in ((options or {}).get("precision") or []) if p in table]
    lines, unfit, unknown = [], [], []
    for d in answering(gpus):
        if not d.get("cc"):
            unknown.append(d["label"])
            continue
        has = [p for p, row in table.items() if d["cc"] >= tuple(row["cc"])]
        lines.append(f"{d['label']} {d.get('name')} (sm_{d['cc'][0]}{d['cc'][1]}): " + (", ".join(has) or "no tensor cores"))
        unfit += [(d, p) for p in (asked or ["tensor cores"]) if p not in has]
    if not lines:
        return skip(f"the compute capability of {', '.join(unknown)} is not known")
    if unfit:
        gpu, precision = unfit[0]
        need = ".".join(map(str, table[precision]["cc"]))
        return warn(f"{gpu['label']} {gpu.get('name')} (compute capability {gpu['cc'][0]}.{gpu['cc'][1]}) has no {precision}: "
                    f"{table[precision]['why']} (needs {need})", details=lines,
                    fix="\n".join(f"# {line}" for line in table[precision]["fix"]))
    return ok(lines[0] if len(lines) == 1 else f"{len(lines)} GPUs: " + "; ".join(lines), lines)


@collector("options")
def collect_options(host) -> dict:
    """What the user asked of this run (--precision), recorded so that a replay judges the same request."""
    return {"precision": list(host.options.get("precision") or [])}


@check("advice.environment", "Frameworks in a virtual or conda environment", needs=("python_envs",))
def environment(python_envs):
    """Frameworks in the system Python, or in the user site with `pip install --user`, are shared by everything that runs
    there and break with the distribution's own upgrades: the guide puts them in a venv or conda env."""
    for i in interpreters(python_envs):
        python = i["env"]["python"]
        site = python.get("user_site") or "//"
        placed = [d for d in i["env"].get("distributions") or [] if d["name"] in FRAMEWORKS]
        loose = [d for d in placed if (not python.get("venv") and not python.get("conda")) or d["location"].startswith(site)]
        if loose:
            where = "the user site (pip install --user)" if all(d["location"].startswith(site) for d in loose) else f"the system Python {i['path']}"
            pins = " ".join(f"{d['name']}=={d['version']}" for d in loose)
            names = " ".join(d["name"] for d in loose)
            user = " --user" if where.startswith("the user") else ""
            return warn(f"{', '.join(d['name'] + ' ' + d['version'] for d in loose)} installed into {where}: shared by every program "
                        "there and changed by the distribution's upgrades", details=[f"{d['name']} {d['version']} in {d['location']}" for d in loose],
                        fix=f"{i['path']} -m venv ~/venvs/train\n"
                            f"~/venvs/train/bin/python -m pip install {pins}   # the same versions, now in the venv\n"
                            f"# or conda: conda create -y -n train python={python.get('version', '3')[:4].rstrip('.')} && "
                            f"conda run -n train python -m pip install {pins}\n"
                            f"{i['path']} -m pip uninstall -y{user} {names}   # then take them out of {where.split(' (')[0]}\n"
                            "# train with ~/venvs/train/bin/python, and judge it: gpudoctor check --python ~/venvs/train")
    return ok("the frameworks are installed in virtual or conda environments")


@collector("gpu_state")
def collect_gpu_state(host) -> dict:
    """nvidia-smi's query form: utilisation, memory, temperature, power, clocks, and the compute processes."""
    gpus, apps = host.run(GPU_ARGV), host.run(APPS_ARGV)
    if gpus.error == NOT_RECORDED:
        raise NotRecorded("nvidia-smi --query-gpu")
    return {"gpus": parse_query(gpus.stdout, QUERY_GPU) if gpus.ok else None,
            "processes": parse_query(apps.stdout, QUERY_APPS) if apps.ok else None,
            "error": None if gpus.ok else gpus.error or (gpus.output.splitlines() or [f"exit status {gpus.rc}"])[-1]}


@check("gpu.state", "The GPUs' state, as nvidia-smi shows it", needs=("gpus",), uses=("gpu_state",))
def state(gpus, gpu_state):
    """Utilisation, memory, temperature, power and clocks per GPU, and what runs on it: the view people watch."""
    lines = state_lines(gpu_state, answering(gpus))
    busy = [line for line in lines if line.startswith("  pid")]
    return ok(f"{sum(not line.startswith('  ') for line in lines)} GPU(s), {len(busy)} compute process(es)", lines)
