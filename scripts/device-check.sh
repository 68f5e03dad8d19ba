#!/usr/bin/env bash
# Run gpudoctor for real on a GPU machine and keep what it saw, for notes and new test fixtures.
#   bash scripts/device-check.sh OUTDIR
# Installs gpudoctor from this working tree without touching a package index (the device machine
# has click, rich, psutil, packaging and nvidia-ml-py already), then records into OUTDIR:
# the verdict (text and JSON), the raw NVML answer and nvidia-smi -q -x, timings, the report archives
# (plain and anonymized) with their re-judging, and the smoke test once that command exists.
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
if gpudoctor smoke --help >/dev/null 2>&1; then run smoke gpudoctor smoke; else echo "smoke: not in this gpudoctor yet" | tee -a "$out/timings.txt"; fi
run report gpudoctor report -o "$out/report.tar.gz"
run report-anonymized gpudoctor report --anonymize -o "$out/report-anonymized.tar.gz"
run check-from gpudoctor check --from "$out/report.tar.gz" --format json
run diff-self gpudoctor diff "$out/report.tar.gz" "$out/report.tar.gz"
tail -n 3 "$out/check-verbose.out"
