#!/bin/sh
# MISC_CHECK: HTTP health with curl. Usage in keepalived.conf:
#   MISC_CHECK {
#       misc_path "/etc/dpvsd/checks/http_health.sh 10.0.0.3 8080 /health"
#       misc_timeout 3
#   }
# Exit 0 = up, 1 = down (keepalived's MISC_CHECK contract).
set -u
host=${1:?host} port=${2:?port} path=${3:-/}
code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://$host:$port$path") || exit 1
case "$code" in
2??|3??) exit 0 ;;
*) exit 1 ;;
esac
