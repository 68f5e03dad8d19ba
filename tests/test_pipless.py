"""Environments without pip: a real `uv venv`, and any interpreter made without pip; and what pip check leaves out.

`pip check` cannot run there; python.pip_check reads the same answer from importlib.metadata (the env probe)
and says it in pip check's words (pip's own formats: src/pip/_internal/commands/check.py). Where pip runs, it
names a missing package without the version its dependant asks for; the fix takes that from the metadata.
"""

from __future__ import annotations

import doctest
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gpudoctor import requirements

UV = shutil.which("uv") or str(Path(sys.executable).parent / "uv")


def check(python: Path) -> dict:
    proc = subprocess.run([sys.executable, "-m", "gpudoctor", "check", "--python", str(python), "--only", "python.pip_check",
                           "--format", "json", "--timeout", "60"], capture_output=True, text=True, timeout=120)
    return next(r for r in json.loads(proc.stdout)["results"] if r["id"] == "python.pip_check")


@pytest.fixture
def uv_venv(tmp_path):
    if not Path(UV).exists():
        pytest.skip("uv is not installed (it comes with the test extra)")
    env = tmp_path / "uvenv"
    subprocess.run([UV, "venv", "-q", str(env)], check=True, timeout=60)
    return env


def test_a_uv_venv_has_no_pip_and_its_broken_requirements_are_still_found(uv_venv):
    """requests without its dependencies and with an idna older than it allows, installed by uv itself."""
    installed = subprocess.run([UV, "pip", "install", "-q", "--python", str(uv_venv / "bin" / "python"), "--no-deps",
                                "requests==2.32.3", "idna==2.0"], capture_output=True, text=True, timeout=120)
    if installed.returncode:
        pytest.skip(f"uv could not install from the package index here: {installed.stderr.strip()[-200:]}")
    assert not list(uv_venv.glob("lib/python*/site-packages/pip"))
    result = check(uv_venv / "bin" / "python")
    assert result["status"] == "warn" and "no pip here" in result["summary"]
    assert "requests 2.32.3 has requirement idna<4,>=2.5, but you have idna 2.0." in result["details"]
    assert "requests 2.32.3 requires urllib3, which is not installed." in result["details"]
    assert result["fix"].startswith(f"uv pip install --python {uv_venv}/bin/python 'charset-normalizer<4,>=2' 'idna<4,>=2.5'")


def test_with_pip_the_fix_asks_for_the_versions_pip_check_leaves_out(tmp_path):
    """requests without its dependencies and with an idna older than it allows, installed by pip in a real venv.
    pip check says "requests 2.32.3 requires urllib3, which is not installed.": installing the newest urllib3 could
    break requests again, so the fix asks for what requests declares (and keeps the comma of `idna<4,>=2.5`)."""
    env = tmp_path / "pipvenv"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True, timeout=120)
    installed = subprocess.run([str(env / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "requests==2.32.3", "idna==2.0"],
                               capture_output=True, text=True, timeout=300)
    if installed.returncode:
        pytest.skip(f"pip could not install from the package index here: {installed.stderr.strip()[-200:]}")
    result = check(env / "bin" / "python")
    assert result["status"] == "warn" and result["summary"].startswith("`pip check` finds 4 broken requirement(s)")
    assert "requests 2.32.3 requires urllib3, which is not installed." in result["details"]  # pip's own words
    assert "requests 2.32.3 has requirement idna<4,>=2.5, but you have idna 2.0." in result["details"]
    assert result["fix"].startswith(f"{env}/bin/python -m pip install 'charset-normalizer<4,>=2' 'idna<4,>=2.5' "
                                    "'urllib3<3,>=1.21.1' 'certifi>=2017.4.17'   # what the broken packages ask for")


def test_a_sound_uv_venv_passes(uv_venv):
    result = check(uv_venv / "bin" / "python")
    assert result["status"] == "pass" and "metadata where pip is missing" in result["summary"]


def test_an_interpreter_made_without_pip_is_judged_too(tmp_path):
    env = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    assert check(env / "bin" / "python")["status"] == "pass"


def test_markers_and_extras_are_evaluated_for_the_judged_interpreter():
    installed = {"jax": {"version": "0.4.30", "requires": ["jaxlib>=0.4.30", "numpy>=1.22", 'jax-cuda12-plugin; extra == "cuda12"',
                                                            'importlib-metadata>=4.6; python_version < "3.10"']},
                 "jaxlib": {"version": "0.4.30", "requires": []}, "numpy": {"version": "1.21.0", "requires": []}}
    lines = [line for line, _ in requirements.broken_requirements(installed, {"python_version": "3.12", "sys_platform": "linux"})]
    assert lines == ["jax 0.4.30 has requirement numpy>=1.22, but you have numpy 1.21.0."]
    old = [line for line, _ in requirements.broken_requirements(installed, {"python_version": "3.9"})]
    assert "jax 0.4.30 requires importlib-metadata, which is not installed." in old


def test_docstring_samples():
    assert doctest.testmod(requirements).failed == 0
