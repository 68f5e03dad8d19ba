"""The gpu area: per-GPU health from NVML, with `nvidia-smi -q -x` as the fallback."""

from __future__ import annotations

from gpudoctor import driverlog, fixes, kb
from gpudoctor.context import (
    confined,
    container_kind,
    describe,
    hypervisor,
    request_gpus,
    wsl,
)
from gpudoctor.gpus import COMPUTE_MODES, NO_MODULE, answering, bus_id, compute_mode_fix, no_driver
from gpudoctor.gputurn import EXCLUSIVE_MODES, mps_control
from gpudoctor.host import NOT_RECORDED, NotRecorded
from gpudoctor.parsers import parse_p2p_matrix
from gpudoctor.plugin import check, collector, fail, ok, skip, warn

GIB = 1 << 30
NVIDIA_VENDOR = "0x10de"


@collector("pci")
def collect_pci(host) -> dict:
    """NVIDIA functions on the PCI bus: GPUs (display class) and NVSwitches (bridge class)."""
    entries = host.listdir("/sys/bus/pci/devices")
    if entries is None:
        return {"gpus": None, "nvswitches": None}
    gpus, switches, vendors = [], [], set()
    for bdf in entries:
        vendor = (host.read(f"/sys/bus/pci/devices/{bdf}/vendor").text or "").strip()
        vendors.add(vendor)
        if vendor != NVIDIA_VENDOR:
            continue
        cls = (host.read(f"/sys/bus/pci/devices/{bdf}/class").text or "").strip()
        if cls.startswith("0x03"):
            gpus.append(bdf)
        elif cls.startswith("0x0680"):
            switches.append(bdf)
    return {"gpus": gpus, "nvswitches": switches, "vendors": sorted(v for v in vendors if v)}


@collector("p2p")
def collect_p2p(host) -> dict:
    """Which GPU pairs can read each other's memory directly (`nvidia-smi topo -p2p r`)."""
    result = host.run(["nvidia-smi", "topo", "-p2p", "r"])
    if result.error == NOT_RECORDED:
        raise NotRecorded("nvidia-smi topo -p2p r")
    return {"matrix": parse_p2p_matrix(result.stdout) if result.ok else None, "error": result.error or (None if result.ok else result.output[:200])}


@collector("mps")
def collect_mps(host) -> dict:
    """Whether an MPS control daemon's socket is where this environment's CUDA processes look for it."""
    return mps_control(host)


@collector("environment")
def collect_environment(host) -> dict:
    """The variables that decide which GPUs CUDA and the container runtime expose."""
    return dict(host.environ)


@check("gpu.present", "An NVIDIA GPU is attached", needs=("pci",),
       uses=("driver", "nvml", "platform", "container", "environment", "nvidia_smi", "os"))
def present(pci, driver, nvml, platform, container, environment, nvidia_smi, os):
    """No NVIDIA device on the PCI bus and none from the driver: no driver install helps; a GPU must be attached (issue 8)."""
    if pci.get("gpus") is None:
        return skip("the PCI bus could not be read")
    if wsl(container, os):
        return skip("WSL2 shows no PCI bus: its GPU comes from the Windows driver (see driver.loaded)")
    if pci["gpus"] or not no_driver(driver, nvml):
        count = len(pci["gpus"]) or len((nvml or {}).get("devices") or [])
        return ok(f"{count} NVIDIA GPU(s) on the PCI bus" if pci["gpus"] else f"{count} NVIDIA GPU(s) answer NVML")
    where = describe(platform, pci, container)
    vm = hypervisor(platform, pci)
    place = confined(container, environment)
    if place and container_kind(container) is None:  # a job on a node without GPUs
        return fail(f"there is no NVIDIA GPU on this node ({where}): {place} runs where no GPU is attached",
                    fix=request_gpus(container, environment) or "# submit the job to a partition with GPUs")
    if vm:
        fix = (f"# this is {where}: no NVIDIA GPU is attached to it, so no driver can help.\n"
               "# attach one (PCI passthrough or a vGPU profile in the hypervisor), or move to a GPU instance type\n"
               "# (AWS g5/p4d/p5, Google Cloud a2/a3/g2, Azure NC/ND), then run gpudoctor check again")
    else:
        fix = (f"# this is {where} with no NVIDIA device on its PCI bus: no driver can help.\n"
               "# seat a GPU (and its power cables), or check that the BIOS has not disabled the slot, then run gpudoctor check again")
    if container_kind(container):
        fix += (f"\n# then run this {container_kind(container)} container on a host with a GPU, given its GPUs "
                "(docker run --gpus all; Kubernetes: resources.limits nvidia.com/gpu)")
    fix += "\n# or, if this workload is meant for the CPU, run the framework on the CPU (device 'cpu'): no GPU setup is needed"
    if (nvidia_smi or {}).get("category") == "driver_not_loaded" or (driver or {}).get("on_disk"):
        remove = {"apt": "sudo apt-get remove --purge '^nvidia-.*'", "dnf": "sudo dnf remove 'nvidia-*'",
                  "zypper": "sudo zypper remove 'nvidia-*'"}.get(fixes.family(os) or "", "remove the NVIDIA driver packages")
        fix += f"\n# the NVIDIA driver installed here has no GPU to drive; if this machine is meant to run on CPUs: {remove}"
    return fail(f"there is no NVIDIA GPU on this machine: {where}, with no NVIDIA device on its PCI bus", fix=fix,
                details=[f"PCI vendors here: {', '.join(pci.get('vendors') or []) or 'none'}"])


@check("gpu.visible", "Every GPU on the bus is usable", needs=("driver", "gpus"), uses=("pci", "kernel_log", "os", "boot"))
def visible(driver, gpus, pci, kernel_log, os, boot):
    """A GPU on the bus but unclaimed, lost, or dropped by this driver branch is silently missing (A6, A7, B20)."""
    on_bus = {bus_id(b) for b in (pci or {}).get("gpus") or []}
    claimed = {bus_id(b) for b in driver.get("gpus") or []}
    devices = gpus["devices"]
    lost = [d for d in devices if d.get("error")]
    answering_buses = {d["bus"] for d in devices if not d.get("error")}
    said = driverlog.cause(kernel_log, os, ((os or {}).get("kernel") or {}).get("arch") or "x86_64", driver.get("version"), boot)
    if on_bus - claimed or (said and (not answering_buses or said.refuses_a_gpu)):
        unclaimed = ", ".join(sorted(on_bus - claimed)) or "a GPU"
        if said and answering_buses:  # the others work on this driver: a branch or flavour switch would cost them
            return warn(f"{len(answering_buses)} GPU(s) work, but the driver ignores another: {said.summary}", details=said.details,
                        fix="nvidia-smi -L   # the GPUs this driver drives\n"
                            "# the ignored GPU needs another driver than the working ones: remove it from this machine, or give it\n"
                            "# a machine of its own; switching this machine's driver for it would stop the others")
        if said:
            return fail(f"{len(on_bus) or 'an'} NVIDIA GPU(s) on the PCI bus, {len(claimed)} claimed by the driver: {said.summary}",
                        fix=said.fix, details=said.details)
        if claimed or on_bus:
            return fail(f"{len(on_bus)} NVIDIA GPU(s) on the PCI bus but the driver claimed {len(claimed)}; unclaimed: {unclaimed}",
                        fix=f"sudo dmesg | grep -i -E 'NVRM|RmInitAdapter'   # why it failed\nlspci -k -s {sorted(on_bus - claimed)[0]}"
                            "   # 'Kernel driver in use' should be nvidia, not nouveau or vfio-pci")
    if lost or (claimed and answering_buses and claimed - answering_buses):
        gone = ", ".join(sorted(claimed - answering_buses)) or ", ".join(d["label"] for d in lost)
        if said and said.kind in ("rm_init_failed", "gsp_firmware", "bar_invalid"):  # it never started: not lost
            return fail(f"GPU(s) {gone} claimed by the driver but not answering: {said.summary}", fix=said.fix, details=said.details)
        return fail(f"the driver knows GPU(s) that NVML cannot reach: {gone} (fallen off the bus or lost)",
                    fix="sudo dmesg | grep -E 'Xid|fallen off'   # Xid 79 confirms it\n"
                        "# check power cables, cooling and seating after the reboot\nsudo reboot")
    if not answering_buses:
        return skip("no GPU answered NVML or nvidia-smi (see driver.nvidia_smi)")
    source = "answering NVML" if gpus["source"] == "nvml" else "listed by nvidia-smi (NVML did not answer)"
    seen = f"{len(on_bus)} on the PCI bus, " if on_bus else ""
    return ok(f"{len(answering_buses)} GPU(s): {seen}{len(claimed) or len(answering_buses)} claimed by the driver, {len(answering_buses)} {source}")


@check("gpu.inventory", "GPUs, memory and compute capability", needs=("gpus",))
def inventory(gpus):
    """What there is: each GPU's name, memory and compute capability."""
    devices = answering(gpus)
    lines = []
    for d in devices:
        memory = (d.get("memory") or {}).get("total")
        cc = f"sm_{d['cc'][0]}{d['cc'][1]}" if d.get("cc") else "compute capability unknown"
        lines.append(f"{d['label']}: {d.get('name')}, {memory / GIB:.1f} GiB, {cc}" if memory else f"{d['label']}: {d.get('name')}, {cc}")
    names = sorted({d.get("name") or "?" for d in devices})
    return ok(f"{len(devices)} × {', '.join(names)}", lines)


@check("gpu.ecc", "ECC enabled, no uncorrected errors", needs=("gpus",))
def ecc(gpus):
    """Uncorrected ECC errors corrupt or kill training; ECC off hides them (B17)."""
    devices = answering(gpus)
    bad = [d for d in devices if (d.get("ecc_uncorrected_volatile") or 0) > 0]
    if bad:
        d = bad[0]
        return fail(f"{d['label']} has {d['ecc_uncorrected_volatile']} uncorrected ECC error(s) since the last reset",
                    fix=f"sudo nvidia-smi -r -i {d['index']}   # after stopping its jobs; or reboot\n"
                        "dcgmi diag -r 3   # if errors come back, open an RMA", details=[f"{x['label']}: {x['ecc_uncorrected_volatile']}" for x in bad])
    off = [d for d in devices if isinstance(d.get("ecc_mode"), list) and d["ecc_mode"][0] == 0]
    if off:
        ids = ",".join(str(d["index"]) for d in off)
        return warn(f"ECC is off on {len(off)} GPU(s) that support it: memory errors would silently corrupt training",
                    fix=f"sudo nvidia-smi -i {ids} -e 1 && sudo reboot")
    history = [d for d in devices if (d.get("ecc_uncorrected_aggregate") or 0) > 0]
    if history:
        return warn(f"{history[0]['label']} has {history[0]['ecc_uncorrected_aggregate']} uncorrected ECC error(s) in its lifetime",
                    fix="nvidia-smi -q -d ECC,ROW_REMAPPER   # watch whether the count grows; dcgmi diag -r 3")
    supported = [d for d in devices if isinstance(d.get("ecc_mode"), list)]
    if not supported:
        return ok("ECC is not supported on these GPUs (GeForce-class memory)")
    return ok(f"ECC on, no uncorrected errors on {len(supported)} GPU(s)")


@check("gpu.memory_health", "No pending or failed row remaps or page retirements", needs=("gpus",))
def memory_health(gpus):
    """A pending row remap applies only after a reset; a failed one means RMA (B18)."""
    devices = answering(gpus)
    for d in devices:
        rows = d.get("remapped_rows")
        if isinstance(rows, list) and len(rows) == 4 and rows[3]:
            return fail(f"{d['label']}: row remapping failed (spare rows exhausted)",
                        fix="sudo nvidia-bug-report.sh   # drain the GPU and send this to the vendor for an RMA")
        if (isinstance(rows, list) and len(rows) == 4 and rows[2]) or d.get("retired_pages_pending"):
            return fail(f"{d['label']}: a memory row remap or page retirement is pending; it applies only after a GPU reset",
                        fix=f"sudo nvidia-smi -r -i {d['index']}   # after draining its jobs; or reboot")
    known = [d for d in devices if isinstance(d.get("remapped_rows"), list) or d.get("retired_pages_pending") is not None]
    if not known:
        return ok("row remapping and page retirement are not reported by these GPUs")
    return ok(f"no pending or failed row remap or page retirement on {len(known)} GPU(s)")


@check("gpu.xid", "No Xid errors in the kernel log", needs=("kernel_log",), uses=("driver", "nvml", "policy"))
def xid(kernel_log, driver, nvml, policy):
    """Xid events since boot say what the driver saw go wrong, and what to do (B19-B23). An application's Xid
    (13, 31, 43: its bad address or fault) warns and never fails the node by itself; a policy may reclassify any code."""
    if not kernel_log["readable"]:
        why = "kernel.dmesg_restrict=1 limits it to root" if kernel_log.get("restricted") else kernel_log.get("error")
        return skip(f"the kernel log is not readable ({why})",
                    ["see it with: sudo dmesg | grep -E 'NVRM: Xid|fallen off'", "or run: sudo $(command -v gpudoctor) check --only gpu.xid"])
    events = kernel_log["xids"]
    if not events and no_driver(driver, nvml):
        return skip(NO_MODULE)
    if not events:
        return ok("no Xid events since boot")
    codes, reclassed = kb.load("xid")["codes"], (policy or {}).get("xid_classes") or {}
    lines, heads, actions, worst = [], [], [], "warn"
    for code in sorted({e["xid"] for e in events}):
        info = codes.get(str(code), {"meaning": "not in gpudoctor's table", "severity": "warn", "class": "hardware",
                                     "action": "look it up in https://docs.nvidia.com/deploy/xid-errors/analyzing-xid-catalog.html"})
        kind = reclassed.get(str(code), info["class"])
        hits = [e for e in events if e["xid"] == code]
        buses = ", ".join(sorted({e["pci"] for e in hits}))
        heads.append(f"Xid {code} × {len(hits)} on {buses}")
        lines.append(f"Xid {code} × {len(hits)} on {buses} ({kind}{', by the policy' if str(code) in reclassed else ''}): {info['meaning']}")
        actions.append(f"# Xid {code}: {info['action']}")
        fails = kind != "application" and (info["severity"] == "fail" or str(code) in reclassed)
        worst = "fail" if fails else worst
    verdict = fail if worst == "fail" else warn
    return verdict(f"{len(events)} Xid event(s) since boot: {'; '.join(heads)}",
                   fix="sudo dmesg -T | grep -E 'NVRM: Xid'   # each event with its time and process\n" + "\n".join(actions),
                   details=lines)


# SMBIOS chassis types of portable machines (DMTF DSP0134, 7.4.1): Portable, Laptop, Notebook, Hand Held, Sub Notebook,
# Tablet, Convertible, Detachable
LAPTOP_CHASSIS = {"8", "9", "10", "11", "14", "30", "31", "32"}


@check("gpu.pcie_link", "PCIe link at full speed", needs=("gpus",), uses=("platform",))
def pcie_link(gpus, platform):
    """A link below its capability slows every host-device copy; idle links train down legitimately (B24).

    A mobile GPU is soldered to the link its laptop was designed with (a GTX 1050 Mobile capable of x16, wired x8):
    nothing to reseat, so its width is said, not warned about."""
    devices = answering(gpus)
    laptop = ((platform or {}).get("dmi") or {}).get("chassis_type") in LAPTOP_CHASSIS
    slow, notes, idle_down, board_wired = [], [], False, False
    for d in devices:
        gen, gen_max, width, width_max = (d.get(k) for k in ("pcie_gen_cur", "pcie_gen_max", "pcie_width_cur", "pcie_width_max"))
        if None in (gen, gen_max, width, width_max):
            continue
        idle = bool((d.get("throttle_reasons") or 0) & 0x1) or (d.get("performance_state") or 0) >= 8
        soldered = d.get("mobile") or laptop
        if width < width_max and soldered:
            board_wired = True
            notes.append(f"{d['label']}: x{width} of x{width_max}: a {'mobile GPU' if d.get('mobile') else 'laptop'}'s link "
                         "width is fixed by its board, not a slot")
        if (width < width_max and not soldered) or (gen < gen_max and not idle):
            slow.append(f"{d['label']}: Gen{gen} x{width}, capable of Gen{gen_max} x{width_max}")
        elif gen < gen_max:
            idle_down = True
            notes.append(f"{d['label']}: Gen{gen} while idle (max Gen{gen_max}); GPUs train the link down to save power")
    if slow:
        watch = "nvidia-smi --query-gpu=index,pcie.link.gen.current,pcie.link.width.current --format=csv -l 1   # under load\n"
        if all(d.get("mobile") or laptop for d in devices):
            return warn(f"{len(slow)} GPU(s) run below their PCIe link speed under load: host-device copies are slower",
                        fix=watch + "# a laptop's GPU cannot be moved to another slot: run plugged in, with the performance power profile,\n"
                                    "# and check the firmware (BIOS) for a PCIe power-saving or link-speed setting",
                        details=slow + notes)
        return warn(f"{len(slow)} GPU(s) run below their PCIe link capability: host-device copies are slower",
                    fix=watch + "# if it stays low: reseat the card or replace the riser, use an x16 slot, set the slot to Auto/GenN in the BIOS;\n"
                                "# a link pinned low after a BIOS or setpci change (Hardware Autonomous Speed Disable) stays low until it is\n"
                                "# retrained: clear the bit in the root port's Link Control 2 and retrain the link, or reboot",
                    details=slow + notes)
    if board_wired:
        return ok("PCIe links as wide as their boards are wired", notes)
    return ok("PCIe links at their maximum" + (" (idle ones trained down, as expected)" if idle_down else ""), notes)


def _clock_causes(d: dict) -> list[tuple[str, str, str]]:
    """(problem, evidence, fix) for each clock-event reason active on one GPU, each with its own cause.

    Meanings from NVIDIA's nvml.h (nvmlClocksEventReason*): a power brake is asserted from outside the
    GPU (the chassis, BMC or a power supply); a software power cap is the set power limit (judged against
    the default limit); thermal slowdowns are temperatures (judged against the slowdown threshold);
    application clocks are someone's setting. Idle, sync boost and display clocks are not problems.
    """
    reasons = d.get("throttle_reasons") or 0
    index, temp, slowdown = d["index"], d.get("temperature_gpu"), d.get("temperature_slowdown")
    limit, default = d.get("power_limit_mw"), d.get("power_default_limit_mw")
    heat = f"{temp} °C (slowdown at {slowdown} °C)" if temp is not None and slowdown else f"{temp} °C" if temp is not None else "temperature unknown"
    found = []
    if reasons & 0x80:
        found.append((f"{d['label']}: hardware power brake asserted from outside the GPU", "the chassis, BMC or a power supply pulls the brake",
                      "sudo ipmitool sdr type 'Power Supply'   # a failed or missing supply, or lost redundancy\n"
                      "sudo ipmitool sel elist | tail -20   # the BMC's own events\n"
                      "# reseat the GPU's power cables; check the BMC's power-capping policy with the server vendor"))
    if reasons & 0x40 or reasons & 0x20:
        kind = "hardware" if reasons & 0x40 else "software"
        found.append((f"{d['label']}: {kind} thermal slowdown at {heat}", "the GPU or its memory is too hot",
                      f"nvidia-smi -q -i {index} -d TEMPERATURE,PERFORMANCE   # GPU and memory temperatures against their limits\n"
                      "# check fans and airflow: blanking panels, blocked intakes, the inlet temperature, a failed fan"))
    elif reasons & 0x8 and not reasons & 0x80:  # a power brake sets the hardware-slowdown bit too
        found.append((f"{d['label']}: hardware slowdown at {heat}", "temperature, an external power brake, or power draw beyond the board's limit",
                      f"nvidia-smi -q -i {index} -d TEMPERATURE,POWER,PERFORMANCE   # which of heat or power it is\n"
                      "# too hot: fans and airflow; power: the supplies and the GPU's power cables"))
    if reasons & 0x4 and isinstance(limit, int) and isinstance(default, int) and limit < default:
        found.append((f"{d['label']}: power capped at {limit / 1000:.0f} W, below its default {default / 1000:.0f} W",
                      "someone lowered the power limit", f"sudo nvidia-smi -i {index} -pl {default // 1000}   # back to the default limit"))
    if reasons & 0x2:
        found.append((f"{d['label']}: clocks pinned by an application-clocks setting", "nvidia-smi -ac was used",
                      f"sudo nvidia-smi -i {index} -rac   # reset the application clocks"))
    return found


@check("gpu.thermal", "Temperature, power and clock throttling", needs=("gpus",))
def thermal(gpus):
    """Each clock-event reason has its own cause and fix (B25): power brake, power cap, heat, application clocks."""
    devices = answering(gpus)
    found = [cause for d in devices for cause in _clock_causes(d)]
    for d in devices:
        slowdown = d.get("temperature_slowdown")
        if slowdown and (d.get("temperature_gpu") or 0) >= slowdown and not (d.get("throttle_reasons") or 0) & 0x68:
            found.append((f"{d['label']}: {d['temperature_gpu']} °C, at its slowdown threshold {slowdown} °C", "the GPU is too hot",
                          f"nvidia-smi -q -i {d['index']} -d TEMPERATURE   # check fans and airflow"))
    if found:
        return warn(f"{found[0][0]} ({found[0][1]})" + (f", and {len(found) - 1} more" if len(found) > 1 else ""),
                    fix="\n".join(dict.fromkeys(fix for _, _, fix in found)), details=[f"{p}: {e}" for p, e, _ in found])
    temps = [d["temperature_gpu"] for d in devices if d.get("temperature_gpu") is not None]
    return ok("no thermal or power throttling" + (f"; hottest GPU {max(temps)} °C" if temps else ""))


@check("gpu.mig", "MIG mode as intended", needs=("gpus",))
def mig(gpus):
    """MIG splits each GPU: a process sees one slice, not the GPU (B26)."""
    devices = answering(gpus)
    modes = [(d, d.get("mig_mode")) for d in devices if isinstance(d.get("mig_mode"), list)]
    on = [d for d, m in modes if m[0] == 1]
    pending = [d for d, m in modes if m[0] != m[1]]
    if pending:
        return warn(f"{pending[0]['label']}: a MIG mode change is pending until the GPU is reset",
                    fix=f"sudo nvidia-smi -r -i {pending[0]['index']}   # or reboot")
    empty = [d for d in on if d.get("mig_devices") == 0]
    if empty:
        ids = ",".join(str(d["index"]) for d in empty)
        return fail(f"MIG is on for {len(empty)} GPU(s) with no GPU instances: CUDA sees no device there ('No CUDA GPUs are available')",
                    fix=f"sudo nvidia-smi mig -i {ids} -lgip   # the GPU instance profiles these GPUs offer\n"
                        f"sudo nvidia-smi mig -i {ids} -cgi 0 -C   # one instance of the largest profile, with its compute instance\n"
                        f"# or, if MIG is not wanted: sudo nvidia-smi -i {ids} -mig 0 && sudo nvidia-smi -r -i {ids}\n"
                        "nvidia-smi -L   # the MIG devices CUDA will see")
    if on:
        ids = ",".join(str(d["index"]) for d in on)
        return warn(f"MIG is on for {len(on)} GPU(s): CUDA sees MIG slices, not whole GPUs, and one process sees only one slice",
                    fix="nvidia-smi -L   # the MIG devices and their UUIDs\n"
                        "# if intended: run one process per slice, with CUDA_VISIBLE_DEVICES set to one MIG device's UUID\n"
                        f"# if not: sudo nvidia-smi -i {ids} -mig 0 && sudo nvidia-smi -r -i {ids}")
    return ok("MIG is off" if modes else "MIG is not supported on these GPUs")


@check("gpu.compute_mode", "Compute mode lets processes in", needs=("gpus",), uses=("mps", "policy"))
def compute_mode(gpus, mps, policy):
    """Prohibited or exclusive compute modes turn processes away. Exclusive_Process is how NVIDIA's MPS guide sets
    up a GPU for its daemon, whose clients share it; a fleet's policy may name the mode its nodes run in."""
    devices = answering(gpus)
    wanted = ((policy or {}).get("gpus") or {}).get("compute_mode")
    if wanted:  # the policy's mode is the expectation, with policy.compute_mode's fix
        other = [d for d in devices if COMPUTE_MODES.get(d.get("compute_mode")) != wanted]
        if not other:
            return ok(f"compute mode {wanted} on every GPU, as the policy expects")
        d = other[0]
        found = fail if d.get("compute_mode") == 2 else warn
        return found(f"{d['label']} is in compute mode {COMPUTE_MODES.get(d.get('compute_mode'), 'not reported')}; "
                     f"the policy names {wanted}", fix=compute_mode_fix(other, wanted))
    odd = [d for d in devices if d.get("compute_mode") not in (None, 0)]
    if not odd:
        return ok("compute mode Default on every GPU")
    d = odd[0]
    mode = COMPUTE_MODES.get(d["compute_mode"], str(d["compute_mode"]))
    fix = f"sudo nvidia-smi -i {','.join(str(x['index']) for x in odd)} -c DEFAULT"
    if d["compute_mode"] == 2:
        return fail(f"{d['label']} is in compute mode Prohibited: no CUDA process may use it", fix=fix)
    if (mps or {}).get("found") and all(x.get("compute_mode") in EXCLUSIVE_MODES for x in odd):
        return ok(f"compute mode {mode} on {len(odd)} GPU(s), with an MPS control daemon's socket at {mps['control']}: "
                  "its clients share a GPU (NVIDIA's MPS setup)")
    if mode == "Exclusive_Process":
        fix += f"\n# where one process per GPU is this node's rule, say so in its policy: [gpus] compute_mode = \"{mode}\""
    return warn(f"{d['label']} is in compute mode {mode}: only one process may use it at a time "
                "(a second rank or a notebook gets 'all CUDA-capable devices are busy')", fix=fix)


@check("gpu.processes", "No other processes holding GPU memory", needs=("gpus",))
def processes(gpus):
    """Memory held by other processes runs a new job out of memory (E51)."""
    devices = answering(gpus)
    lines, busy = [], []
    for d in devices:
        memory = d.get("memory") or {}
        floor = max(GIB, 0.05 * (memory.get("total") or 0))
        procs = d.get("processes") or []
        for proc in procs:
            lines.append(f"{d['label']}: pid {proc.get('pid')} {proc.get('name') or '?'} holds {(proc.get('used_memory') or 0) / GIB:.2f} GiB")
        held = sum(p.get("used_memory") or 0 for p in procs)
        if held > floor:
            busy.append((d, [str(p.get("pid")) for p in procs]))
        elif not procs and (memory.get("used") or 0) > floor:
            lines.append(f"{d['label']}: {memory['used'] / GIB:.1f} GiB in use by processes this namespace cannot see")
            busy.append((d, []))
    if not busy:
        return ok("no other process holds a significant share of GPU memory", lines)
    idle = [str(d["index"]) for d in devices if d not in [b for b, _ in busy]]
    pids = sorted({pid for _, p in busy for pid in p}, key=int)
    kill = f"kill {' '.join(pids)}   # if they are yours and stale" if pids else "sudo fuser -v /dev/nvidia*   # find them (other containers)"
    choose = f"export CUDA_VISIBLE_DEVICES={','.join(idle)}   # the idle GPUs" if idle else "# or wait for them, or ask their owners"
    return warn(f"other processes hold memory on {len(busy)} of {len(devices)} GPU(s): a training job there may run out of memory",
                fix=f"{kill}\n{choose}", details=lines)


def _hidden_tokens(value: str, devices: list[dict]) -> list[str]:
    """Entries of CUDA_VISIBLE_DEVICES that name no GPU here (CUDA ignores them and all after)."""
    uuids = [d.get("uuid") or "" for d in devices]
    bad = []
    for token in (t.strip() for t in value.split(",")):
        if token.isdigit():
            if int(token) >= len(devices):
                bad.append(token)
        elif token.startswith(("GPU-", "MIG-")):
            if token.startswith("GPU-") and any(uuids) and not any(u.startswith(token) for u in uuids):
                bad.append(token)
        else:
            bad.append(token)
    return bad


@check("gpu.visible_devices", "CUDA_VISIBLE_DEVICES shows the GPUs", needs=("environment",),
       uses=("gpus", "container", "pci"))
def visible_devices(environment, gpus, container, pci):
    """CUDA_VISIBLE_DEVICES or NVIDIA_VISIBLE_DEVICES can hide every GPU or name missing ones (E43).

    Judged with or without a driver: a variable that hides every GPU will still hide them once the
    driver is in, and a doctor names every problem it can see at once.
    """
    value = environment.get("CUDA_VISIBLE_DEVICES")
    runtime = environment.get("NVIDIA_VISIBLE_DEVICES")
    devices = [d for d in (gpus or {}).get("devices", []) if not d.get("error")]
    count = len(devices) or len((pci or {}).get("gpus") or [])
    valid = ",".join(str(i) for i in range(count)) if count else "0"
    if runtime in ("void", "none", "") and any((container or {}).values()):
        return fail(f"NVIDIA_VISIBLE_DEVICES={runtime!r}: the container runtime gave this container no GPU",
                    fix="# start the container with its GPUs: docker run --gpus all IMAGE, or -e NVIDIA_VISIBLE_DEVICES=all with the NVIDIA runtime")
    capabilities = environment.get("NVIDIA_DRIVER_CAPABILITIES")
    if capabilities and "compute" not in capabilities and "all" not in capabilities and any((container or {}).values()):
        return fail(f"NVIDIA_DRIVER_CAPABILITIES={capabilities}: the container runtime did not mount the CUDA libraries (no 'compute')",
                    fix="# start the container with -e NVIDIA_DRIVER_CAPABILITIES=compute,utility (Compose: environment:)")
    if value is None:
        return ok(f"CUDA_VISIBLE_DEVICES is unset: CUDA sees all {count} GPU(s)" if count else "CUDA_VISIBLE_DEVICES is unset")
    hidden = value.strip() in ("", "-1", "none", "NoDevFiles")
    verdict = fail if devices else warn
    later = "" if devices else " (once a driver and GPU are in, they will still be hidden)"
    if hidden:
        return verdict(f"CUDA_VISIBLE_DEVICES={value!r} hides every GPU: frameworks say 'No CUDA GPUs are available'{later}",
                       fix=f"unset CUDA_VISIBLE_DEVICES   # or: export CUDA_VISIBLE_DEVICES={valid}; and remove it from the shell profile or script that sets it")
    if not count:
        return skip(f"CUDA_VISIBLE_DEVICES={value}: no GPU here to compare it with")
    bad = _hidden_tokens(value, devices or [{} for _ in range(count)])
    if bad:
        slurm = (f"\n# Slurm set it ({environment['SLURM_JOB_ID']} is a job) by the node's numbering while this job sees {count} GPU(s):"
                 "\n# ConstrainDevices=yes in the cluster's cgroup.conf makes Slurm number the job's own GPUs (ask the admins)"
                 if environment.get("SLURM_JOB_ID") else "")
        return verdict(f"CUDA_VISIBLE_DEVICES={value} names {', '.join(bad)}, which is no GPU here (indices 0-{count - 1});"
                       " CUDA ignores it and every entry after it",
                       fix=f"export CUDA_VISIBLE_DEVICES={valid}   # or unset it; set it before the framework is imported{slurm}")
    shown = len([t for t in value.split(",") if t.strip()])
    return ok(f"CUDA_VISIBLE_DEVICES={value}: CUDA sees {shown} of {count} GPU(s)")


@check("gpu.device_order", "CUDA numbers the GPUs as nvidia-smi does", needs=("environment", "gpus"))
def device_order(environment, gpus):
    """Mixed GPU models with CUDA_DEVICE_ORDER unset: CUDA counts fastest first, nvidia-smi by PCI bus, so cuda:0 is not GPU 0."""
    devices = answering(gpus)
    names = sorted({d.get("name") or "?" for d in devices})
    if len(names) < 2:
        return ok(f"one GPU model ({names[0]}): CUDA's order and nvidia-smi's agree" if devices else "no GPUs to order")
    if environment.get("CUDA_DEVICE_ORDER") == "PCI_BUS_ID":
        return ok(f"CUDA_DEVICE_ORDER=PCI_BUS_ID: CUDA numbers {', '.join(names)} as nvidia-smi does")
    return warn(f"{len(names)} GPU models ({', '.join(names)}) and CUDA_DEVICE_ORDER is not PCI_BUS_ID: CUDA numbers the fastest "
                "first, so cuda:0 and CUDA_VISIBLE_DEVICES=0 may not be nvidia-smi's GPU 0",
                fix="export CUDA_DEVICE_ORDER=PCI_BUS_ID   # and add it to ~/.bashrc or /etc/environment",
                details=[f"{d['label']}: {d.get('name')}" for d in devices])


P2P_MEANING = {"CNS": "the chipset does not support it", "GNS": "the GPU does not support it",
               "TNS": "the topology does not support it", "NS": "not supported", "U": "unknown"}


@check("gpu.p2p", "Peer-to-peer access between GPUs", needs=("p2p", "gpus"), uses=("os",))
def p2p(p2p, gpus, os):
    """Peer-to-peer blocked by ACS or the IOMMU makes NCCL hang or crawl (E48)."""
    devices = answering(gpus)
    if len(devices) < 2:
        return skip("one GPU: no peer-to-peer traffic")
    if p2p["matrix"] is None:
        return skip(f"`nvidia-smi topo -p2p r` gave no matrix ({p2p['error']})")
    broken = sorted({f"{a}-{b}: {status} ({P2P_MEANING.get(status, status)})" for a, row in p2p["matrix"].items()
                     for b, status in row.items() if status != "OK" and a < b})
    if not broken:
        return ok(f"every pair of the {len(devices)} GPUs can use peer-to-peer reads")
    if all(": GNS" in line for line in broken) and all("GeForce" in (d.get("name") or "") for d in devices):
        return ok("GeForce GPUs do not do peer-to-peer; NCCL goes through host memory instead", broken)
    return warn(f"peer-to-peer reads fail between {len(broken)} GPU pair(s): NCCL all-reduce can hang or crawl",
                fix="cat /proc/cmdline   # intel_iommu=on or amd_iommu=on without iommu=pt routes P2P through the IOMMU\n"
                    "# until it is fixed, NCCL works (slower) with: export NCCL_P2P_DISABLE=1\n"
                    "# add iommu=pt to GRUB_CMDLINE_LINUX in /etc/default/grub, or turn off PCIe ACS in the BIOS, then:\n"
                    f"{fixes.update_grub(os)}\nsudo reboot", details=broken)
