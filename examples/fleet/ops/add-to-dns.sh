#!/bin/sh
# Puts a node back into DNS rotation (simulated): $ROLLBOOK_FLEET_DIR/dns/<node> says "in".
set -eu
node=${1:?usage: add-to-dns.sh NODE}
dir=${ROLLBOOK_FLEET_DIR:?ROLLBOOK_FLEET_DIR is not set}
echo in > "$dir/dns/$node"
printf '%s %s dns-add %s -\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" "$node" "$node" >> "$dir/events.log"
echo "$node back in DNS rotation"
