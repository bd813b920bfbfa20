#!/usr/bin/env bash
# sluice-proxy vs nginx as the same reverse proxy: same nginx backend, same machine, same
# load generator (wrk, keep-alive), plain HTTP and TLS. Everything runs on the loopback of a
# private network namespace, so no port of the host is touched. Needs root, nginx(-light),
# wrk, openssl, taskset, and a built sluice-proxy (+ sluicectl to program it).
#
#   scripts/bench-proxy.sh [SECONDS] [CONNECTIONS]
#   SLUICE_PROXY=path/to/sluice-proxy   (default: target/release/sluice-proxy)
#   SLUICECTL=path/to/sluicectl         (default: next to SLUICE_PROXY)
#   BASELINE_PROXY=path/to/other/sluice-proxy   also measure this build ("sluice-base")
#   BENCH_ROUNDS=N        rounds; each runs every contestant once per case (default 5)
#   BENCH_PROXY_CPUS=1    CPU list of the proxy under test; its worker threads / nginx
#                         worker_processes = the number of CPUs in it
#   BENCH_LOAD_CPUS=0     CPU list of wrk and the backend nginx
#   BENCH_NICE=-5         nice level of everything measured (vs. background compiles)
#   BENCH_RT=N            instead: run everything measured SCHED_FIFO at priority N
#
# Method (so the comparison is fair on a small, shared machine): the proxy under test and
# the load side (wrk + backend) are pinned to disjoint CPUs with taskset, the same pinning
# and thread count for nginx and sluice-proxy; the contestants alternate within each round
# (the order flips every round), each run after a 2 s warm-up; the table reports medians
# over the rounds, and the load average is printed per round. Both proxies pool backend
# connections (nginx: upstream keepalive + HTTP/1.1) and negotiate the same TLS: 1.3,
# TLS_AES_256_GCM_SHA384, X25519, ECDSA P-256 certificate (printed before measuring).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${1:-10}
CONNS=${2:-64}
ROUNDS=${BENCH_ROUNDS:-5}
PROXY_CPUS=${BENCH_PROXY_CPUS:-1}
LOAD_CPUS=${BENCH_LOAD_CPUS:-0}
NICE=${BENCH_NICE:--5}
PROXY=${SLUICE_PROXY:-target/release/sluice-proxy}
CTL=${SLUICECTL:-$(dirname "$PROXY")/sluicectl}
BASELINE=${BASELINE_PROXY:-}
for tool in wrk nginx openssl ip taskset curl; do
  command -v "$tool" >/dev/null || { echo "bench-proxy: $tool is missing (scripts/setup.sh installs it)" >&2; exit 2; }
done
[ -x "$PROXY" ] || { echo "bench-proxy: $PROXY not built (cargo build --release -p sluice-proxy)" >&2; exit 2; }
[ -x "$CTL" ] || { echo "bench-proxy: sluicectl not found at $CTL (set SLUICECTL)" >&2; exit 2; }
[ -z "$BASELINE" ] || [ -x "$BASELINE" ] || { echo "bench-proxy: BASELINE_PROXY $BASELINE is not executable" >&2; exit 2; }
# Threads of the proxy under test = CPUs it is pinned to.
THREADS=$(taskset -c "$PROXY_CPUS" nproc)

NS=sppbench$$
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
# The priority of everything measured: nice, or with BENCH_RT=N the SCHED_FIFO priority N
# (background compiles then cannot preempt the measurement; the kernel's RT throttling still
# leaves them 5% of each second).
if [ -n "${BENCH_RT:-}" ]; then prio=(chrt -f "$BENCH_RT"); else prio=(nice -n "$NICE"); fi
# Command prefixes (arrays, not functions: a background function would be a subshell whose
# pid is not the server's, and the cleanup would leave the servers running).
on_proxy_cpus=(ip netns exec "$NS" "${prio[@]}" taskset -c "$PROXY_CPUS")
on_load_cpus=(ip netns exec "$NS" "${prio[@]}" taskset -c "$LOAD_CPUS")

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -keyout "$RUN/server.key" -out "$RUN/server.crt" -subj /CN=bench.example \
  -addext subjectAltName=DNS:bench.example 2>/dev/null

common="daemon off; pid PIDFILE; error_log ERRLOG warn;"
temp_paths="client_body_temp_path $RUN; proxy_temp_path $RUN; fastcgi_temp_path $RUN; uwsgi_temp_path $RUN; scgi_temp_path $RUN;"

# The backend: one nginx worker answering a small fixed body.
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

# nginx as the reverse proxy under test: upstream keep-alive (pooled connections like
# sluice-proxy), HTTP/1.1 to the backend, the same forwarding headers, TLS 1.3 with X25519;
# like rustls, nginx follows the client's suite order (wrk/OpenSSL: AES-256-GCM first).
cat > "$RUN/nginx-proxy.conf" <<CONF
${common//PIDFILE/$RUN/proxy.pid}
worker_processes $THREADS;
events { worker_connections 4096; }
http {
  access_log off; $temp_paths
  keepalive_requests 1000000;
  upstream backend { server 127.0.0.1:8080; keepalive 64; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:8081;
    listen 127.0.0.1:8443 ssl;
    ssl_certificate $RUN/server.crt; ssl_certificate_key $RUN/server.key;
    ssl_protocols TLSv1.3;
    ssl_ecdh_curve X25519;
    location / {
      proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme; proxy_set_header X-Forwarded-Host \$host;
      proxy_set_header Forwarded "for=\$remote_addr;proto=\$scheme;host=\"\$host\"";
    }
  }
}
CONF
sed -i "s|ERRLOG|$RUN/nginx-proxy.err|" "$RUN/nginx-proxy.conf"

table() { # http_port https_port
  cat <<YAML
listeners:
  - {name: bench/http, address: 127.0.0.1, port: $1, protocol: HTTP}
  - {name: bench/https, address: 127.0.0.1, port: $2, protocol: HTTPS, certificateNames: [bench/cert]}
certificates:
  - {name: bench/cert, certFile: $RUN/server.crt, keyFile: $RUN/server.key}
routes:
  - name: bench/route
    listenerNames: [bench/http, bench/https]
    rules:
      - backends: [{name: backend, endpoints: ["127.0.0.1:8080"]}]
YAML
}

"${on_load_cpus[@]}" nginx -c "$RUN/backend.conf" -p "$RUN" & pids+=($!)
"${on_proxy_cpus[@]}" nginx -c "$RUN/nginx-proxy.conf" -p "$RUN" & pids+=($!)
# name:binary:http_port:https_port
contestants=("nginx::8081:8443" "sluice-proxy:$PROXY:9080:9443")
[ -n "$BASELINE" ] && contestants+=("sluice-base:$BASELINE:9180:9543")
for c in "${contestants[@]}"; do
  IFS=: read -r name bin http https <<<"$c"
  [ -n "$bin" ] || continue
  RUST_LOG=warn "${on_proxy_cpus[@]}" "$bin" --threads "$THREADS" --api-socket "$RUN/$name.sock" \
    >"$RUN/$name.log" 2>&1 & pids+=($!)
  for _ in $(seq 50); do [ -S "$RUN/$name.sock" ] && break; sleep 0.1; done
  table "$http" "$https" > "$RUN/$name.yaml"
  "$CTL" --server "unix://$RUN/$name.sock" l7 apply -f "$RUN/$name.yaml" >/dev/null
done
for c in "${contestants[@]}"; do
  IFS=: read -r name bin http https <<<"$c"
  for url in "http://127.0.0.1:$http/" "https://127.0.0.1:$https/"; do
    for _ in $(seq 50); do inns curl -sk -o /dev/null "$url" && break; sleep 0.1; done
    inns curl -skf -o /dev/null "$url" || { echo "bench-proxy: $name: $url does not answer" >&2; exit 1; }
  done
  # What TLS each one negotiates with an OpenSSL client (wrk uses OpenSSL too).
  tls=$(inns openssl s_client -connect "127.0.0.1:$https" -servername bench.example </dev/null 2>/dev/null \
    | awk '/^New, / {v=$2; c=$NF} /Server Temp Key/ {k=$4; sub(/,$/, "", k)} END {print v, c, k}')
  echo "# $name: TLS $tls"
done

# One wrk run: prints "req/s p99_in_ms errors".
measure() { # url
  local out rps p99 errors
  "${on_load_cpus[@]}" wrk -t1 -c"$CONNS" -d2s "$1" >/dev/null 2>&1 || true   # warm-up (pools, sessions)
  out=$("${on_load_cpus[@]}" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$1" 2>&1)
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; print v}' <<<"$out")
  errors=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr -s ' \n' ' ')
  printf '%s %s %s\n' "${rps:-0}" "${p99:-0}" "${errors:-}"
}
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

echo "# $ROUNDS rounds x ${DURATION}s, $CONNS keep-alive connections, wrk -t1; proxy on CPU $PROXY_CPUS ($THREADS threads/workers), wrk + backend on CPU $LOAD_CPUS, priority ${prio[*]}"
printf '# %-6s %-14s %6s %12s %10s  %s\n' round contestant case 'req/s' 'p99 ms' notes
for round in $(seq "$ROUNDS"); do
  echo "# round $round: load average $(cut -d' ' -f1-3 /proc/loadavg)"
  order=("${contestants[@]}")
  if (( round % 2 == 0 )); then   # flip the order every round
    order=(); for (( i=${#contestants[@]}-1; i>=0; i-- )); do order+=("${contestants[i]}"); done
  fi
  for case in http tls; do
    for c in "${order[@]}"; do
      IFS=: read -r name bin http https <<<"$c"
      url="http://127.0.0.1:$http/"; [ "$case" = tls ] && url="https://127.0.0.1:$https/"
      read -r rps p99 notes <<<"$(measure "$url")"
      printf '# %-6s %-14s %6s %12s %10s  %s\n' "$round" "$name" "$case" "$rps" "$p99" "$notes"
      echo "$case $name $rps $p99" >> "$RUN/results"
    done
  done
done
echo "# after: load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
printf '%-6s %-14s %14s %14s\n' case proxy 'req/s (median)' 'p99 ms (median)'
for case in http tls; do
  for c in "${contestants[@]}"; do
    name=${c%%:*}
    rps=$(awk -v c="$case" -v n="$name" '$1 == c && $2 == n {print $3}' "$RUN/results" | median)
    p99=$(awk -v c="$case" -v n="$name" '$1 == c && $2 == n {print $4}' "$RUN/results" | median)
    printf '%-6s %-14s %14.0f %14.2f\n' "$case" "$name" "$rps" "$p99"
  done
done
