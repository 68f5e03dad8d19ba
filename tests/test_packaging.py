"""checks/ installs as gpudoctor.checks, never as a top-level `checks`, both from a wheel and editable."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from importlib.metadata import distribution
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, cwd: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *flags, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    return next(out.glob("gpudoctor-*.whl"))


def test_wheel_maps_checks_under_gpudoctor(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "gpudoctor/checks/__init__.py" in names and "gpudoctor/checks/gpu.py" in names
    assert {"gpudoctor/knowledge/xid.json", "gpudoctor/knowledge/distros.json", "gpudoctor/schema.json"} <= set(names)
    assert not [n for n in names if n.split("/")[0] in ("checks", "tests", "scripts")]


def test_installed_wheel_imports_from_outside_the_source_tree(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=120)
    # -S: no site-packages, so neither this environment's install nor an editable finder can answer
    code = (f"import sys; sys.path.insert(0, {str(site)!r}); import gpudoctor.checks.gpu as g, gpudoctor.kb as kb; "
            "print(g.__file__); print(len(kb.load('xid')['codes']))")
    proc = run_python(code, tmp_path, "-S")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith(str(site)) and int(proc.stdout.splitlines()[1]) > 10
    assert run_python(f"import sys; sys.path.insert(0, {str(site)!r}); import checks", tmp_path, "-S").returncode == 1


def test_this_install_imports_gpudoctor_checks_but_no_top_level_checks(tmp_path):
    proc = run_python("import gpudoctor.checks, gpudoctor.checks.system; print(gpudoctor.checks.__file__)", tmp_path)
    assert proc.returncode == 0, proc.stderr
    direct_url = json.loads(distribution("gpudoctor").read_text("direct_url.json") or "{}")
    if direct_url.get("dir_info", {}).get("editable"):
        assert Path(proc.stdout.strip()) == ROOT / "checks" / "__init__.py"
    missing = run_python("import checks", tmp_path)
    assert missing.returncode == 1 and "No module named 'checks'" in missing.stderr


def test_no_code_imports_the_bare_checks_package():
    offenders = [str(p) for folder in ("gpudoctor", "checks", "tests") for p in (ROOT / folder).rglob("*.py")
                 if any(line.lstrip().startswith(("import checks", "from checks")) for line in p.read_text().splitlines())]
    assert offenders == []
