"""The smoke area: the machine really trains, gets the right numbers, and at its GPUs' speed.

The collector runs the training smoke test (gpudoctor/probes/smoke_probe.py) in each judged
interpreter for PyTorch (fullest: memory, speed, NCCL), JAX and TensorFlow, on every visible
GPU, or on the CPU with `gpudoctor smoke --device cpu`. It runs only where an NVIDIA driver
shows GPUs: elsewhere the area skips without starting Python. Each framework trains in the
interpreter process its facts probe imported it in (gpudoctor/probeworker.py).
"""

from __future__ import annotations

import math
import re
import threading

from gpudoctor import kb
from gpudoctor.frameworks import SMOKED, ask_facts, choose_interpreters, state
from gpudoctor.gpus import COMPUTE_MODES, bus_id
from gpudoctor.gputurn import EXCLUSIVE_MODES
from gpudoctor.host import PROBE_SCRIPT, NotRecorded
from gpudoctor.plugin import Skip, check, collector, fail, ok, warn
from gpudoctor.speed import reference

FP32_TOLERANCE = 1e-3  # float32 (TF32 off) against a float64 CPU run: rounding is ~1e-6, a wrong number is not
BUSY = re.compile(r"busy or unavailable", re.I)  # CUDA error 46, cudaErrorDevicesUnavailable / CUDA_ERROR_DEVICE_UNAVAILABLE
SLOW = kb.load("speed")["warn_below"]  # a rate below this share of the model's reference warns (after a second measurement)
PROBE_TIMEOUT_S = 110


@collector("smoke", timeout=PROBE_TIMEOUT_S + 10)
def collect_smoke(host):
    """Each framework trains in the interpreter its facts probe imported it in, one framework at a time (each may
    take most of a GPU's memory; the host's GPU turn), in the order their imports finish: one framework's import
    overlaps another's training. A framework that is not installed costs one interpreter start (~50 ms)."""
    options = host.options.get("smoke") or {}
    device, steps = options.get("device", "cuda"), int(options.get("steps", 30))
    frameworks = options.get("frameworks") or list(SMOKED)
    if device == "cuda":
        try:
            gpus = host.listdir("/proc/driver/nvidia/gpus")
        except NotRecorded:
            gpus = None
        if not gpus:
            return {"skipped": "no NVIDIA GPU is visible (no /proc/driver/nvidia/gpus); see driver.loaded"}
    runs = [{"python": chosen["path"], "framework": framework, "answer": {"failure": "not run", "message": "the run ended first"}}
            for chosen in choose_interpreters(host) for framework in frameworks]

    def train(run: dict) -> None:
        ask_facts(host, run["python"], run["framework"])  # the facts probe's import, shared with python_envs
        with host.gpu_turn():
            run["answer"] = host.probe(run["python"], f"smoke {run['framework']} {device} {steps}",
                                       timeout=options.get("timeout", PROBE_TIMEOUT_S))

    threads = [threading.Thread(target=train, args=(run,), daemon=True, name=f"smoke-{run['framework']}") for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"device": device, "steps": steps, "runs": runs}


def _runs(smoke: dict, framework: str) -> list[dict]:
    if smoke.get("skipped"):
        raise Skip(smoke["skipped"])
    runs = [r for r in smoke.get("runs") or [] if r["framework"] == framework]
    if not runs:
        raise Skip("no interpreter was judged (see python.interpreter)")
    if all(r["answer"].get("failure") == "not recorded" for r in runs):
        raise Skip("the smoke test was not recorded where this evidence was collected")
    return runs


def _trained(smoke: dict, framework: str) -> list[dict]:
    """The runs that trained; for checks that judge what training measured (smoke.torch judges the rest)."""
    runs = [r for r in _runs(smoke, framework) if r["answer"].get("devices")]
    if not runs:
        raise Skip("the smoke test did not train (see smoke.torch)")
    return runs


def _finite(values) -> bool:
    return bool(values) and all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def device_problems(device: dict, rerun: str) -> list[tuple[str, str]]:
    """(problem, fix) for one device's training, numbers and memory; `rerun` repeats the test by hand."""
    where = device.get("name") or device["device"]
    corruption = _corruption_fix(device)
    problems = []
    fp32 = device.get("fp32") or {}
    if "error" in fp32:
        problems.append((f"{where}: float32 training failed: {fp32['error']}", _runtime_fix(fp32["error"], rerun)))
    elif not _finite(fp32.get("value")):
        problems.append((f"{where}: float32 loss is not finite ({fp32.get('value', [])[-1:]})", corruption))
    elif (fp32.get("max_rel_diff") or 0) > FP32_TOLERANCE:
        problems.append((f"{where}: float32 training disagrees with the CPU by {fp32['max_rel_diff']:.1e} "
                         f"(tolerance {FP32_TOLERANCE:g}): this GPU computes wrong numbers", corruption))
    mixed = device.get("mixed") or {}
    losses = mixed.get("value")
    if "error" in mixed:
        problems.append((f"{where}: {mixed.get('dtype')} mixed-precision training failed: {mixed['error']}", _runtime_fix(mixed["error"], rerun)))
    elif not _finite(losses):
        problems.append((f"{where}: {mixed.get('dtype')} loss became NaN or infinite", _precision_fix(device, rerun)))
    elif losses[-1] >= losses[0]:
        problems.append((f"{where}: {mixed.get('dtype')} loss did not fall ({losses[0]:.3f} → {losses[-1]:.3f} in {len(losses)} steps)",
                         _precision_fix(device, rerun)))
    memory = device.get("memory") or {}
    if "error" in memory:
        problems.append((f"{where}: the memory check failed: {memory['error']}", _runtime_fix(memory["error"], rerun)))
    elif (memory.get("value") or {}).get("mismatches"):
        bad = memory["value"]
        problems.append((f"{where}: {bad['mismatches']} words read back wrong out of {bad['tested_bytes'] >> 20} MiB written",
                         corruption))
    return problems


def gpu_id(device: dict) -> str:
    """How nvidia-smi -i names this GPU: its UUID or PCI bus id (CUDA's cuda:N follows CUDA_VISIBLE_DEVICES and
    CUDA_DEVICE_ORDER, nvidia-smi's index the PCI order, so the ordinal would name another GPU)."""
    return device.get("uuid") or device.get("pci_bus") or device["device"].split(":")[-1]


def _corruption_fix(device: dict) -> str:
    """Wrong numbers from float32 (against a float64 CPU run, to 1e-3) or memory that reads back wrong: hardware."""
    if not device["device"].startswith("cuda"):
        return "journalctl -k | grep -i -e mce -e 'machine check'   # the CPU or its memory computed wrong numbers\n# run memtester, and retire the machine if errors repeat"
    gpu = gpu_id(device)
    return (f"nvidia-smi -q -i {gpu} -d ECC,PAGE_RETIREMENT,ROW_REMAPPER   # uncorrectable errors, pending remaps\n"
            f"# drain this node from the scheduler, reset the GPU (sudo nvidia-smi -r -i {gpu}) and rerun gpudoctor smoke;\n"
            "# if it fails again, the GPU is faulty: open an RMA with the serial from nvidia-smi -q")


def _precision_fix(device: dict, rerun: str) -> str:
    """Mixed precision that misbehaves while float32 matched the CPU: the arithmetic is sound, so not a hardware verdict."""
    return (f"{rerun}\n# float32 matched the CPU, so the GPU computes right: suspect the framework's reduced-precision kernels "
            "(its cuBLAS and cuDNN: gpudoctor check --only cudnn,torch)")


def _runtime_fix(error: str, rerun: str) -> str:
    if BUSY.search(error):
        return ("nvidia-smi --query-gpu=index,pci.bus_id,compute_mode --format=csv   # Exclusive_Process or Prohibited turns processes away\n"
                "nvidia-smi --query-compute-apps=gpu_bus_id,pid,process_name --format=csv   # and who holds the GPU (see gpu.compute_mode)")
    if re.search(r"out of memory", error, re.I):
        return "nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv   # who holds the memory\n# stop those processes, or run gpudoctor smoke when the GPU is idle"
    if re.search(r"cudnn", error, re.I):
        return "gpudoctor check --only cudnn -v   # a cuDNN that loads but cannot run: its version and which copy was loaded"
    if re.search(r"no kernel image|sm_\d+ is not compatible", error, re.I):
        return "gpudoctor check --only torch -v   # this torch has no kernels for the GPU: torch.arch_list names the build to install"
    return "gpudoctor check -v   # the driver, CUDA and framework checks name the cause\n" + rerun


def _rerun(python: str, framework: str, smoke: dict) -> str:
    return f"{python} -X faulthandler {PROBE_SCRIPT} smoke {framework} {smoke['device']} {smoke['steps']}   # rerun it to see where it stops"


def _failure_fix(answer: dict, rerun: str) -> str:
    tail = " | ".join(answer.get("stderr_tail", [])[-2:])
    return rerun + (f"\n# it said: {tail[:200]}" if tail else "")


def _exclusive(gpus: dict | None) -> list[dict]:
    """The GPUs in an exclusive compute mode, where a second process gets 'busy or unavailable' (DIGITS#2005, pytorch#3871)."""
    return [d for d in (gpus or {}).get("devices") or [] if not d.get("error") and d.get("compute_mode") in EXCLUSIVE_MODES]


def _exclusive_fix(framework: str, exclusive: list[dict]) -> str:
    ids = ",".join(str(d["index"]) for d in exclusive)
    return ("nvidia-smi --query-compute-apps=gpu_bus_id,pid,process_name --format=csv   # which process holds it\n"
            f"# when it is free, rerun the test: gpudoctor smoke --framework {framework} (gpudoctor's own processes take turns)\n"
            f"# or let processes share it: sudo nvidia-smi -i {ids} -c DEFAULT (see gpu.compute_mode)")


def trains(smoke: dict, framework: str, name: str, gpus: dict | None = None):
    """One framework's verdict: every run trained on every device, or the first problem with its fix.

    'Busy or unavailable' on GPUs in an exclusive compute mode is a warning: the GPU works, another process had it."""
    problems, passed, skipped = [], [], []
    for run in _runs(smoke, framework):
        answer, python = run["answer"], run["python"]
        rerun = _rerun(python, framework, smoke)
        if answer.get("failure") == "not recorded":
            skipped.append(f"the {name} smoke test in {python} was not recorded")
            continue
        if answer.get("failure"):
            return fail(f"the {name} smoke test in {python} {answer['message']}",
                        _failure_fix(answer, rerun), answer.get("stderr_tail", [])[-5:])
        kind = state(answer, framework)
        if kind == "absent":
            skipped.append(f"{name} is not installed in {python}")
            continue
        if kind == "import_error":
            return fail(f"the {name} smoke test in {python} could not import {framework}: {answer['failed'][:200]}",
                        f"gpudoctor check --only {framework}   # why {framework} does not import, and the fix", answer.get("traceback_tail", [])[-4:])
        if answer.get("unavailable"):
            skipped.append(f"{answer['unavailable']} in {python}")
            continue
        for device in answer.get("devices") or []:
            found = device_problems(device, rerun)
            problems += found
            if not found:
                passed.append(device)
    if problems:
        exclusive = _exclusive(gpus)
        if exclusive and all(BUSY.search(problem) for problem, _ in problems):
            return warn(f"{name} was turned away by the GPU ('busy or unavailable'): {exclusive[0]['label']} is in compute mode "
                        f"{COMPUTE_MODES.get(exclusive[0]['compute_mode'])}, one process at a time, and another process held it",
                        _exclusive_fix(framework, exclusive), [p for p, _ in problems] + skipped)
        return fail(problems[0][0], problems[0][1], [p for p, _ in problems[1:]] + skipped)
    if not passed:
        raise Skip("; ".join(skipped))
    first = passed[0]
    losses = first["mixed"]["value"]
    return ok(f"{name} trained on {len(passed)} device(s): loss {losses[0]:.3f} → {losses[-1]:.3f} in {len(losses)} "
              f"{first['mixed']['dtype']} steps; float32 matches the CPU to {first['fp32']['max_rel_diff']:.0e}",
              [f"{d.get('name') or d['device']}: {_figures(d) or 'trained'}" for d in passed] + skipped)


@check("smoke.torch", "PyTorch trains on every GPU and gets the CPU's numbers", needs=("smoke",), uses=("gpus",))
def torch_trains(smoke, gpus):
    return trains(smoke, "torch", "PyTorch", gpus)


@check("smoke.jax", "JAX trains on every GPU and gets the CPU's numbers", needs=("smoke",), uses=("gpus",))
def jax_trains(smoke, gpus):
    return trains(smoke, "jax", "JAX", gpus)


@check("smoke.tensorflow", "TensorFlow trains on every GPU and gets the CPU's numbers", needs=("smoke",), uses=("gpus",))
def tensorflow_trains(smoke, gpus):
    return trains(smoke, "tensorflow", "TensorFlow", gpus)


def _figures(device: dict) -> str:
    parts = []
    for key, value in device.items():
        if key.startswith("matmul_tflops_") and "value" in value:
            parts.append(f"{key[len('matmul_tflops_'):]} matmul {value['value']:g} TFLOP/s")
    if "value" in (device.get("copy_gbps") or {}):
        parts.append(f"copy {device['copy_gbps']['value']:g} GB/s")
    pinned = (device.get("pinned_gbps") or {}).get("value")
    if pinned:
        parts.append(f"pinned host→device {pinned['h2d']:g} GB/s, device→host {pinned['d2h']:g} GB/s")
    memory = (device.get("memory") or {}).get("value")
    if memory:
        parts.append(f"memory pattern over {memory['tested_bytes'] >> 30} GiB: {memory['mismatches']} errors")
    return "; ".join(parts)


@check("smoke.speed", "Each GPU reaches its model's matmul and memory speed", needs=("smoke",), uses=("nvml",))
def speed(smoke, nvml):
    slow, lines = [], []
    for run in _trained(smoke, "torch"):
        for device in run["answer"]["devices"]:
            if not device["device"].startswith("cuda"):
                raise Skip("measured on the CPU: speed is judged on GPUs only")
            ref = reference(device.get("name", ""))
            matmul = next((v.get("value") for k, v in device.items() if k in ("matmul_tflops_bfloat16", "matmul_tflops_float16")), None)
            copy = (device.get("copy_gbps") or {}).get("value")
            if not ref:
                lines.append(f"{device.get('name')}: {_figures(device)} (no reference figure for this model)")
                continue
            shares = {"matmul": matmul / ref["bf16_tflops"] if matmul else 0.0, "copy": copy / ref["copy_gbps"] if copy else 0.0}
            lines.append(f"{device.get('name')} ({device['device']}): matmul {matmul} TFLOP/s = {shares['matmul']:.0%} of "
                         f"{ref['bf16_tflops']}, copy {copy} GB/s = {shares['copy']:.0%} of {ref['copy_gbps']}" + _twice(device))
            if min(shares.values()) < SLOW:
                slow.append((device, shares))
    if not lines:
        raise Skip("the smoke test measured no GPU")
    if slow:
        device, shares = slow[0]
        return warn(f"{device.get('name')} ({device['device']}) runs at {min(shares.values()):.0%} of its model's speed",
                    _slow_fix(device, nvml), lines + _causes(device, nvml))
    return ok(f"every measured GPU reaches at least {SLOW:.0%} of its model's speed", lines)


def _twice(device: dict) -> str:
    """Which figures were low at first and measured again (smoke_probe.second_look)."""
    again = [f"{key.split('_')[0]} {figure.get('first', figure.get('value'))} then {figure.get('value') if 'first' in figure else figure.get('again')}"
             for key, figure in device.items() if isinstance(figure, dict) and ("first" in figure or "again" in figure)]
    return f" (measured twice: {', '.join(again)})" if again else ""


def _nvml_device(device: dict, nvml: dict | None) -> dict:
    """NVML's record of the GPU the smoke test ran on, matched by UUID or PCI bus id (the CUDA ordinal is not NVML's index)."""
    devices = (nvml or {}).get("devices") or []
    for info in devices:
        bus = bus_id((info.get("pci") or {}).get("busId") if isinstance(info.get("pci"), dict) else None)
        if (device.get("uuid") and info.get("uuid") == device["uuid"]) or (device.get("pci_bus") and bus == device["pci_bus"]):
            return info
    index = int(device["device"].split(":")[1]) if ":" in device["device"] else 0
    return devices[index] if not (device.get("uuid") or device.get("pci_bus")) and index < len(devices) else {}


def _causes(device: dict, nvml: dict | None) -> list[str]:
    info = _nvml_device(device, nvml)
    causes = []
    reasons = info.get("throttle_reasons")
    if isinstance(reasons, int) and reasons & ~0x1:  # 0x1 is plain idle
        causes.append(f"NVML clock throttle reasons: {reasons:#x} (0x4 power cap, 0x8 hardware slowdown, 0x20/0x40 thermal)")
    if isinstance(info.get("power_limit_mw"), int):
        causes.append(f"power limit {info['power_limit_mw'] / 1000:.0f} W")
    if info.get("pcie_width_cur") and info.get("pcie_width_max") and info["pcie_width_cur"] < info["pcie_width_max"]:
        causes.append(f"PCIe link x{info['pcie_width_cur']} of x{info['pcie_width_max']}")
    return causes


def _slow_fix(device: dict, nvml: dict | None) -> str:
    index = gpu_id(device)
    return (f"nvidia-smi -q -i {index} -d PERFORMANCE,POWER,CLOCK   # throttle reasons, power cap, clocks\n"
            f"nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv   # another job sharing the GPU\n"
            f"# a power cap below the default: sudo nvidia-smi -i {index} -pl <default limit in W>; then rerun gpudoctor smoke")


@check("smoke.multi_gpu", "GPUs reach each other: peer access and an NCCL all-reduce", needs=("smoke",))
def multi_gpu(smoke):
    for run in _trained(smoke, "torch"):
        answer = run["answer"]
        devices = answer.get("devices") or []
        if len(devices) < 2:
            raise Skip(f"{len(devices)} device(s) tested: peer access and NCCL need two or more")
        ranks = (answer.get("allreduce") or {}).get("value") or []
        broken = [r for r in ranks if r.get("error") or not r.get("sum_ok")]
        if "error" in (answer.get("allreduce") or {}) or broken or len(ranks) < len(devices):
            why = (answer.get("allreduce") or {}).get("error") or (broken[0].get("error") if broken else None) \
                or f"{len(ranks)} of {len(devices)} ranks answered"
            return fail(f"the NCCL all-reduce across {len(devices)} GPUs failed: {why}",
                        "env NCCL_DEBUG=INFO NCCL_DEBUG_SUBSYS=INIT,P2P gpudoctor smoke -v   # NCCL says why it could not connect\n"
                        "# a hang or a wrong sum with P2P on: try NCCL_P2P_DISABLE=1; if that works, disable PCIe ACS (see gpu.p2p)")
        peers = (answer.get("peer_access") or {}).get("value") or []
        missing = [f"{i}→{j}" for i, row in enumerate(peers) for j, can in enumerate(row) if not can]
        busbw = max((r.get("busbw_gbps") or 0 for r in ranks), default=0)
        if missing:
            return warn(f"no peer access between GPUs {', '.join(missing[:6])}: NCCL goes through host memory",
                        "nvidia-smi topo -m   # how the GPUs connect\n# inside a VM, enable P2P in the hypervisor; on bare metal, disable PCIe ACS (see gpu.p2p)",
                        [f"all-reduce bus bandwidth {busbw} GB/s"])
        return ok(f"{len(devices)} GPUs: peer access between every pair; NCCL all-reduce sums right at {busbw} GB/s bus bandwidth")
