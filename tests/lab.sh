#!/usr/bin/env bash
# lab.sh - dpvsd's own test lab: network namespaces on a bridge, nginx backends.
#
#   lab.sh up P [v6]          create P-sw (bridge br0) and hosts on it:
#                               P-lb     eth0 10.99.0.1/24  02:99:00:00:00:01  (runs dpvsd)
#                               P-client eth0 10.99.0.2/24  02:99:00:00:00:02
#                               P-rs1    eth0 10.99.0.3/24  02:99:00:00:00:03
#                               P-rs2    eth0 10.99.0.4/24  02:99:00:00:00:04
#                             with v6 also fd99::N/64 (N = 1..4, no DAD); else IPv6 is off
#   lab.sh down P             kill every process in the lab's namespaces, delete them
#   lab.sh web P HOST NAME DIR [v6]   start nginx in P-HOST on :8080 (v6: also [::]:8080);
#                             GET / answers "NAME"
#   lab.sh webstop DIR        stop that nginx
#
# Everything stays inside namespaces this script creates. Offloads are turned
# off so frames carry real checksums (the afpacket dataplane needs that).
set -euo pipefail
die() { echo "lab.sh: $*" >&2; exit 1; }
HOSTS=(lb client rs1 rs2)

up() {
    local p="$1" v6="${2:-}" i=1 h ns
    down "$p" 2>/dev/null || true
    ip netns add "$p-sw"
    ip -n "$p-sw" link add br0 type bridge stp_state 0 forward_delay 0
    ip -n "$p-sw" link set br0 type bridge mcast_snooping 0
    ip -n "$p-sw" link set br0 up
    ip -n "$p-sw" link set lo up
    for h in "${HOSTS[@]}"; do
        ns="$p-$h"
        ip netns add "$ns"
        if [[ "$v6" == v6 ]]; then
            ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0
            ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.accept_dad=0
        else
            ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
            ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
        fi
        ip link add "v$p$i" netns "$p-sw" type veth peer name eth0 netns "$ns"
        ip -n "$ns" link set eth0 address "02:99:00:00:00:0$i"
        ip -n "$ns" addr add "10.99.0.$i/24" dev eth0
        [[ "$v6" == v6 ]] && ip -n "$ns" addr add "fd99::$i/64" dev eth0 nodad
        ip -n "$ns" link set lo up
        ip -n "$ns" link set eth0 up
        ip -n "$p-sw" link set "v$p$i" master br0 up
        if command -v ethtool >/dev/null; then
            ip netns exec "$ns" ethtool -K eth0 tx off rx off tso off gso off gro off >/dev/null 2>&1 || true
            ip netns exec "$p-sw" ethtool -K "v$p$i" tx off rx off tso off gso off gro off >/dev/null 2>&1 || true
        fi
        i=$((i + 1))
    done
}

down() {
    local p="$1" h ns pids
    for h in "${HOSTS[@]}" sw; do
        ns="$p-$h"
        [[ -e "/run/netns/$ns" ]] || continue
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        [[ -n "$pids" ]] && kill -TERM $pids 2>/dev/null || true
    done
    sleep 0.2
    for h in "${HOSTS[@]}" sw; do
        ns="$p-$h"
        [[ -e "/run/netns/$ns" ]] || continue
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        [[ -n "$pids" ]] && kill -KILL $pids 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
}

web() {
    local p="$1" h="$2" name="$3" dir="$4" v6="${5:-}" i listen6=""
    [[ "$v6" == v6 ]] && listen6="listen [::]:8080;"
    command -v nginx >/dev/null || die "nginx is not installed (apt-get install nginx-light)"
    mkdir -p "$dir/tmp"
    dir="$(cd "$dir" && pwd)"
    cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
master_process off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
daemon off;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 100000;
    keepalive_timeout 300s;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    server {
        listen 8080;
        $listen6
        location / { default_type text/plain; return 200 "$name\n"; }
    }
}
CONF
    ip netns exec "$p-$h" nginx -c "$dir/nginx.conf" -p "$dir" </dev/null >"$dir/nginx.out" 2>&1 &
    echo $! >"$dir/launcher.pid"
    for i in $(seq 1 100); do
        ip netns exec "$p-$h" ss -Htln "sport = :8080" | grep -q . && return 0
        sleep 0.05
    done
    die "nginx in $p-$h not listening after 5 s: $(cat "$dir/nginx.out" "$dir/error.log" 2>/dev/null)"
}

webstop() {
    local dir="$1" pid i
    pid=$(cat "$dir/nginx.pid" 2>/dev/null || cat "$dir/launcher.pid" 2>/dev/null || true)
    [[ -n "$pid" ]] || return 0
    kill -KILL "$pid" 2>/dev/null || true
    pkill -KILL -f "nginx -c $dir/nginx.conf" 2>/dev/null || true
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    rm -f "$dir/nginx.pid"
}

[[ $EUID -eq 0 ]] || die "needs root"
case "${1:-}" in
up) up "${2:?prefix}" "${3:-}" ;;
down) down "${2:?prefix}" ;;
web) web "${2:?prefix}" "${3:?host}" "${4:?name}" "${5:?dir}" "${6:-}" ;;
webstop) webstop "${2:?dir}" ;;
*) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
