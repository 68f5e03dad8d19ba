#!/usr/bin/env bash
# Run a command on this machine made to look like a GPU server, to prove the tests hold there:
#   scripts/simulate-gpu-server.sh CMD [ARG...]
# In a private mount namespace (nothing outside the command sees it), the real H200's driver files from
# tests/fixtures/h200-2026-11-26/files take the place of /proc/driver (nvidia/version, gpus/<bus>/information,
# params, ...) and /sys/module/nvidia/version, and an `nvidia-smi` first on PATH replays that machine's recorded
# outputs (`topo -p2p r` from the 2026-11-27 run on the same kind of machine, same driver and bus). NVML is not
# simulated: no libnvidia-ml is there, as in a container that has the driver's files but not its libraries.
# Needs root and a kernel that allows mount namespaces; where it cannot, it says why and exits 77.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
capture=$root/tests/fixtures/h200-2026-11-26
[ $# -gt 0 ] || { echo "usage: $0 CMD [ARG...]" >&2; exit 2; }
cannot() { echo "simulate-gpu-server: cannot simulate a GPU server here: $*" >&2; exit 77; }

if [ "${GPUDOCTOR_SIMULATED_GPU_SERVER:-}" != 1 ]; then
  [ "$(id -u)" = 0 ] || cannot "it needs root (a mount namespace and bind mounts)"
  command -v unshare >/dev/null || cannot "no unshare (util-linux)"
  unshare --mount --propagation private true 2>/dev/null || cannot "no private mount namespace (a container without CAP_SYS_ADMIN?)"
  GPUDOCTOR_SIMULATED_GPU_SERVER=1 exec unshare --mount --propagation private "$0" "$@"
fi

# inside the namespace: stage the capture's files, then mount them read-only over the live ones
stage=$(mktemp -d /tmp/gpudoctor-gpu-server.XXXXXX)
trap 'rm -rf "$stage"' EXIT
chmod 755 "$stage"
mkdir -p "$stage/bin" "$stage/module/nvidia"
cp -r "$capture/files/proc/driver" "$stage/driver"
cp "$capture/files/sys/module/nvidia/version" "$stage/module/nvidia/version"
python3 - "$root/tests/fixtures/h200-firecracker-2026-11-27/evidence.json" "$stage/topo-p2p-r.out" <<'EOF'
import json, sys
with open(sys.argv[1]) as f, open(sys.argv[2], "w") as out:
    out.write(json.load(f)["commands"]["nvidia-smi topo -p2p r"]["stdout"])
EOF
# nvidia-smi's own answer to an option it does not know: its message on stdout, exit 2 (nvidia-smi(1):
# "2: A supplied argument or flag is invalid")
cat >"$stage/bin/nvidia-smi" <<EOF
#!/bin/sh
# nvidia-smi replaying the H200 captured in tests/fixtures/h200-2026-11-26 (see scripts/simulate-gpu-server.sh)
out() { cat "\$1"; exit "\${2:-0}"; }
cmd=$capture/cmd
case "\$*" in
  "") out "\$cmd/nvidia-smi.out" "\$(cat "\$cmd/nvidia-smi.rc")" ;;
  "-q") out "\$cmd/nvidia-smi-q.out" "\$(cat "\$cmd/nvidia-smi-q.rc")" ;;
  "-q -x"|"-x -q") out "\$cmd/nvidia-smi-qx.out" "\$(cat "\$cmd/nvidia-smi-qx.rc")" ;;
  "-L") out "\$cmd/nvidia-smi-L.out" "\$(cat "\$cmd/nvidia-smi-L.rc")" ;;
  "--version") out "\$cmd/nvidia-smi-version.out" "\$(cat "\$cmd/nvidia-smi-version.rc")" ;;
  "-q -d PERFORMANCE") out "\$cmd/nvidia-smi-dperf.out" "\$(cat "\$cmd/nvidia-smi-dperf.rc")" ;;
  "topo -m") out "\$cmd/nvidia-smi-topo.out" "\$(cat "\$cmd/nvidia-smi-topo.rc")" ;;
  "topo -p2p r") out "$stage/topo-p2p-r.out" ;;
  *) echo "ERROR: Option \$1 is not recognized. Please run 'nvidia-smi -h'."; exit 2 ;;
esac
EOF
chmod 755 "$stage/bin/nvidia-smi"

mount --bind "$stage/driver" /proc/driver || cannot "bind-mounting over /proc/driver was refused"
mount -o remount,bind,ro /proc/driver
# an overlay keeps the other modules' folders; where sysfs cannot be its lower layer, nvidia's folder alone
mount -t overlay gpudoctor-gpu-server -o "lowerdir=$stage/module:/sys/module" /sys/module 2>/dev/null \
  || mount --bind "$stage/module" /sys/module || cannot "mounting over /sys/module was refused"
export PATH="$stage/bin:$PATH"
"$@"
