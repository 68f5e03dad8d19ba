#!/usr/bin/env bash
# Run gpudoctor for real on a GPU machine and keep what it saw, for notes and new test fixtures.
#   bash scripts/device-check.sh OUTDIR
# Installs gpudoctor from this working tree without touching a package index (the device machine
# has click, rich, psutil, packaging and nvidia-ml-py already), then records into OUTDIR:
# the verdict (text and JSON), the raw NVML answer and nvidia-smi -q -x, timings, the report archives
# (plain and anonymized) with their re-judging, the smoke test (text and JSON), and the figures it
# is held to: torch's import time and a plain bf16 matmul on the same card.
set -uo pipefail
out=${1:?usage: device-check.sh OUTDIR}
mkdir -p "$out"
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-deps --no-build-isolation . >"$out/install.log" 2>&1 || { cat "$out/install.log"; exit 1; }
run() { local name=$1; shift; local t0=$EPOCHREALTIME; "$@" >"$out/$name.out" 2>"$out/$name.err"; echo $? >"$out/$name.rc";
        echo "$name rc=$(cat "$out/$name.rc") $(awk "BEGIN { printf \"%.2f\", $EPOCHREALTIME - $t0 }") s" | tee -a "$out/timings.txt"; }
run version gpudoctor --version
run check-verbose gpudoctor check -v
run check-json gpudoctor check --format json
run nvml python3 -m gpudoctor.nvml_probe
run nvidia-smi-qx nvidia-smi -q -x
run smoke gpudoctor smoke -v
run smoke-json gpudoctor smoke --format json
# the figures the smoke test is held to: torch's import time, and a plain bf16 matmul at 8192^3
run torch-import python3 -c "import torch, torch.cuda; torch.cuda.init()"
run plain-matmul python3 -c "
import torch; a = torch.randn(8192, 8192, device='cuda', dtype=torch.bfloat16); b = torch.randn_like(a); a @ b
s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True); s.record()
for _ in range(10): a @ b
e.record(); e.synchronize(); print(torch.cuda.get_device_name(), round(2 * 8192**3 / (s.elapsed_time(e) / 10 / 1000) / 1e12, 1), 'TFLOP/s bf16')"
run report gpudoctor report -o "$out/report.tar.gz"
run report-anonymized gpudoctor report --anonymize -o "$out/report-anonymized.tar.gz"
run check-from gpudoctor check --from "$out/report.tar.gz" --format json
run diff-self gpudoctor diff "$out/report.tar.gz" "$out/report.tar.gz"
# what other tools say on the same machine, for parity tests: collect_env, nvidia-smi's text and CSV forms, ONNX Runtime
run collect-env python3 -m torch.utils.collect_env
run nvidia-smi-q nvidia-smi -q
run nvidia-smi-query nvidia-smi --format=csv --query-gpu=index,name,pci.bus_id,pci.device_id,memory.total,memory.used,\
utilization.gpu,temperature.gpu,power.draw,power.limit,clocks.sm,clocks.mem,persistence_mode,ecc.mode.current,mig.mode.current,\
pcie.link.gen.current,pcie.link.width.current,pcie.link.gen.max,pcie.link.width.max,compute_cap
run nvidia-smi-apps nvidia-smi --format=csv --query-compute-apps=pid,process_name,used_memory
run onnxruntime python3 -c "import onnxruntime as o; print(o.__version__, o.get_device(), o.get_available_providers())"
run pip-freeze python3 -m pip list --format=freeze
run check-python gpudoctor check --python python3 --format json
# the suite, against the installed gpudoctor (run from outside the tree so the source folder does not shadow it);
# DEVICE_CHECK_TESTS=0 leaves it out where device time is short
[ "${DEVICE_CHECK_TESTS:-1}" = 0 ] || run tests bash -c "cd /tmp && timeout 240 python3 -m pytest -q -p no:cacheprovider -rs --junitxml='$out/tests.xml' '$PWD/tests'"
tail -n 3 "$out/check-verbose.out"
