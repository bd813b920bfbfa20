#!/usr/bin/env bash
# Real backends in PREFIX-backends (see scripts/topology.sh): three nginx instances, on
# 198.19.0.1-3 and 2001:2:0:13::1-3 port 8080, each answering "/" with "backend N" and
# serving /big (16 MiB, rate-limited to 2 MiB/s: a slow download for drain tests), and a socat
# UDP echo on 198.19.0.1-3 port 5353.
#
#   scripts/backends.sh start [PREFIX] [RUNDIR]    RUNDIR defaults to /tmp/sluice-PREFIX-backends
#   scripts/backends.sh stop  [PREFIX] [RUNDIR]
#   scripts/backends.sh stop-one N [PREFIX] [RUNDIR]   stop nginx N only (health tests)
set -euo pipefail

ACTION=${1:-}
if [ "$ACTION" = stop-one ]; then N=$2; shift; fi
P=${2:-sl}
RUN=${3:-/tmp/sluice-$P-backends}
NS=$P-backends

start() {
  stop
  mkdir -p "$RUN"
  # nginx workers run as an unprivileged user: they must be able to read /big.
  chmod 755 "$RUN"
  head -c $((16 * 1024 * 1024)) /dev/zero > "$RUN/big"
  for i in 1 2 3; do
    mkdir -p "$RUN/nginx$i"
    cat > "$RUN/nginx$i/nginx.conf" <<CONF
daemon off;
pid $RUN/nginx$i/nginx.pid;
error_log $RUN/nginx$i/error.log warn;
worker_processes 1;
events { worker_connections 512; }
http {
  access_log $RUN/nginx$i/access.log;
  client_body_temp_path $RUN/nginx$i;
  proxy_temp_path $RUN/nginx$i;
  fastcgi_temp_path $RUN/nginx$i;
  uwsgi_temp_path $RUN/nginx$i;
  scgi_temp_path $RUN/nginx$i;
  server {
    listen 198.19.0.$i:8080;
    listen [2001:2:0:13::$i]:8080;
    location = / { default_type text/plain; return 200 "backend $i\n"; }
    location = /big { root $RUN; limit_rate 2m; }
  }
}
CONF
    ip netns exec "$NS" nginx -c "$RUN/nginx$i/nginx.conf" -p "$RUN/nginx$i" \
      >"$RUN/nginx$i/stdout.log" 2>&1 &
    echo $! > "$RUN/nginx$i.pid"
    ip netns exec "$NS" socat UDP4-RECVFROM:5353,bind=198.19.0.$i,fork PIPE \
      >"$RUN/socat$i.log" 2>&1 &
    echo $! > "$RUN/socat$i.pid"
  done
  # Ready when every nginx answers.
  for _ in $(seq 50); do
    ok=0
    for i in 1 2 3; do
      ip netns exec "$NS" curl -s --max-time 1 "http://198.19.0.$i:8080/" | grep -q "backend $i" && ok=$((ok + 1))
    done
    [ "$ok" = 3 ] && return 0
    sleep 0.1
  done
  echo "backends did not start; see $RUN" >&2
  return 1
}

kill_pidfile() {
  [ -f "$1" ] || return 0
  kill "$(cat "$1")" 2>/dev/null || true
  rm -f "$1"
}

stop() {
  for i in 1 2 3; do
    kill_pidfile "$RUN/nginx$i.pid"
    kill_pidfile "$RUN/socat$i.pid"
  done
}

case "$ACTION" in
  start) start ;;
  stop) stop ;;
  stop-one) kill_pidfile "$RUN/nginx$N.pid" ;;
  *) echo "usage: $0 start|stop|stop-one N [PREFIX] [RUNDIR]" >&2; exit 2 ;;
esac
