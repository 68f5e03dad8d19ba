"""The policy's expectations as `policy.*` checks, and what it does to other checks' results.

Each expectation the file sets becomes one check, registered like any plugin's, so the engine
collects what it needs and `--only policy` works. Waivers and "warnings that fail" act on the
other checks' results after they ran (`apply`).
"""

from __future__ import annotations

import dataclasses
import datetime
import fnmatch

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from gpudoctor import fixes
from gpudoctor.frameworks import state
from gpudoctor.gpus import COMPUTE_MODES, answering_gpus, compute_mode_fix, driver_cuda, gpu_devices, no_driver, smi_ids
from gpudoctor.models import Result, Status
from gpudoctor.plugin import Check, Skip, check, collector, fail, ok, skip, spec_of, warn
from gpudoctor.loader import Plugin
from gpudoctor.policy import Policy
from gpudoctor.speed import reference, smoke_figure

GIB = 1 << 30
GPU_FACTS = ("driver", "nvml", "nvidia_smi")
NOT_THIS_POLICY = "# or, if this node is right and the policy is wrong: change {key} for this host in {path} (a [[hosts]] entry)"


def _tail(policy: Policy, key: str) -> str:
    return NOT_THIS_POLICY.format(key=key, path=policy.path)


def _with_tail(fix: str, policy: Policy, key: str) -> str:
    """The fix, then the policy alternative as a comment; a reboot stays the last line."""
    lines = fix.splitlines()
    last = [lines.pop()] if lines and lines[-1].strip() == "sudo reboot" else []
    return "\n".join(lines + [_tail(policy, key)] + last)


def _in(spec: str, version: str | None) -> bool:
    try:
        return spec == "*" or (version is not None and SpecifierSet(spec).contains(Version(version), prereleases=True))
    except InvalidVersion:
        return False


def _gpu_count(policy: Policy) -> Check:
    want = policy.gpus["count"]

    @check("policy.gpu_count", f"{want} GPU(s) answer", uses=GPU_FACTS)
    def gpu_count(driver, nvml, nvidia_smi):
        found = [] if no_driver(driver, nvml) else [d for d in gpu_devices(nvml, nvidia_smi) if not d.get("error")]
        if len(found) == want:
            return ok(f"{want} GPU(s) answer, as the policy expects")
        return fail(f"{len(found)} GPU(s) answer; the policy expects {want}",
                    "nvidia-smi -L   # the GPUs that answer the driver\nlspci -d 10de: | grep -i -e 3d -e vga   # the GPUs on the PCI bus\n"
                    "# a GPU on the bus that does not answer: gpudoctor check --only gpu,driver -v says why\n" + _tail(policy, "[gpus] count"),
                    [d["label"] + f": {d.get('name')}" for d in found])
    return gpu_count


def _per_gpu(id: str, title: str, key: str, policy: Policy, judge, fix) -> Check:
    """A check that every GPU meets one expectation; `judge(device) -> problem or None`, `fix(bad) -> text`."""

    @check(id, title, needs=("nvml",), uses=("driver", "nvidia_smi"))
    def per_gpu(nvml, driver, nvidia_smi):
        devices = answering_gpus(driver, nvml, nvidia_smi)
        bad = [(d, problem) for d in devices for problem in [judge(d)] if problem]
        if not bad:
            return ok(f"all {len(devices)} GPU(s): {title[0].lower() + title[1:]}")
        lines = [f"{d['label']}: {problem}" for d, problem in bad]
        return fail(f"{len(bad)} of {len(devices)} GPU(s) miss the policy: {lines[0]}", _with_tail(fix([d for d, _ in bad]), policy, key), lines)
    return per_gpu


def _mode(name: str, field: str, want: bool, on: str, off: str):
    def judge(device):
        value = device.get(field)
        current = value[0] if isinstance(value, list) else value
        if current is None:
            return f"{name} mode unknown (not reported)"
        return None if bool(current) == want else f"{name} {'off' if want else 'on'}, the policy wants it {'on' if want else 'off'}"

    def fix(bad):
        return "\n".join((on if want else off).format(gpu=gpu) for gpu in smi_ids(bad))
    return judge, fix


def _gpu_checks(policy: Policy) -> list[Check]:
    gpus, made = policy.gpus, []
    if "count" in gpus:
        made.append(_gpu_count(policy))
    if "model" in gpus:
        pattern = gpus["model"]
        made.append(_per_gpu("policy.gpu_model", f"GPU model is {pattern}", "[gpus] model", policy,
                             lambda d: None if fnmatch.fnmatch((d.get("name") or "").lower(), pattern.lower()) else f"{d.get('name')} is not {pattern}",
                             lambda bad: "nvidia-smi --query-gpu=index,name,uuid --format=csv   # what this node has\n"
                                         "# this node holds other GPUs than its policy: move it to the pool whose policy fits"))
    if "memory_min_gib" in gpus:
        least = gpus["memory_min_gib"]
        made.append(_per_gpu("policy.gpu_memory", f"Each GPU has at least {least:g} GiB", "[gpus] memory_min_gib", policy,
                             lambda d: _short_memory(d, least),
                             lambda bad: "nvidia-smi --query-gpu=index,name,memory.total --format=csv\n"
                                         "# less memory than the model has: MIG or vGPU slices show only their share (nvidia-smi -q -d MIG)"))
    modes = {"ecc": ("ECC", "ecc_mode", "sudo nvidia-smi -i {gpu} -e 1   # applies after a GPU reset or reboot",
                     "sudo nvidia-smi -i {gpu} -e 0   # applies after a GPU reset or reboot"),
             "mig": ("MIG", "mig_mode", "sudo nvidia-smi -i {gpu} -mig 1   # then create instances: sudo nvidia-smi mig -i {gpu} -cgi <profiles> -C",
                     "sudo nvidia-smi -i {gpu} -mig 0   # needs an idle GPU; some need a reset"),
             "persistence": ("persistence", "persistence_mode", "sudo systemctl enable --now nvidia-persistenced   # {gpu}",
                             "sudo systemctl disable --now nvidia-persistenced   # {gpu}")}
    for key, (name, field, on, off) in modes.items():
        if key in gpus:
            judge, fix = _mode(name, field, gpus[key], on, off)
            made.append(_per_gpu(f"policy.{key}", f"{name} {'on' if gpus[key] else 'off'}", f"[gpus] {key}", policy, judge, fix))
    if "compute_mode" in gpus:
        want = gpus["compute_mode"]
        made.append(_per_gpu("policy.compute_mode", f"Compute mode {want}", "[gpus] compute_mode", policy,
                             lambda d: None if COMPUTE_MODES.get(d.get("compute_mode")) == want
                             else f"compute mode {COMPUTE_MODES.get(d.get('compute_mode'), 'not reported')}, the policy wants {want}",
                             lambda bad: compute_mode_fix(bad, want)))
    if "pcie_gen" in gpus or "pcie_width" in gpus:
        made.append(_per_gpu("policy.pcie", _pcie_title(gpus), "[gpus] pcie_gen/pcie_width", policy, lambda d: _pcie_short(d, gpus),
                             lambda bad: f"sudo lspci -vv {'-s ' + bad[0]['bus'] if bad[0].get('bus') else '-d 10de:'} | grep -e LnkCap -e LnkSta   # what the slot and GPU negotiated\n"
                                         "# a link below the policy: reseat the GPU or its riser, check the slot's BIOS setting (Gen/bifurcation)"))
    if gpus.get("p2p"):
        made.append(_p2p(policy))
    return made


def _short_memory(device: dict, least: float) -> str | None:
    total = (device.get("memory") or {}).get("total")
    if not isinstance(total, int):
        return "memory size not reported"
    return None if total / GIB >= least else f"{total / GIB:.1f} GiB, the policy wants at least {least:g}"


def _pcie_title(gpus: dict) -> str:
    parts = ([f"Gen{gpus['pcie_gen']}"] if "pcie_gen" in gpus else []) + ([f"x{gpus['pcie_width']}"] if "pcie_width" in gpus else [])
    return f"PCIe link can reach {' '.join(parts)}"


def _pcie_short(device: dict, gpus: dict) -> str | None:
    """The link's maximum with this slot (idle links train down their speed, so the current speed is not judged)."""
    gen, width = device.get("pcie_gen_max"), device.get("pcie_width_max")
    if gen is None and width is None:
        return "PCIe link not reported"
    short = []
    if "pcie_gen" in gpus and isinstance(gen, int) and gen < gpus["pcie_gen"]:
        short.append(f"Gen{gen} < Gen{gpus['pcie_gen']}")
    if "pcie_width" in gpus and isinstance(width, int) and width < gpus["pcie_width"]:
        short.append(f"x{width} < x{gpus['pcie_width']}")
    return ", ".join(short) or None


def _p2p(policy: Policy) -> Check:
    @check("policy.p2p", "Every GPU pair reads peer-to-peer", needs=("p2p",), uses=GPU_FACTS)
    def p2p(p2p, driver, nvml, nvidia_smi):
        devices = answering_gpus(driver, nvml, nvidia_smi)
        if len(devices) < 2:
            return ok(f"{len(devices)} GPU: no pair to connect")
        if p2p.get("matrix") is None:
            raise Skip(f"`nvidia-smi topo -p2p r` gave no matrix ({p2p.get('error')})")
        broken = sorted({f"{a}-{b}: {s}" for a, row in p2p["matrix"].items() for b, s in row.items() if a != b and s not in ("OK", "X")})
        if not broken:
            return ok(f"all {len(devices)} GPUs read each other peer-to-peer")
        return fail(f"{len(broken)} GPU pair(s) cannot read peer-to-peer: {broken[0]}",
                    "nvidia-smi topo -m   # how the GPUs connect\ngpudoctor check --only gpu.p2p -v   # why, and the fix (ACS, IOMMU)\n"
                    + _tail(policy, "[gpus] p2p"), broken)
    return p2p


def _driver_checks(policy: Policy) -> list[Check]:
    want, made = policy.driver, []
    if "version" in want or "branch" in want:
        @check("policy.driver", "Driver version as the policy says", uses=GPU_FACTS + ("os",))
        def driver_version(driver, nvml, nvidia_smi, os):
            version = (driver or {}).get("version") or (nvml or {}).get("driver_version")
            if not version:
                return fail(f"no NVIDIA driver is loaded; the policy wants {_wanted(want)}", _driver_fix(os, want, policy))
            problems = []
            if "branch" in want and version.split(".")[0] != want["branch"]:
                problems.append(f"branch {version.split('.')[0]}, not {want['branch']}")
            if "version" in want and not _in(want["version"], version):
                problems.append(f"outside {want['version']}")
            if problems:
                return fail(f"driver {version}: {'; '.join(problems)}", _driver_fix(os, want, policy))
            return ok(f"driver {version} is {_wanted(want)}")
        made.append(driver_version)
    if "cuda" in want:
        @check("policy.driver_cuda", f"The driver runs CUDA {want['cuda']}", uses=GPU_FACTS + ("os",))
        def cuda(driver, nvml, nvidia_smi, os):
            runs = driver_cuda(nvml, nvidia_smi)
            if runs and _in(want["cuda"], runs):
                return ok(f"the driver runs CUDA {runs} ({want['cuda']})")
            return fail(f"the driver runs CUDA {runs or 'nothing (no driver answers)'}; the policy wants {want['cuda']}",
                        _with_tail("# a driver whose CUDA is in range: see https://docs.nvidia.com/cuda/cuda-toolkit-release-notes/ (minimum driver per CUDA)\n"
                                   + fixes.install_driver(os), policy, "[driver] cuda"))
        made.append(cuda)
    return made


def _wanted(want: dict) -> str:
    return " and ".join(([f"branch {want['branch']}"] if "branch" in want else []) + ([want["version"]] if "version" in want else []))


def _driver_fix(os: dict | None, want: dict, policy: Policy) -> str:
    install = fixes.install_branch(os, want["branch"], open_modules=True) if "branch" in want else fixes.install_driver(os)
    pin = f"# the policy wants {want['version']}: install that version by name if the newest is outside it\n" if "version" in want else ""
    return _with_tail(pin + install, policy, "[driver]")


def _python_checks(policy: Policy) -> list[Check]:
    if not policy.pythons:
        return []

    @check("policy.frameworks", "Each interpreter has the policy's frameworks and sees every GPU", needs=("python_envs",), uses=GPU_FACTS)
    def frameworks(python_envs, driver, nvml, nvidia_smi):
        gpus = 0 if no_driver(driver, nvml) else len([d for d in gpu_devices(nvml, nvidia_smi) if not d.get("error")])
        judged = python_envs.get("interpreters") or []
        problems, passed = [], []
        for entry in policy.pythons:
            pattern = entry.get("path", "*")
            chosen = [i for i in judged if fnmatch.fnmatch(i["path"], pattern)]
            if not chosen:
                problems.append((f"{pattern}: not judged", f"gpudoctor check --policy {policy.path} --python {pattern}   # judge that interpreter"))
            for interpreter in chosen:
                found = _framework_problems(interpreter, entry, gpus)
                problems += found
                passed += [] if found else [interpreter["path"]]
        if problems:
            return fail(f"{len(problems)} framework expectation(s) unmet: {problems[0][0]}",
                        _with_tail("\n".join(dict.fromkeys(fix for _, fix in problems)), policy, "[[python]]"), [p for p, _ in problems])
        return ok(f"{', '.join(passed)}: every framework the policy names, in range" + (f", each seeing all {gpus} GPU(s)" if gpus else ""))
    return [frameworks]


def _installed(interpreter: dict, framework: str) -> tuple[str | None, int | None]:
    """A framework's version and how many GPUs it sees, from its probe answer."""
    answer = interpreter.get(framework) or {}
    plain = {k: (v.get("value") if isinstance(v, dict) and "value" in v else v) for k, v in answer.items()}
    version = plain.get("jax") if framework == "jax" else plain.get("cupy") if framework == "cupy" else plain.get("version")
    seen = {"torch": plain.get("device_count"), "cupy": plain.get("devices"),
            "jax": len([d for d in plain.get("devices") or [] if not str(d).startswith(("cpu", "TFRT_CPU"))]) if "devices" in plain else None,
            "tensorflow": len(plain["gpus"]) if isinstance(plain.get("gpus"), list) else None}[framework]
    return version, seen


def _framework_problems(interpreter: dict, entry: dict, gpus: int) -> list[tuple[str, str]]:
    python, problems, pins = interpreter["path"], [], []
    for framework, spec in (entry.get("frameworks") or {}).items():
        kind = state(interpreter.get(framework), framework)
        pin = f"'{'jax[cuda12]' if framework == 'jax' else framework}{'' if spec == '*' else spec}'"
        if kind == "absent":
            problems.append((f"{python}: {framework} is not installed (policy: {spec})", ""))
            pins.append(pin)
            continue
        if kind != "ok":
            problems.append((f"{python}: {framework} does not work ({kind})", f"gpudoctor check --python {python} --only {framework} -v   # why, and the fix"))
            continue
        version, seen = _installed(interpreter, framework)
        if not _in(spec, version):
            problems.append((f"{python}: {framework} {version} is not {spec}", ""))
            pins.append(pin)
        if entry.get("sees_all_gpus", True) and gpus and seen is not None and seen < gpus:
            problems.append((f"{python}: {framework} sees {seen} of {gpus} GPU(s)",
                             f"gpudoctor check --python {python} --only {framework},gpu.visible_devices -v   # why it sees fewer"))
    install = f"{python} -m pip install {' '.join(pins)}" if pins else ""
    return [(problem, fix or install) for problem, fix in problems]


def _smoke_checks(policy: Policy) -> list[Check]:
    if "min_speed_share" not in policy.smoke:
        return []
    least = policy.smoke["min_speed_share"]

    @check("policy.smoke_speed", f"Each GPU reaches {least:.0%} of its model's reference speed", needs=("smoke",))
    def smoke_speed(smoke):
        devices = [d for run in (smoke.get("runs") or []) if run["framework"] == "torch" for d in run["answer"].get("devices") or []
                   if d["device"].startswith("cuda")]
        if smoke.get("skipped") or not devices:
            raise Skip(smoke.get("skipped") or "the PyTorch smoke test measured no GPU (see smoke.torch)")
        lines, slow = [], []
        for device in devices:
            ref = reference(device.get("name"))
            if not ref:
                lines.append(f"{device.get('name')}: no reference figure for this model")
                continue
            shares = {what: (smoke_figure(device, what) or 0) / ref[what] for what in ("bf16_tflops", "copy_gbps")}
            lines.append(f"{device.get('name')} ({device['device']}): matmul {shares['bf16_tflops']:.0%}, copy {shares['copy_gbps']:.0%} of reference")
            if min(shares.values()) < least:
                slow.append(lines[-1])
        if slow:
            return fail(f"{len(slow)} GPU(s) below {least:.0%} of reference: {slow[0]}",
                        "gpudoctor check --only smoke -v   # smoke.speed names the cause: clocks, power cap, PCIe, another job\n"
                        + _tail(policy, "[smoke] min_speed_share"), lines)
        if all("no reference" in line for line in lines):
            raise Skip("; ".join(lines))
        return ok(f"every GPU reaches {least:.0%} of its model's reference speed", lines)
    return [smoke_speed]


def policy_plugin(policy: Policy) -> Plugin:
    """The policy's checks as one plugin, run like the built-ins."""
    made = _gpu_checks(policy) + _driver_checks(policy) + _python_checks(policy) + _smoke_checks(policy) + [_waivers(policy)]
    resolved = policy.to_dict()

    @collector("policy")
    def policy_facts(host):
        """The policy as it applies to this host: a fact, so that gpu.xid takes its Xid classes and reports show it."""
        return resolved
    return Plugin("policy", "gpudoctor", (spec_of(policy_facts),), tuple(spec_of(check) for check in made))


def apply(results: list[Result], policy: Policy, today: datetime.date | None = None) -> list[Result]:
    """Waivers in force turn a check's problem into a skip that says so; expired ones stop counting and say it;
    warnings the policy names become failures."""
    today = today or datetime.date.today()
    out = []
    for result in results:
        waiver = next((w for w in policy.waivers if fnmatch.fnmatchcase(result.id, w.id)), None)
        bad = result.status in (Status.WARN, Status.FAIL, Status.ERROR)
        if waiver and bad and waiver.until >= today:
            result = dataclasses.replace(result, status=Status.SKIP, fix="", summary=f"waived until {waiver.until}: {waiver.reason} "
                                         f"(was {result.status.value}: {result.summary})")
        elif waiver and bad:
            result = dataclasses.replace(result, details=result.details + (f"the waiver for {waiver.id} expired on {waiver.until} "
                                                                          f"({waiver.reason}): it no longer counts",))
        if result.status == Status.WARN and any(fnmatch.fnmatchcase(result.id, glob) for glob in policy.warnings_fail):
            result = dataclasses.replace(result, status=Status.FAIL, summary=f"{result.summary} (the policy counts this warning as a failure)")
        out.append(result)
    return out


def _waivers(policy: Policy) -> Check:
    @check("policy.waivers", "Waivers in force and not expired")
    def waivers():
        today = datetime.date.today()
        expired = [w for w in policy.waivers if w.until < today]
        lines = [f"{w.id}: {w.reason} (until {w.until}{', expired' if w.until < today else ''})" for w in policy.waivers]
        if expired:
            first = expired[0]
            return warn(f"{len(expired)} waiver(s) expired, and their checks count again: {first.id} on {first.until}",
                        f"# fix what {first.id} reports, or renew the waiver in {policy.path} (line {first.line}) with a new until date", lines)
        return ok(f"{len(policy.waivers)} waiver(s) in force", lines) if policy.waivers else skip("the policy waives nothing")
    return waivers
