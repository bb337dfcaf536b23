#!/usr/bin/env bash
# Stops the etcd that etcd-up.sh started in DIR and removes DIR (its data).
# Usage: etcd-down.sh DIR
exec "$(dirname "$0")/stop-dir.sh" "${1:?usage: etcd-down.sh DIR}"
