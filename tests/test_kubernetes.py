"""scripts/kubernetes/: the manifests against Kubernetes' own schemas, and the node-problem-detector plugin on recorded
evidence for each of NPD's exit codes.

Schemas: kubernetes-validate's JSON schemas of the Kubernetes API (strict: an unknown field is an error), for the
oldest version we claim (1.30) and the newest it ships; the NodeReadinessRule CRD of kubernetes-sigs/
node-readiness-controller (tests/fixtures/kubernetes/README.md). NPD's contract, from kubernetes/node-problem-detector
(docs/custom_plugin_monitor.md; pkg/custompluginmonitor/plugin/plugin.go: exit 0 OK, 1 NonOK, anything else Unknown,
stdout trimmed and cut to max_output_length bytes; pkg/custompluginmonitor/types/config.go Validate: plugin "custom",
a rule timeout no greater than the global one, every permanent rule's condition among the default conditions).
Evidence: the real H200 run (tests/fixtures/h200-firecracker-2026-11-27/check.json, one H200), judged against a policy
that it meets and one that asks for 8 GPUs.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from fleet_helpers import EIGHT_GPUS, h200_document
from gpudoctor.policy import load_policy

kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate (the test extra)")

FOLDER = Path(__file__).parent.parent / "scripts" / "kubernetes"
PLUGIN = FOLDER / "gpudoctor-npd"
CRD = Path(__file__).parent / "fixtures" / "kubernetes" / "readiness.node.x-k8s.io_nodereadinessrules.yaml"
BUILTIN = ("daemonset.yaml", "job.yaml")
VERSIONS = ("1.30", kubernetes_validate.latest_version())


def documents(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((FOLDER / name).read_text()) if d]


def find(kind: str, name: str | None = None) -> dict:
    return next(d for f in BUILTIN for d in documents(f) if d["kind"] == kind and (name is None or d["metadata"]["name"] == name))


def npd_config() -> dict:
    return json.loads(find("ConfigMap", "gpudoctor-npd-config")["data"]["gpudoctor-monitor.json"])


def seconds(duration: str) -> float:
    """A Go duration as NPD's configs write them ("300s", "1m")."""
    value, unit = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration).groups()
    return float(value) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", BUILTIN)
def test_every_manifest_is_valid_kubernetes(name, version):
    for document in documents(name):
        kubernetes_validate.validate(document, version, strict=True)


def test_a_misspelt_field_would_be_caught():
    daemonset = find("DaemonSet")
    daemonset["spec"]["template"]["spec"]["tolerations"][0]["efect"] = "NoSchedule"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(daemonset, VERSIONS[-1], strict=True)


def test_the_node_readiness_rule_is_valid_against_its_crd():
    crd = yaml.safe_load(CRD.read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
    (rule,) = documents("node-readiness-rule.yaml")
    assert rule["apiVersion"] == f"{crd['spec']['group']}/v1alpha1" and rule["kind"] == crd["spec"]["names"]["kind"]
    jsonschema.validate(rule, version["schema"]["openAPIV3Schema"])
    # the taint's CEL rules, which jsonschema does not run: the prefix and the name's pattern as the CRD writes them
    cel = [v["rule"] for v in version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["taint"]["x-kubernetes-validations"]]
    prefix = re.search(r"startsWith\('([^']+)'\)", next(r for r in cel if "startsWith" in r)).group(1)
    pattern = re.search(r"matches\('([^']+)'\)", next(r for r in cel if "matches" in r)).group(1)
    key = rule["spec"]["taint"]["key"]
    assert key.startswith(prefix) and len(key.split("/")) == 2 and re.match(pattern, key.split("/")[1])
    assert len(rule["spec"]["taint"]["value"]) <= 63


def test_the_npd_config_names_the_plugin_and_passes_npds_validation():
    config = npd_config()
    assert config["plugin"] == "custom"
    installed = re.search(r"^COPY scripts/kubernetes/gpudoctor-npd (\S+)$", (FOLDER / "Dockerfile").read_text(), re.M).group(1)
    assert {rule["path"] for rule in config["rules"]} == {installed}
    assert {rule["type"] for rule in config["rules"]} == {"temporary", "permanent"}
    conditions = {c["type"] for c in config["conditions"]}
    assert all(rule["condition"] in conditions for rule in config["rules"] if rule["type"] == "permanent")
    limit = seconds(config["pluginConfig"]["timeout"])
    assert all(seconds(rule["timeout"]) <= limit for rule in config["rules"])
    container = find("DaemonSet")["spec"]["template"]["spec"]["containers"][0]
    assert "--config.custom-plugin-monitor=/config/gpudoctor-monitor.json" in container["command"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    # the plugin reports a hung check itself, before NPD kills it and says Unknown; its message fits NPD's cut
    assert float(env["GPUDOCTOR_TIMEOUT"]) < min(seconds(rule["timeout"]) for rule in config["rules"])
    assert int(env["GPUDOCTOR_MESSAGE_MAX"]) == config["pluginConfig"]["max_output_length"]


def test_the_condition_the_plugin_sets_is_the_one_the_taint_follows_and_the_job_tolerates():
    (rule,) = documents("node-readiness-rule.yaml")
    assert [c["type"] for c in rule["spec"]["conditions"]] == [c["type"] for c in npd_config()["conditions"]]
    job = find("Job")["spec"]["template"]["spec"]
    assert rule["spec"]["taint"]["key"] in [t["key"] for t in job["tolerations"]]


def test_the_policy_in_the_config_map_is_a_valid_policy(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text(find("ConfigMap", "gpudoctor-policy")["data"]["policy.toml"])
    loaded = load_policy(str(path))
    assert loaded["base"]["gpus"]["count"] == 8


# The plugin, run as NPD runs it, on the recorded H200 run.

@pytest.fixture
def recorded(tmp_path) -> dict:
    source = tmp_path / "h200.json"
    source.write_text(json.dumps(h200_document()))
    return {"GPUDOCTOR": f"{sys.executable} -m gpudoctor", "GPUDOCTOR_ARGS": f"--quick --from {source}",
            "GPUDOCTOR_DEFAULTS": str(tmp_path / "none"), "GPUDOCTOR_TEXTFILE": str(tmp_path / "gpudoctor.prom")}


def plugin(settings: dict, policy: str | None = None, tmp_path: Path | None = None) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUDOCTOR")} | settings
    if policy is not None:
        (tmp_path / "policy.toml").write_text(policy)
        env["GPUDOCTOR_POLICY"] = str(tmp_path / "policy.toml")
    proc = subprocess.run([str(PLUGIN)], env=env, capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stdout


def statuses(textfile: Path) -> dict[str, str]:
    families = {f.name: f for f in text_string_to_metric_families(textfile.read_text())}
    return {s.labels["check"]: s.labels["status"] for s in families["gpudoctor_check_status"].samples}


def test_a_node_that_meets_its_policy_is_ok(recorded, tmp_path):
    code, out = plugin(recorded, "[gpus]\ncount = 1\nmodel = \"NVIDIA H200\"\n", tmp_path)
    assert code == 0, out
    assert re.fullmatch(r"gpudoctor: \d+ checks pass, \d+ warnings\n", out)
    assert statuses(Path(recorded["GPUDOCTOR_TEXTFILE"]))["policy.gpu_count"] == "pass"


def test_a_node_short_of_gpus_is_a_problem_with_the_check_and_its_summary(recorded, tmp_path):
    code, out = plugin(recorded, EIGHT_GPUS, tmp_path)
    assert (code, out) == (1, "policy.gpu_count: 1 GPU(s) answer; the policy expects 8\n")
    assert statuses(Path(recorded["GPUDOCTOR_TEXTFILE"]))["policy.gpu_count"] == "fail"


def test_the_message_is_cut_to_npds_length_on_a_character_boundary(recorded, tmp_path):
    code, out = plugin({**recorded, "GPUDOCTOR_MESSAGE_MAX": "30"}, EIGHT_GPUS, tmp_path)
    assert code == 1 and len(out.strip().encode()) <= 30 and out.startswith("policy.gpu_count: ")
    spec = importlib.util.spec_from_loader("gpudoctor_npd", importlib.machinery.SourceFileLoader("gpudoctor_npd", str(PLUGIN)))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cut = module.cut("0 GPU(s) answer × 8 " * 4, 20)  # × is two bytes in UTF-8: a byte cut through it would not decode
    assert len(cut.encode()) <= 20 and cut.endswith("...")


def test_a_bad_policy_is_unknown_with_gpudoctors_one_line_error(recorded, tmp_path):
    code, out = plugin({**recorded, "GPUDOCTOR_MESSAGE_MAX": "256"}, "[gpus\n", tmp_path)  # the DaemonSet's length
    assert code == 2
    assert out.startswith("gpudoctor check exited 2: ") and "policy.toml:1" in out and out.count("\n") == 1
    assert not Path(recorded["GPUDOCTOR_TEXTFILE"]).exists()  # no verdict, no metrics that would pass for one


def test_gpudoctor_missing_or_crashing_is_unknown(recorded, tmp_path):
    code, out = plugin({**recorded, "GPUDOCTOR": str(tmp_path / "no-such-gpudoctor")})
    assert code == 2 and out.startswith("cannot run gpudoctor: ")
    crashing = "sh -c 'echo Traceback: RuntimeError >&2; exit 3' gpudoctor"  # an internal error: gpudoctor's exit 3
    assert plugin({**recorded, "GPUDOCTOR": crashing}) == (2, "gpudoctor check exited 3: Traceback: RuntimeError\n")


def test_a_hung_check_is_a_problem_before_npd_would_kill_the_plugin(recorded):
    hung = f"{sys.executable} -c 'import time; time.sleep(30)'"
    code, out = plugin({**recorded, "GPUDOCTOR": hung, "GPUDOCTOR_TIMEOUT": "0.5"})
    assert code == 1 and out.startswith("gpudoctor.timeout: the check did not finish within 0.5 s")
