#!/usr/bin/env bash
# Starts a one-member etcd (the Debian `etcd-server` package, 3.4) on 127.0.0.1 for tests and benches,
# with its data under DIR and default durability (the WAL is fsync'd before a write is acknowledged).
# Usage: etcd-up.sh DIR [CLIENT_PORT [PEER_PORT]]   (defaults 2379, CLIENT_PORT + 1). Prints the server's
# pid once it answers a range request on the client port. Stop it with etcd-down.sh DIR.
set -euo pipefail
D=${1:?usage: etcd-up.sh DIR [CLIENT_PORT [PEER_PORT]]}
PORT=${2:-2379}
PEER=${3:-$((PORT + 1))}
startTimeoutS=${ETCD_START_TIMEOUT_S:-60}
command -v etcd >/dev/null || { echo "etcd-up: etcd is missing: apt-get install -y etcd-server" >&2; exit 2; }
command -v curl >/dev/null || { echo "etcd-up: curl is missing: apt-get install -y curl" >&2; exit 2; }
mkdir -p "$D"
D=$(cd "$D" && pwd)
nohup etcd --name strata-test --data-dir "$D/data" \
  --listen-client-urls "http://127.0.0.1:$PORT" --advertise-client-urls "http://127.0.0.1:$PORT" \
  --listen-peer-urls "http://127.0.0.1:$PEER" --initial-advertise-peer-urls "http://127.0.0.1:$PEER" \
  --initial-cluster "strata-test=http://127.0.0.1:$PEER" --initial-cluster-state new \
  --log-level warn --logger zap >"$D/etcd.out" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$D/pid"
for _ in $(seq 1 $((startTimeoutS * 5))); do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "etcd-up: the server exited; its output:" >&2
    tail -20 "$D/etcd.out" >&2
    exit 1
  fi
  # a range over the JSON gateway succeeds only once the member has a leader (itself)
  if curl -sf -m 2 -X POST -d '{"key":"AA=="}' "http://127.0.0.1:$PORT/v3/kv/range" >/dev/null 2>&1; then
    echo "$pid"
    exit 0
  fi
  sleep 0.2
done
echo "etcd-up: no answer on 127.0.0.1:$PORT after ${startTimeoutS}s" >&2
kill "$pid" 2>/dev/null || true
exit 1
