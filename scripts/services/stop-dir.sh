#!/usr/bin/env bash
# Stops the server whose pid an *-up.sh script wrote to DIR/pid (SIGTERM, then SIGKILL after 10 s) and
# removes DIR (its data). Used by etcd-down.sh and zookeeper-down.sh.
# Usage: stop-dir.sh DIR
set -uo pipefail
D=${1:?usage: stop-dir.sh DIR}
stopTimeoutS=10
if [ -r "$D/pid" ]; then
  pid=$(cat "$D/pid")
  kill "$pid" 2>/dev/null
  for _ in $(seq 1 $((stopTimeoutS * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null
fi
rm -rf "$D"
