#!/usr/bin/env bash
# sluice-proxy vs nginx as the same reverse proxy: same nginx backend, same machine, same
# load generator (wrk, keep-alive), plain HTTP and TLS. Everything runs on the loopback of a
# private network namespace, so no port of the host is touched. Prints a table of requests/s
# and p99 latency. Needs root, nginx(-light), wrk, openssl, and a built sluice-proxy.
#
#   scripts/bench-proxy.sh [SECONDS] [CONNECTIONS]
#   SLUICE_PROXY=path/to/sluice-proxy   (default: target/release/sluice-proxy)
#   BENCH_THREADS=N                     proxy worker threads / nginx workers (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${1:-10}
CONNS=${2:-64}
THREADS=${BENCH_THREADS:-2}
PROXY=${SLUICE_PROXY:-target/release/sluice-proxy}
for tool in wrk nginx openssl ip; do
  command -v "$tool" >/dev/null || { echo "bench-proxy: $tool is missing (scripts/setup.sh installs it)" >&2; exit 2; }
done
[ -x "$PROXY" ] || { echo "bench-proxy: $PROXY not built (cargo build --release -p sluice-proxy)" >&2; exit 2; }

NS=spxbench$$
RUN=$(mktemp -d /tmp/sluice-bench-proxy.XXXXXX)
chmod 755 "$RUN"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$RUN"
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
inns() { ip netns exec "$NS" "$@"; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -keyout "$RUN/server.key" -out "$RUN/server.crt" -subj /CN=bench.example \
  -addext subjectAltName=DNS:bench.example 2>/dev/null

common="daemon off; pid PIDFILE; error_log ERRLOG warn;"
temp_paths="client_body_temp_path $RUN; proxy_temp_path $RUN; fastcgi_temp_path $RUN; uwsgi_temp_path $RUN; scgi_temp_path $RUN;"

# The backend: one nginx answering a small fixed body.
cat > "$RUN/backend.conf" <<CONF
${common//PIDFILE/$RUN/backend.pid}
worker_processes 1;
events { worker_connections 4096; }
http {
  access_log off; $temp_paths
  keepalive_requests 1000000;
  server { listen 127.0.0.1:8080; location / { default_type text/plain; return 200 "hello from the backend\n"; } }
}
CONF
sed -i "s|ERRLOG|$RUN/backend.err|" "$RUN/backend.conf"

# nginx as the reverse proxy under test: upstream keep-alive, HTTP/1.1 to the backend.
cat > "$RUN/nginx-proxy.conf" <<CONF
${common//PIDFILE/$RUN/proxy.pid}
worker_processes $THREADS;
events { worker_connections 4096; }
http {
  access_log off; $temp_paths
  keepalive_requests 1000000;
  upstream backend { server 127.0.0.1:8080; keepalive 256; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:8081;
    listen 127.0.0.1:8443 ssl;
    ssl_certificate $RUN/server.crt; ssl_certificate_key $RUN/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
    }
  }
}
CONF
sed -i "s|ERRLOG|$RUN/nginx-proxy.err|" "$RUN/nginx-proxy.conf"

cat > "$RUN/table.yaml" <<YAML
listeners:
  - {name: bench/http, address: 127.0.0.1, port: 9080, protocol: HTTP}
  - {name: bench/https, address: 127.0.0.1, port: 9443, protocol: HTTPS, certificateNames: [bench/cert]}
certificates:
  - {name: bench/cert, certFile: $RUN/server.crt, keyFile: $RUN/server.key}
routes:
  - name: bench/route
    listenerNames: [bench/http, bench/https]
    rules:
      - backends: [{name: backend, endpoints: ["127.0.0.1:8080"]}]
YAML

ip netns exec "$NS" nginx -c "$RUN/backend.conf" -p "$RUN" & pids+=($!)
ip netns exec "$NS" nginx -c "$RUN/nginx-proxy.conf" -p "$RUN" & pids+=($!)
RUST_LOG=warn ip netns exec "$NS" "$PROXY" --threads "$THREADS" --api-socket "$RUN/proxy.sock" >"$RUN/sluice-proxy.log" 2>&1 & pids+=($!)
CTL=${SLUICECTL:-$(dirname "$PROXY")/sluicectl}
for _ in $(seq 50); do [ -S "$RUN/proxy.sock" ] && break; sleep 0.1; done
if [ -x "$CTL" ]; then
  "$CTL" --server "unix://$RUN/proxy.sock" l7 apply -f "$RUN/table.yaml" >/dev/null
else
  echo "bench-proxy: sluicectl not found next to $PROXY (set SLUICECTL)" >&2; exit 2
fi
for url in http://127.0.0.1:8080/ http://127.0.0.1:8081/ http://127.0.0.1:9080/; do
  for _ in $(seq 50); do inns curl -s -o /dev/null "$url" && break; sleep 0.1; done
  inns curl -sf -o /dev/null "$url" || { echo "bench-proxy: $url does not answer" >&2; exit 1; }
done

# wrk: keep-alive connections, 2 threads; "Requests/sec" and the 99% latency line.
measure() { # connections url
  local out rps p99 errors
  inns wrk -t2 -c"$1" -d2s "$2" >/dev/null 2>&1 || true   # warm-up (pools, TLS sessions)
  out=$(inns wrk -t2 -c"$1" -d"${DURATION}s" --latency "$2" 2>&1)
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  errors=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
  printf '%s %s %s\n' "${rps:-?}" "${p99:-?}" "${errors:-}"
}

printf '%-10s %-12s %12s %10s  %s\n' case proxy 'req/s' p99 notes
for case in http:8081:9080 tls:8443:9443; do
  IFS=: read -r name nginx_port sluice_port <<<"$case"
  scheme=http; [ "$name" = tls ] && scheme=https
  read -r rps p99 notes <<<"$(measure "$CONNS" "$scheme://127.0.0.1:$nginx_port/")"
  printf '%-10s %-12s %12s %10s  %s\n' "$name" nginx "$rps" "$p99" "$notes"
  read -r rps p99 notes <<<"$(measure "$CONNS" "$scheme://127.0.0.1:$sluice_port/")"
  printf '%-10s %-12s %12s %10s  %s\n' "$name" sluice-proxy "$rps" "$p99" "$notes"
done
echo "(${DURATION}s per run, $CONNS keep-alive connections, wrk -t2, $THREADS proxy threads/workers, nginx backend with 1 worker)"
