#!/usr/bin/env bash
# Starts a standalone ZooKeeper (the Debian `zookeeper` package, 3.8) on 127.0.0.1 for tests and benches:
# a generated zoo.cfg, the data and transaction log under DIR (default durability: forceSync=yes, every
# transaction fsync'd before it is acknowledged), no admin HTTP server, no JMX.
# Usage: zookeeper-up.sh DIR [PORT]   (default port 2181). Prints the server's pid once a client session
# can be opened. Stop it with zookeeper-down.sh DIR.
set -euo pipefail
D=${1:?usage: zookeeper-up.sh DIR [PORT]}
PORT=${2:-2181}
startTimeoutS=${ZK_START_TIMEOUT_S:-60}
jars=/usr/share/java
[ -r "$jars/zookeeper.jar" ] || {
  echo "zookeeper-up: $jars/zookeeper.jar is missing: apt-get install -y zookeeper" >&2
  exit 2
}
command -v java >/dev/null || { echo "zookeeper-up: java is missing: apt-get install -y default-jre-headless" >&2; exit 2; }
mkdir -p "$D/data" "$D/log"
D=$(cd "$D" && pwd)
cat >"$D/zoo.cfg" <<CFG
tickTime=2000
dataDir=$D/data
clientPort=$PORT
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=srvr
CFG
# zookeeper.jar's manifest names its dependencies; slf4j-simple is the logger binding (logs to stderr)
cp="$jars/zookeeper.jar"
[ -r "$jars/slf4j-simple.jar" ] && cp="$cp:$jars/slf4j-simple.jar"
nohup java -Xmx512m -Dzookeeper.log.dir="$D/log" -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
  -cp "$cp" org.apache.zookeeper.server.ZooKeeperServerMain "$D/zoo.cfg" \
  >"$D/log/zookeeper.out" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$D/pid"

# Ready once a client session opens: a ConnectRequest (protocolVersion 0, lastZxidSeen 0, timeout
# 10000 ms, sessionId 0, a 16-byte zero password, readOnly false) must get a ConnectResponse, then the
# session is closed (closeSession, xid 1, op -11). Four-letter words may be disabled, a session never is.
connect='\x00\x00\x00\x2d\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x27\x10'
connect+='\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x10'
connect+='\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00'
close='\x00\x00\x00\x08\x00\x00\x00\x01\xff\xff\xff\xf5'
for _ in $(seq 1 $((startTimeoutS * 5))); do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "zookeeper-up: the server exited; its output:" >&2
    tail -20 "$D/log/zookeeper.out" >&2
    exit 1
  fi
  if n=$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT && printf '$connect' >&3 && head -c 40 <&3 | wc -c; printf '$close' >&3" 2>/dev/null) &&
    [ "${n:-0}" -ge 40 ]; then
    echo "$pid"
    exit 0
  fi
  sleep 0.2
done
echo "zookeeper-up: no session on 127.0.0.1:$PORT after ${startTimeoutS}s" >&2
kill "$pid" 2>/dev/null || true
exit 1
