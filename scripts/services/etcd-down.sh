#!/usr/bin/env bash
# Stops the etcd that etcd-up.sh started in DIR and removes DIR (its data).
# Usage: etcd-down.sh DIR
set -uo pipefail
D=${1:?usage: etcd-down.sh DIR}
stopTimeoutS=10
if [ -r "$D/pid" ]; then
  pid=$(cat "$D/pid")
  kill "$pid" 2>/dev/null
  for _ in $(seq 1 $((stopTimeoutS * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null
fi
rm -rf "$D"
