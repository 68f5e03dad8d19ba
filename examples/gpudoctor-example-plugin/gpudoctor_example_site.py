"""A site's own gpudoctor checks: the node-local scratch file system that training jobs stage data to.

Jobs copy their dataset to local scratch before training, so a node whose scratch is missing,
read-only or full fails every job that lands on it, whatever the GPUs say. Edit the two constants
for your site; the rest is gpudoctor's plugin API (see docs/plugins.md in gpudoctor).
"""

from __future__ import annotations

from gpudoctor.gpus import answering
from gpudoctor.plugin import check, collector, fail, ok, skip

SCRATCH = "/scratch"
MIN_FREE_PER_GPU_GIB = 100  # this site's rule: room to stage one job's data for every GPU
GIB = 1 << 30


def mount_of(mounts: str, path: str) -> dict | None:
    """The mount at `path` in /proc/mounts text (the last one wins: it hides those beneath), or None."""
    found = None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[1].replace("\\040", " ") == path:
            found = {"device": fields[0], "fstype": fields[2], "options": fields[3].split(",")}
    return found


@collector("site_scratch", timeout=5)
def site_scratch(host) -> dict:
    """How SCRATCH is mounted and how much of it is free. In replay, evidence without /proc/mounts
    makes this raise, which gpudoctor reports as "not recorded" (no replay code needed here)."""
    mounts = host.read("/proc/mounts")
    if not mounts.ok:
        raise OSError(f"/proc/mounts: {mounts.error}")
    mount = mount_of(mounts.text, SCRATCH)
    return {"path": SCRATCH, "mount": mount, "usage": host.disk_usage(SCRATCH) if mount else None}


@check("site.scratch_mounted", "Local scratch mounted read-write", needs=("site_scratch",))
def scratch_mounted(site_scratch):
    """Not mounted, jobs fill the root file system; read-only (the kernel's answer to disk errors), they fail."""
    path, mount = site_scratch["path"], site_scratch["mount"]
    if mount is None:
        return fail(f"{path} is not mounted: jobs that stage data there fill the root file system instead",
                    fix=f"sudo mount {path}   # as its /etc/fstab entry says\nfindmnt {path}")
    where = f"{mount['fstype']} from {mount['device']}"
    if "ro" in mount["options"]:
        return fail(f"{path} is mounted read-only ({where}): every job that writes there fails",
                    fix=f"sudo dmesg | grep -i -e 'remount' -e 'error' | tail   # a disk error makes the kernel remount it read-only\n"
                        f"sudo mount -o remount,rw {path}")
    return ok(f"{path} is mounted read-write ({where})")


@check("site.scratch_space", "Local scratch has room for every GPU's data", needs=("site_scratch", "gpus"))
def scratch_space(site_scratch, gpus):
    """MIN_FREE_PER_GPU_GIB for each GPU that answers; without a GPU there is nothing to stage for."""
    devices = answering(gpus)  # raises Skip ("no GPU answered ...") on a node whose GPUs are gone
    path, usage = site_scratch["path"], site_scratch["usage"]
    if site_scratch["mount"] is None or not usage:
        return skip(f"{path} is not mounted (see site.scratch_mounted)")
    free, need = usage["free"] / GIB, MIN_FREE_PER_GPU_GIB * len(devices)
    summary = f"{free:.0f} GiB free on {path} for {len(devices)} GPU{'s' if len(devices) > 1 else ''}"
    if free < need:
        return fail(f"{summary}; this site needs {need} GiB ({MIN_FREE_PER_GPU_GIB} GiB per GPU)",
                    fix=f"sudo du -xh --max-depth=2 {path} 2>/dev/null | sort -h | tail   # what fills it\n"
                        f"# then remove what finished jobs left behind, e.g. folders untouched for two weeks:\n"
                        f"# sudo find {path} -mindepth 1 -maxdepth 1 -mtime +14 -exec rm -rf {{}} +")
    return ok(f"{summary} (this site needs {MIN_FREE_PER_GPU_GIB} GiB per GPU)")
