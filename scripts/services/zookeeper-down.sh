#!/usr/bin/env bash
# Stops the ZooKeeper that zookeeper-up.sh started in DIR and removes DIR (its data).
# Usage: zookeeper-down.sh DIR
exec "$(dirname "$0")/stop-dir.sh" "${1:?usage: zookeeper-down.sh DIR}"
