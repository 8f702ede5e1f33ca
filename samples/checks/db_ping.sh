#!/bin/sh
# MISC_CHECK with misc_dynamic: a database ping that also sets the weight.
#   MISC_CHECK {
#       misc_path "/etc/dpvsd/checks/db_ping.sh 10.0.0.5 5432"
#       misc_timeout 5
#       misc_dynamic
#   }
# Exit 1 = down. Exit 0 = up at the configured weight. With misc_dynamic,
# exit 2..255 = up with weight (status - 2), keepalived 2.2.7's rule.
# Here: full weight (exit 0) when the server answers quickly, weight 1
# (exit 3) when it is slow, down when it does not answer.
set -u
host=${1:?host} port=${2:?port}
if command -v pg_isready >/dev/null 2>&1; then
    start=$(date +%s%N)
    pg_isready -q -h "$host" -p "$port" -t 2 || exit 1
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
else
    # No client tools: a plain TCP connect via bash's /dev/tcp.
    start=$(date +%s%N)
    timeout 2 bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null || exit 1
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
fi
[ "$ms" -lt 200 ] && exit 0
exit 3
