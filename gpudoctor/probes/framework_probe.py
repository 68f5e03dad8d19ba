"""gpudoctor's probe, run inside the interpreter being judged: `python framework_probe.py WHAT`.

WHAT is `env` (no framework imported: interpreter, site, distributions), `torch`, `jax`,
`tensorflow`, `cupy`, `onnxruntime`, or `smoke FRAMEWORK DEVICE STEPS` (smoke_probe.py, beside this file).
Standard library and the framework only, Python 3.8+. Before anything is imported, file
descriptor 1 is moved onto stderr, so whatever the framework prints (from Python or from
C) cannot corrupt the answer: one line on the real stdout, MARK followed by JSON. With `--serve`
it answers one WHAT a line from stdin until its end, so the smoke test runs in the process that
imported the framework for its facts (gpudoctor/probeworker.py). Each fact
is {"value": ...} or {"error": ...} with the seconds it took, so one failing call never
hides the others (the shape of the H200 capture's probes/torch-facts.json).
"""

import json
import os
import sys
import time
import warnings

MARK = "GPUDOCTOR-PROBE "
END_MARK = b"GPUDOCTOR-PROBE-END"  # on stderr after each answer of --serve
INTERESTING = {"torch", "tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tf-nightly", "jax", "jaxlib", "cupy", "pytorch-triton", "triton"}
# what `torch.utils.collect_env` lists as relevant libraries (its PIP/COMMON/NVIDIA patterns, matched as substrings)
RELEVANT = ("torch", "numpy", "triton", "optree", "onnx", "mypy", "flake8", "cudnn", "cublas", "cufft", "curand", "cusolver",
            "cusparse", "nccl", "nvjitlink", "nvtx", "cuda-runtime", "cuda-nvrtc", "cuda-cupti", "mkl", "intel-openmp", "tbb")
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
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
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
        if name in INTERESTING or name.startswith(("nvidia-", "cupy", "jax-cuda")) or any(p in name for p in RELEVANT):
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
    has_pip = util.find_spec("pip") is not None
    return {
        "python": {
            "version": platform.python_version(), "executable": sys.executable, "prefix": sys.prefix,
            "base_prefix": getattr(sys, "base_prefix", sys.prefix), "venv": sys.prefix != getattr(sys, "base_prefix", sys.prefix),
            "conda": os.path.isdir(os.path.join(sys.prefix, "conda-meta")), "user_site": user_site,
            "user_site_enabled": bool(site.ENABLE_USER_SITE), "path": own_path(sys.path, user_site),
            "externally_managed": os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")),
            "pip": has_pip,
            "build": sys.version.replace("\n", " "), "bits": sys.maxsize.bit_length() + 1, "platform": platform.platform(),
        },
        "distributions": sorted(dists, key=lambda d: (d["name"], d["location"])),
        "modules": modules,
        "LD_LIBRARY_PATH": os.environ.get("LD_LIBRARY_PATH"),
        "requirements": _requirements(metadata), "markers": _markers(),
    }


def _requirements(metadata):
    """Every distribution's version and declared requirements: `pip check`'s judgement where pip is missing (uv venvs),
    and the version a missing requirement asks for, which pip check leaves out ("X requires Y, which is not installed")."""
    found = {}
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-").replace(".", "-")
        if name and name not in found:
            found[name] = {"version": dist.version, "requires": list(dist.requires or []),
                           "installer": (dist.read_text("INSTALLER") or "").strip() or None}
    return found


def _markers():
    """The values PEP 508 markers are evaluated against, for this interpreter (packaging.markers.default_environment)."""
    import platform

    info = sys.implementation.version
    version = "%d.%d.%d" % (info.major, info.minor, info.micro) + ("" if info.releaselevel == "final" else info.releaselevel[0] + str(info.serial))
    return {"implementation_name": sys.implementation.name, "implementation_version": version, "os_name": os.name,
            "platform_machine": platform.machine(), "platform_release": platform.release(), "platform_system": platform.system(),
            "platform_version": platform.version(), "python_full_version": platform.python_version(),
            "platform_python_implementation": platform.python_implementation(), "python_version": ".".join(platform.python_version_tuple()[:2]),
            "sys_platform": sys.platform}


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
        # what CUDA init left in the environment: collect_env's "CUDA_MODULE_LOADING set to"
        facts["cuda_module_loading"] = fact(lambda: os.environ.get("CUDA_MODULE_LOADING", ""))
    facts["debug"] = fact(lambda: bool(torch.version.debug))
    facts["xpu"] = fact(lambda: bool(hasattr(torch, "xpu") and torch.xpu.is_available()))
    facts["xnnpack"] = fact(lambda: bool(__import__("torch.backends.xnnpack").backends.xnnpack.enabled))
    if facts["version_hip"].get("value"):  # ROCm builds: the HIP and MIOpen runtimes, from the build's own config
        facts["rocm_runtimes"] = fact(lambda: [line.strip() for line in torch._C._show_config().splitlines()
                                               if "HIP Runtime" in line or "MIOpen" in line])
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
    # JAX takes 75 % of every GPU's memory when its backend starts; this process may stay up for the smoke test
    # while other frameworks train, so it takes memory as it needs it (the smoke test's own setting, see smoke_jax)
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
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


def _tiny_model():
    """A one-node ONNX model (Y = X + X, float[1], opset 13) as protobuf bytes, written by hand: no onnx package needed."""
    def varint(n):
        out = b""
        while True:
            low, n = n & 0x7F, n >> 7
            out += bytes([low | (0x80 if n else 0)])
            if not n:
                return out

    def field(number, payload):  # length-delimited
        return varint(number << 3 | 2) + varint(len(payload)) + payload

    def number(field_no, n):
        return varint(field_no << 3) + varint(n)

    shape = field(2, field(1, number(1, 1)))  # TensorShapeProto { dim { dim_value: 1 } }
    tensor = field(1, number(1, 1) + shape)  # TypeProto { tensor_type { elem_type: FLOAT, shape } }
    node = field(1, b"X") + field(1, b"X") + field(2, b"Y") + field(4, b"Add")
    graph = field(1, node) + field(2, b"gpudoctor") + field(11, field(1, b"X") + field(2, tensor)) + field(12, field(1, b"Y") + field(2, tensor))
    return number(1, 7) + field(7, graph) + field(8, number(2, 13))


def _session(ort, providers):
    """Create and run a session on the tiny model; what ORT printed (its C++ log goes to fd 2) comes back too."""
    import tempfile

    with tempfile.TemporaryFile() as log:
        saved = os.dup(2)
        os.dup2(log.fileno(), 2)
        try:
            session = ort.InferenceSession(_tiny_model(), providers=providers)
            result = {"providers": session.get_providers()}
            import numpy

            result["output"] = session.run(None, {"X": numpy.array([1.5], dtype=numpy.float32)})[0].tolist()
        except Exception as exc:
            result = {"error": "%s: %s" % (type(exc).__name__, str(exc)[:1000])}
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        log.seek(0)
        lines = log.read().decode(errors="replace").splitlines()
    result["log"] = [line[:600] for line in lines if "onnxruntime" in line or "Failed" in line or "error" in line.lower()][-8:]
    return result


def _ort_package():
    """Which ONNX Runtime package this is: its build info where the wheel has one (not 1.19's CPU wheel, the last for
    Python 3.9), else the one distribution of that name installed (two installed is python.duplicates' case)."""
    try:
        from onnxruntime.capi import build_and_package_info

        return build_and_package_info.package_name
    except ImportError:
        from importlib import metadata

        names = ("onnxruntime-gpu", "onnxruntime", "onnxruntime-directml", "onnxruntime-openvino")
        found = [name for name in names if _installed(metadata, name)]
        return found[0] if len(found) == 1 else None


def _installed(metadata, name: str) -> bool:
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def probe_onnxruntime():
    start = time.perf_counter()
    import onnxruntime as ort

    facts = {"import_s": round(time.perf_counter() - start, 4), "version": ort.__version__, "file": ort.__file__}
    _try(facts, "build", lambda: {"package": _ort_package(), "cuda_version": getattr(ort, "cuda_version", "") or None})
    _try(facts, "device", ort.get_device)
    _try(facts, "providers", ort.get_available_providers)
    facts["cpu_session"] = _session(ort, ["CPUExecutionProvider"])
    if "CUDAExecutionProvider" in (facts.get("providers") or []):
        facts["cuda_session"] = _session(ort, ["CUDAExecutionProvider", "CPUExecutionProvider"])
        fell_back = "CUDAExecutionProvider" not in facts["cuda_session"].get("providers", [])
        if fell_back and hasattr(ort, "preload_dlls"):  # 1.21+: load CUDA and cuDNN from the nvidia-* wheels, then again
            _try(facts, "preload", lambda: ort.preload_dlls() or True)
            facts["cuda_session_after_preload"] = _session(ort, ["CUDAExecutionProvider", "CPUExecutionProvider"])
    facts["loaded_libs"] = loaded_libraries()
    return facts


PROBES = {"env": probe_env, "onnxruntime": probe_onnxruntime, "torch": probe_torch, "jax": probe_jax, "tensorflow": probe_tensorflow, "cupy": probe_cupy}


TOP_MODULE = {"torch": "torch", "jax": "jax", "tensorflow": "tensorflow", "cupy": "cupy", "onnxruntime": "onnxruntime"}


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


def answer(words):
    """The facts for one question (`torch`, `smoke torch cuda 30`), or why there are none."""
    what = words[0] if words else "env"
    try:
        if what == "smoke":  # the training smoke test: smoke FRAMEWORK DEVICE STEPS
            from smoke_probe import run

            return run(words[1:])
        return PROBES[what]()
    except BaseException as exc:  # ImportError, a framework's own SystemExit: report, never traceback
        return failure(exc, words[1] if what == "smoke" and len(words) > 1 else what)


def reply(answer_fd, words):
    """One question's answer, as one marked line on the answer descriptor."""
    os.write(answer_fd, (MARK + json.dumps(answer(words), default=str) + "\n").encode())


def serve(answer_fd):
    """Answer questions read one a line from stdin until its end, each followed by END_MARK on stderr.

    The interpreter stays up between questions, so the smoke test finds the framework the facts probe imported.
    Standard input is moved off fd 0 first: no framework or child process reads the questions."""
    questions = os.fdopen(os.dup(0), "r")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    for line in questions:
        words = line.split()
        if words:
            reply(answer_fd, words)
            _flush_c_stdio()
            sys.stderr.flush()
            os.write(2, b"\n" + END_MARK + b"\n")


def _flush_c_stdio():
    """What C code printed (through stdio's buffer, onto fd 2) belongs to the answer just given."""
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except Exception:
        pass


def main():
    answer_fd = os.dup(1)
    os.dup2(2, 1)  # from here on, anything printed to stdout (Python or C) lands on stderr
    sys.stdout = sys.stderr
    if sys.argv[1:] == ["--serve"]:
        serve(answer_fd)
    else:
        reply(answer_fd, sys.argv[1:])


if __name__ == "__main__":
    main()
