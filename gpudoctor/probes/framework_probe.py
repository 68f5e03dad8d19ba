"""gpudoctor's probe, run inside the interpreter being judged: `python framework_probe.py WHAT`.

WHAT is `env` (no framework imported: interpreter, site, distributions), `torch`, `jax`,
`tensorflow`, `cupy`, or `smoke FRAMEWORK DEVICE STEPS` (smoke_probe.py, beside this file).
Standard library and the framework only, Python 3.8+. Before anything is imported, file
descriptor 1 is moved onto stderr, so whatever the framework prints (from Python or from
C) cannot corrupt the answer: one line on the real stdout, MARK followed by JSON. Each fact
is {"value": ...} or {"error": ...} with the seconds it took, so one failing call never
hides the others (the shape of the H200 capture's probes/torch-facts.json).
"""

import json
import os
import sys
import time
import warnings

MARK = "GPUDOCTOR-PROBE "
INTERESTING = {"torch", "tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tf-nightly", "jax", "jaxlib", "cupy", "pytorch-triton", "triton"}
LIB_HINTS = ("libcud", "libcublas", "libnccl", "libnvjitlink", "libnvrtc", "libcufft", "libcusparse", "libcusolver",
             "libnvidia-ml", "libhip", "libamdhip")


def fact(func):
    start = time.perf_counter()
    try:
        answer = {"value": func()}
    except Exception as exc:  # a framework call failing is a fact too
        answer = {"error": "%s: %s" % (type(exc).__name__, exc)}
    answer["s"] = round(time.perf_counter() - start, 4)
    return answer


def loaded_libraries():
    """The CUDA-family libraries this process really mapped (which copy was loaded, not which exists)."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "/" in line}
    except OSError:
        return []
    return sorted(p for p in paths if any(h in os.path.basename(p).lower() for h in LIB_HINTS))


def _cuda_requirements(dist):
    """The nvidia-* and numpy requirements a framework declares: what provides each CUDA library it loads."""
    return [r for r in (dist.requires or []) if r.lower().startswith(("nvidia-", "numpy", "jaxlib", "jax-cuda"))]


def own_path(entries, user_site):
    """sys.path with the interpreter's own folders and every package folder; the other entries (from
    PYTHONPATH, a .pth file, the script's folder) are the user's project folders: said, not named."""
    roots = {sys.prefix, getattr(sys, "base_prefix", sys.prefix), sys.exec_prefix, os.path.dirname(user_site or "")}
    roots = tuple(os.path.join(root, "") for root in roots if root and root != os.sep)
    kept = []
    for entry in entries:
        parts = entry.replace(os.sep, "/").split("/")
        if os.path.join(entry, "").startswith(roots) or "site-packages" in parts or "dist-packages" in parts:
            kept.append(entry)
        else:
            kept.append("[left out]")
    return kept


def probe_env():
    import platform
    import site
    import sysconfig
    from importlib import metadata, util

    dists = []
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name in INTERESTING or name.startswith(("nvidia-", "cupy", "jax-cuda")) or name in ("numpy", "onnxruntime", "onnxruntime-gpu"):
            entry = {"name": name, "version": dist.version, "location": str(dist.locate_file("")),
                     "installer": (dist.read_text("INSTALLER") or "").strip() or None}
            if name in INTERESTING or name.startswith(("cupy", "jax-cuda")):
                entry["requires"] = _cuda_requirements(dist)
            dists.append(entry)
    modules = {}
    for module in ("torch", "tensorflow", "jax", "cupy"):
        try:
            spec = util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        modules[module] = spec.origin if spec else None
    user_site = site.getusersitepackages() if site.ENABLE_USER_SITE else None
    return {
        "python": {
            "version": platform.python_version(), "executable": sys.executable, "prefix": sys.prefix,
            "base_prefix": getattr(sys, "base_prefix", sys.prefix), "venv": sys.prefix != getattr(sys, "base_prefix", sys.prefix),
            "conda": os.path.isdir(os.path.join(sys.prefix, "conda-meta")), "user_site": user_site,
            "user_site_enabled": bool(site.ENABLE_USER_SITE), "path": own_path(sys.path, user_site),
            "externally_managed": os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")),
            "pip": util.find_spec("pip") is not None,
        },
        "distributions": sorted(dists, key=lambda d: (d["name"], d["location"])),
        "modules": modules,
        "LD_LIBRARY_PATH": os.environ.get("LD_LIBRARY_PATH"),
    }


def probe_torch():
    start = time.perf_counter()
    import torch

    facts = {"import_s": round(time.perf_counter() - start, 4), "file": torch.__file__}
    facts["version"] = fact(lambda: torch.__version__)
    facts["version_cuda"] = fact(lambda: torch.version.cuda)
    facts["version_hip"] = fact(lambda: getattr(torch.version, "hip", None))
    facts["compiled_cuda"] = fact(lambda: torch._C._cuda_getCompiledVersion())
    facts["cudnn_compile"] = fact(lambda: list(torch._C._cudnn.getCompileVersion()))
    facts["nccl"] = fact(lambda: list(torch.cuda.nccl.version()))
    facts["arch_list"] = fact(lambda: torch.cuda.get_arch_list())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        facts["is_available"] = fact(torch.cuda.is_available)
    facts["is_available"]["warnings"] = [str(w.message) for w in caught]
    if facts["version_cuda"].get("value"):  # cuDNN loads without a GPU; its version check raises on a mismatch
        facts["cudnn_runtime"] = fact(lambda: list(torch._C._cudnn.getRuntimeVersion()))
        facts["cudnn_version"] = fact(torch.backends.cudnn.version)
    if facts["is_available"].get("value"):
        facts["device_count"] = fact(torch.cuda.device_count)
        count = facts["device_count"].get("value") or 0
        facts["capabilities"] = fact(lambda: [list(torch.cuda.get_device_capability(i)) for i in range(count)])
    facts["loaded_libs"] = loaded_libraries()
    facts["LD_LIBRARY_PATH"] = os.environ.get("LD_LIBRARY_PATH")
    return facts


def _try(facts, key, func):
    """Plain-valued facts (the H200 capture's JAX shape); a failing call lands in facts["errors"]."""
    try:
        facts[key] = func()
    except Exception as exc:
        facts.setdefault("errors", {})[key] = "%s: %s" % (type(exc).__name__, exc)


def probe_jax():
    start = time.perf_counter()
    import jax

    facts = {"import_s": round(time.perf_counter() - start, 4), "jax": jax.__version__}
    _try(facts, "jaxlib", lambda: __import__("jaxlib").__version__)
    _try(facts, "backend", jax.default_backend)
    _try(facts, "devices", lambda: [str(d) for d in jax.devices()])
    facts["loaded_libs"] = loaded_libraries()
    return facts


def probe_tensorflow():
    start = time.perf_counter()
    import tensorflow as tf

    facts = {"import_s": round(time.perf_counter() - start, 4), "version": tf.__version__}
    keys = ("is_cuda_build", "is_rocm_build", "cuda_version", "cudnn_version", "cuda_compute_capabilities")
    _try(facts, "build", lambda: {k: v for k, v in tf.sysconfig.get_build_info().items() if k in keys})
    _try(facts, "gpus", lambda: [d.name for d in tf.config.list_physical_devices("GPU")])
    facts["loaded_libs"] = loaded_libraries()
    return facts


def probe_cupy():
    import cupy

    facts = {"cupy": cupy.__version__}
    _try(facts, "runtime", cupy.cuda.runtime.runtimeGetVersion)
    _try(facts, "driver", cupy.cuda.runtime.driverGetVersion)
    _try(facts, "devices", cupy.cuda.runtime.getDeviceCount)
    return facts


PROBES = {"env": probe_env, "torch": probe_torch, "jax": probe_jax, "tensorflow": probe_tensorflow, "cupy": probe_cupy}


TOP_MODULE = {"torch": "torch", "jax": "jax", "tensorflow": "tensorflow", "cupy": "cupy"}


def failure(exc, what):
    """An exception that stopped the probe, as facts: `absent` when the framework itself is not installed,
    else the import error with the traceback's telling lines (the last frames and the message)."""
    import traceback

    top = TOP_MODULE.get(what)
    message = "%s: %s" % (type(exc).__name__, exc)
    if isinstance(exc, ModuleNotFoundError) and top and exc.name == top:  # torch._C missing is a broken torch
        return {"absent": True, "failed": message}
    lines = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).strip().splitlines()
    return {"failed": message[:2000], "exception": type(exc).__name__, "traceback_tail": lines[-12:]}


def main():
    answer_fd = os.dup(1)
    os.dup2(2, 1)  # from here on, anything printed to stdout (Python or C) lands on stderr
    sys.stdout = sys.stderr
    what = sys.argv[1] if len(sys.argv) > 1 else "env"
    try:
        if what == "smoke":  # the training smoke test: smoke FRAMEWORK DEVICE STEPS
            from smoke_probe import run

            facts = run(sys.argv[2:])
        else:
            facts = PROBES[what]()
    except BaseException as exc:  # ImportError, a framework's own SystemExit: report, never traceback
        facts = failure(exc, sys.argv[2] if what == "smoke" and len(sys.argv) > 2 else what)
    os.write(answer_fd, (MARK + json.dumps(facts, default=str) + "\n").encode())


if __name__ == "__main__":
    main()
