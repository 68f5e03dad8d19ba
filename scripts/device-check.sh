#!/usr/bin/env bash
# Run gpudoctor for real on a GPU machine and keep what it saw, for notes and new test fixtures.
#   bash scripts/device-check.sh OUTDIR
# Installs gpudoctor from this working tree without touching a package index (the device machine
# has click, rich, psutil, packaging and nvidia-ml-py already), then records into OUTDIR:
# the verdict (text and JSON), the raw NVML answer and nvidia-smi -q -x, timings, and the smoke test
# and report archive once those commands exist.
set -uo pipefail
out=${1:?usage: device-check.sh OUTDIR}
mkdir -p "$out"
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-deps --no-build-isolation . >"$out/install.log" 2>&1 || { cat "$out/install.log"; exit 1; }
run() { local name=$1; shift; local t0=$(date +%s.%N); "$@" >"$out/$name.out" 2>"$out/$name.err"; echo $? >"$out/$name.rc";
        echo "$name rc=$(cat "$out/$name.rc") $(echo "$(date +%s.%N) - $t0" | bc) s" | tee -a "$out/timings.txt"; }
run version gpudoctor --version
run check-verbose gpudoctor check -v
run check-json gpudoctor check --format json
run nvml python3 -m gpudoctor.nvml_probe
run nvidia-smi-qx nvidia-smi -q -x
for cmd in smoke report; do
  if gpudoctor "$cmd" --help >/dev/null 2>&1; then run "$cmd" gpudoctor "$cmd"; else echo "$cmd: not in this gpudoctor yet" | tee -a "$out/timings.txt"; fi
done
tail -n 3 "$out/check-verbose.out"
