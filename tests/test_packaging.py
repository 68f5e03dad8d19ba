"""checks/ installs as gpudoctor.checks, never as a top-level `checks`, both from a wheel and editable."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, cwd: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *flags, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # built from a copy: setuptools writes build/ and *.egg-info beside the sources, and the tests may run as a user
    # who cannot write the checkout
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in ("gpudoctor", "checks"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.py", "setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)],
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
    # from outside the checkout, whose gpudoctor.egg-info would otherwise answer for the installed distribution
    proc = run_python("import json, gpudoctor.checks, gpudoctor.checks.system; from importlib.metadata import distribution; "
                      "d = distribution('gpudoctor'); print(json.dumps([gpudoctor.checks.__file__, d.read_text('direct_url.json'), "
                      "str(d.locate_file('gpudoctor/checks/__init__.py'))]))", tmp_path)
    assert proc.returncode == 0, proc.stderr
    found, direct_url, in_site_packages = json.loads(proc.stdout)
    editable = json.loads(direct_url or "{}").get("dir_info", {}).get("editable")
    # editable: the checkout's checks/; installed (`pip install .`): the copy in site-packages that the wheel laid down
    assert Path(found) == (ROOT / "checks" / "__init__.py" if editable else Path(in_site_packages)), (found, direct_url)
    missing = run_python("import checks", tmp_path)
    assert missing.returncode == 1 and "No module named 'checks'" in missing.stderr


def test_no_code_imports_the_bare_checks_package():
    offenders = [str(p) for folder in ("gpudoctor", "checks", "tests") for p in (ROOT / folder).rglob("*.py")
                 if any(line.lstrip().startswith(("import checks", "from checks")) for line in p.read_text().splitlines())]
    assert offenders == []
