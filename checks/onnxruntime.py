"""The onnxruntime area: ONNX Runtime's build, and whether a session really runs on the GPU.

Facts come from the onnxruntime probe in each judged interpreter (checks/python.py): version, build
(`onnxruntime` or `onnxruntime-gpu`, and the CUDA it was built for), `get_available_providers()`, and a
one-node model the probe writes by hand and runs on the CPU and on `CUDAExecutionProvider`, with the
lines ORT logged. A CUDA provider that cannot load its libraries makes ORT fall back to the CPU and only
log it: the session's own provider list is what tells.
"""

from __future__ import annotations

import re

from gpudoctor import kb
from gpudoctor.compat import version_key
from gpudoctor.frameworks import broken, distributions, installs
from gpudoctor.gpus import gpu_devices
from gpudoctor.importerrors import diagnose, import_context
from gpudoctor.plugin import Skip, check, fail, ok, warn

CUDA = "CUDAExecutionProvider"
MISSING_LIB = re.compile(r"(lib[A-Za-z_]+)\.so\.(\d+)[^:]*: cannot open shared object file")


@check("onnxruntime.install", "ONNX Runtime imports, one build of it", needs=("python_envs",),
       uses=("nvml", "nvidia_smi", "cuda_libraries", "machine", "platform", "container"))
def install(python_envs, nvml, nvidia_smi, cuda_libraries, machine, platform, container):
    """onnxruntime and onnxruntime-gpu both write onnxruntime/: with both installed the CPU package's files win and
    CUDAExecutionProvider is gone (microsoft/onnxruntime#10685, yakhyo/uniface#77)."""
    for interpreter in python_envs["interpreters"]:
        dists = distributions(interpreter)
        if "onnxruntime" in dists and "onnxruntime-gpu" in dists:
            python = interpreter["path"]
            return fail(f"{python} has both onnxruntime {dists['onnxruntime']['version']} and onnxruntime-gpu "
                        f"{dists['onnxruntime-gpu']['version']}: they share onnxruntime/, the CPU package's files win and "
                        "ONNX models run on the CPU only",
                        fix=f"{python} -m pip uninstall -y onnxruntime onnxruntime-gpu   # remove both: each deletes the other's files\n"
                            f"{python} -m pip install onnxruntime-gpu=={dists['onnxruntime-gpu']['version']}   # it has the CPU provider too")
    for interpreter, answer in broken(python_envs, "onnxruntime"):
        return diagnose("onnxruntime", interpreter, answer, import_context(cuda_libraries, machine, platform, container))
    lines = []
    for interpreter, facts in installs(python_envs, "onnxruntime", "ONNX Runtime"):
        build = facts.get("build") or {}
        cpu = facts.get("cpu_session") or {}
        if cpu.get("output") != [3.0]:
            return fail(f"onnxruntime {facts.get('version')} in {interpreter['path']} cannot run a one-node model on the CPU: "
                        f"{cpu.get('error') or cpu.get('output')}", details=cpu.get("log") or [],
                        fix=f"{interpreter['path']} -m pip install --force-reinstall onnxruntime=={facts.get('version')}")
        kind = "GPU build, CUDA " + build["cuda_version"] if build.get("cuda_version") else \
            "CPU build: ONNX models run on the CPU; onnxruntime-gpu runs them on the GPUs"
        lines.append(f"{build.get('package') or 'onnxruntime'} {facts.get('version')} ({kind}) in {interpreter['path']}")
    return ok(lines[0] if len(lines) == 1 else f"{len(lines)} ONNX Runtime installs", lines)


@check("onnxruntime.cuda", "ONNX Runtime runs a session on the GPU", needs=("python_envs",), uses=("nvml", "nvidia_smi"))
def cuda(python_envs, nvml, nvidia_smi):
    """A GPU build whose CUDA provider is missing, or whose session falls back to the CPU for want of a CUDA or cuDNN
    library of its major (microsoft/onnxruntime#21684, #19616, #25609)."""
    judged = [(i, f) for i, f in installs(python_envs, "onnxruntime", "ONNX Runtime") if (f.get("build") or {}).get("package") == "onnxruntime-gpu"]
    if not judged:
        raise Skip("no GPU build of ONNX Runtime (onnxruntime-gpu) is installed")
    if not gpu_devices(nvml, nvidia_smi):
        raise Skip("no GPU answers here (see gpu.present)")
    interpreter, facts = judged[0]
    python, version = interpreter["path"], facts.get("version")
    cuda_major = str((facts.get("build") or {}).get("cuda_version") or "").split(".")[0]
    if CUDA not in (facts.get("providers") or []):
        return fail(f"onnxruntime-gpu {version} in {python} lists no {CUDA} (providers: {', '.join(facts.get('providers') or [])})",
                    fix=f"{python} -m pip install --force-reinstall onnxruntime-gpu=={version}")
    if CUDA in (facts.get("cuda_session") or {}).get("providers", []):
        return ok(f"onnxruntime-gpu {version} ran a session on {CUDA} (CUDA {cuda_major}, cuDNN {_cudnn_major(version, cuda_major)})")
    return _fell_back(python, version, cuda_major, facts, interpreter)


def _fell_back(python: str, version: str, cuda_major: str, facts: dict, interpreter: dict):
    """The session ran on the CPU: a library of another major than the environment's, or one ORT did not find."""
    log = (facts.get("cuda_session") or {}).get("log") or []
    if CUDA in (facts.get("cuda_session_after_preload") or {}).get("providers", []):
        return warn(f"onnxruntime-gpu {version} in {python} runs on the GPU only after onnxruntime.preload_dlls(): it does not "
                    "find the CUDA and cuDNN of the nvidia-* wheels on its own, and falls back to the CPU", details=log,
                    fix="# in the program, before the first InferenceSession (or import torch first, which loads them):\n"
                        "# import onnxruntime; onnxruntime.preload_dlls()")
    missing = next((m for m in (MISSING_LIB.search(line) for line in log) if m), None)
    if not missing:
        return fail(f"onnxruntime-gpu {version} in {python} fell back to the CPU: {CUDA} did not initialise", details=log,
                    fix=f"{python} -c 'import onnxruntime as o; o.set_default_logger_severity(0); "
                        f"o.InferenceSession(\"model.onnx\", providers=[\"{CUDA}\"])'   # ORT's full log")
    library, major = missing.group(1), missing.group(2)
    cudnn = library.startswith("libcudnn")
    present = _present(interpreter, cudnn)
    what = "cuDNN" if cudnn else "CUDA"
    if present and major not in present:
        shown = ", ".join(f"{what} {m} ({', '.join(names)})" for m, names in sorted(present.items()))
        return fail(f"onnxruntime-gpu {version} in {python} loads {what} {major} ({library}.so.{major}) but this environment has "
                    f"{shown}: the session fell back to the CPU", details=log, fix=_rebuild_fix(python, what, sorted(present)[-1]))
    return fail(f"onnxruntime-gpu {version} in {python} fell back to the CPU: {library}.so.{major} cannot be loaded", details=log,
                fix=f"{python} -m pip install '{_wheel(library, major, cuda_major)}'   # ships {library}.so.{major}\n"
                    "# then, in the program before the first InferenceSession: import onnxruntime; onnxruntime.preload_dlls()")


def _rebuild_fix(python: str, what: str, major: str) -> str:
    """The onnxruntime-gpu built for the environment's CUDA or cuDNN major (the requirements table; #21684's summary)."""
    wanted = {("CUDA", "12"): "'onnxruntime-gpu>=1.19'", ("cuDNN", "9"): "'onnxruntime-gpu>=1.19'",
              ("CUDA", "11"): "'onnxruntime-gpu==1.18.1'", ("cuDNN", "8"): "'onnxruntime-gpu==1.18.1'"}.get((what, major))
    if not wanted:
        return (f"# install the onnxruntime-gpu built for {what} {major}: "
                "https://onnxruntime.ai/docs/execution-providers/CUDA-ExecutionProvider.html#requirements")
    return f"{python} -m pip install --force-reinstall {wanted}   # built for {what} {major}, as this environment"


def _wheel(library: str, major: str, cuda_major: str) -> str:
    """The NVIDIA wheel that ships `library` of this major (libcudnn.so.9 of a CUDA 12 build: nvidia-cudnn-cu12==9.*)."""
    if library.startswith("libcudnn"):
        return f"nvidia-cudnn-cu{cuda_major or '12'}=={major}.*"
    return kb.load("onnxruntime")["wheels"].get(library, {}).get(major, f"nvidia-{library[3:].lower()}-cu{major}")


def _cudnn_major(version: str | None, cuda_major: str) -> str:
    """The cuDNN major a GPU build loads (ONNX Runtime's requirements table)."""
    for row in kb.load("onnxruntime")["cudnn"]:
        if row["cuda"] == cuda_major and version_key(version or "0") >= version_key(row["from"]):
            return row["cudnn"]
    return "?"


def _present(interpreter: dict, cudnn: bool) -> dict[str, list[str]]:
    """The CUDA (or cuDNN) majors this environment's packages provide, with the packages: nvidia-*-cuNN, torch +cuNNN."""
    found: dict[str, list[str]] = {}
    for name, dist in sorted(distributions(interpreter).items()):
        if cudnn:
            major = (dist.get("version") or "").split(".")[0] if name.startswith("nvidia-cudnn") else None
        else:
            match = re.match(r"nvidia-[a-z-]+-cu(\d+)$", name) if not name.startswith("nvidia-cudnn") else None
            match = match or (re.search(r"\+cu(\d+?)\d$", dist.get("version") or "") if name == "torch" else None)
            major = match.group(1) if match else None
        if major:
            found.setdefault(major, []).append(f"{name} {dist.get('version')}")
    return found
