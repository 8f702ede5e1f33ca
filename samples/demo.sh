#!/usr/bin/env bash
# demo.sh - dpvsd end to end in a lab of network namespaces (run as root):
# builds dpvsd, creates the lab, starts dpvsd with samples/keepalived.conf,
# sends traffic through the VIP, kills one real server, shows the health
# checker taking it out, brings it back, and cleans up.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $EUID -eq 0 ]] || { echo "demo.sh: run as root (network namespaces)" >&2; exit 1; }
bash tests/install-deps.sh
cargo build --bins -q
P=demo
W=$(mktemp -d /tmp/dpvsd-demo.XXXXXX)
SOCK=$W/dpvsd.sock
LAB="bash tests/lab.sh"
DPVSCTL="target/debug/dpvsctl --socket $SOCK"
DPID=
cleanup() {
    [[ -n "$DPID" ]] && kill -TERM "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null || true
    $LAB webstop "$W/rs1" || true
    $LAB webstop "$W/rs2" || true
    $LAB down $P || true
    rm -rf "$W"
}
trap cleanup EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
requests() {
    local n=$1 out
    for _ in $(seq 1 "$n"); do
        out=$(ip netns exec $P-client curl -s -m 2 http://10.99.0.100/ || echo FAILED)
        printf '%s ' "$out"
    done
    echo
}

say "lab: client 10.99.0.2, dpvsd on 10.99.0.1 (VIP 10.99.0.100, LIP 10.99.0.200), rs1 10.99.0.3, rs2 10.99.0.4"
$LAB up $P
$LAB web $P rs1 rs1 "$W/rs1"
$LAB web $P rs2 rs2 "$W/rs2"

say "dpvsd -t (config test)"
target/debug/dpvsd -t -f samples/keepalived.conf && echo "samples/keepalived.conf: clean"

say "starting dpvsd -n -f samples/keepalived.conf --interface eth0 (in $P-lb)"
ip netns exec $P-lb target/debug/dpvsd -n -f samples/keepalived.conf --interface eth0 --socket "$SOCK" 2>"$W/dpvsd.log" &
DPID=$!
for _ in $(seq 1 100); do $DPVSCTL status >/dev/null 2>&1 && break; sleep 0.1; done
$DPVSCTL status

say "12 requests to http://10.99.0.100/ (wrr, weights 2:1)"
requests 12
$DPVSCTL list

say "killing rs1's web server; TCP_CHECK (delay_loop 1, connect_timeout 1, retry 1) takes it out"
$LAB webstop "$W/rs1"
for i in $(seq 1 50); do
    $DPVSCTL list --stats | grep -Eq '10\.99\.0\.3:8080 +down' && break
    sleep 0.2
done
echo "rs1 marked down after about $((i * 200)) ms"
$DPVSCTL list
say "6 requests: all go to rs2"
requests 6

say "rs1 back"
$LAB web $P rs1 rs1 "$W/rs1"
for _ in $(seq 1 50); do
    $DPVSCTL list --stats | grep -Eq '10\.99\.0\.3:8080 +up' && break
    sleep 0.2
done
requests 6
$DPVSCTL list

say "dpvsd log"
cat "$W/dpvsd.log"
