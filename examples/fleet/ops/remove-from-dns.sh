#!/bin/sh
# Takes a node out of DNS rotation (simulated): $ROLLBOOK_FLEET_DIR/dns/<node> says "out".
set -eu
node=${1:?usage: remove-from-dns.sh NODE}
dir=${ROLLBOOK_FLEET_DIR:?ROLLBOOK_FLEET_DIR is not set}
echo out > "$dir/dns/$node"
printf '%s %s dns-remove %s -\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" "$node" "$node" >> "$dir/events.log"
echo "$node removed from DNS rotation"
