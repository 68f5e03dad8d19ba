"""Installed frameworks that do not import, for real: wheels built here, installed by pip into a venv, judged through --python.

The wheel named `torch` loads libcudnn.so.9 the way torch's own __init__ does (ctypes.CDLL), and declares the
requirement the real torch 2.5.1+cu124 wheel declares (nvidia-cudnn-cu12==9.1.0.70, pytorch/pytorch#144244); pip
installs it with --no-deps, as the people in pytorch/pytorch#104259 ended up with it. The dynamic loader's own
error is what gpudoctor reads. The `tensorflow` wheel executes an instruction the CPU refuses (ud2, SIGILL),
as TensorFlow built for AVX does on a CPU without it (tensorflow/tensorflow#17411).
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

CUDNN_REQUIREMENT = 'nvidia-cudnn-cu12==9.1.0.70; platform_system == "Linux" and platform_machine == "x86_64"'


def wheel(folder: Path, name: str, version: str, files: dict[str, str], requires: list[str] = ()) -> Path:
    """A minimal, valid wheel (PEP 427): the files, METADATA with Requires-Dist, WHEEL and RECORD."""
    info = f"{name}-{version}.dist-info"
    members = dict(files)
    members[f"{info}/METADATA"] = "\n".join(["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
                                            + [f"Requires-Dist: {r}" for r in requires]) + "\n"
    members[f"{info}/WHEEL"] = "Wheel-Version: 1.0\nGenerator: gpudoctor-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = []
    for path, text in members.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    members[f"{info}/RECORD"] = "\n".join(record + [f"{info}/RECORD,,"]) + "\n"
    out = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(out, "w") as archive:
        for path, text in members.items():
            archive.writestr(path, text)
    return out


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("broken")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
    return root


def install(root: Path, built: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--python", str(root / "venv/bin/python"), "install", "-q", "--no-deps",
                    "--no-index", str(built)], check=True, capture_output=True)


def judge(root: Path, only: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "gpudoctor", "check", "--format", "json", "--python", str(root / "venv"),
                           "--only", only], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    return {r["id"]: r for r in json.loads(proc.stdout)["results"]}


def test_a_missing_cudnn_names_the_wheel_torch_requires(venv):
    # from the package's own lib folder, as torch's _load_global_deps does: a GPU server's system cuDNN in the linker
    # cache must not rescue it (seen on the H200, where a bare 'libcudnn.so.9' loaded /usr/lib's 9.14)
    init = ("import ctypes, os\nctypes.CDLL(os.path.join(os.path.dirname(__file__), 'lib', 'libcudnn.so.9'), mode=ctypes.RTLD_GLOBAL)\n"
            "__version__ = '2.5.1+cu124'\n")
    install(venv, wheel(venv, "torch", "2.5.1+cu124", {"torch/__init__.py": init}, [CUDNN_REQUIREMENT]))
    results = judge(venv, "torch,python.interpreter")
    build = results["torch.build"]
    assert build["status"] == "fail" and "cannot load libcudnn.so.9" in build["summary"]
    assert "nvidia-cudnn-cu12==9.1.0.70, which is not installed" in build["summary"]
    assert build["fix"].startswith(f"{venv}/venv/bin/python -m pip install 'nvidia-cudnn-cu12==9.1.0.70'")
    assert any("libcudnn.so.9: cannot open shared object file" in line for line in build["details"])
    assert results["python.interpreter"]["status"] == "pass"
    others = [results[i] for i in ("torch.cuda_available", "torch.arch_list", "torch.device_count")]
    assert all(r["status"] == "skip" and "does not import (see torch.build)" in r["summary"] for r in others)


@pytest.mark.skipif(not shutil.which("cc") or not sys.platform.startswith("linux"), reason="needs a C compiler")
@pytest.mark.skipif(__import__("platform").machine() not in ("x86_64", "aarch64"), reason="ud2/udf are x86_64 and aarch64")
def test_an_illegal_instruction_on_import_is_named(venv):
    source = venv / "trap.c"
    source.write_text("void trap(void) { __builtin_trap(); }\n")
    library = venv / "libtrap.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    init = f"import ctypes\nctypes.CDLL({str(library)!r}).trap()\n"
    install(venv, wheel(venv, "tensorflow", "2.16.1", {"tensorflow/__init__.py": init}))
    build = judge(venv, "tensorflow")["tensorflow.build"]
    assert build["status"] == "fail" and "illegal instruction (SIGILL)" in build["summary"]
    assert "/proc/cpuinfo" in build["fix"] and "host-passthrough" in build["fix"]
