#!/usr/bin/env bash
# Memory after floods: starts the release server on the embedded defaults' limits and samples
# its resident memory (VmRSS from /proc/PID/status) and open files before, during and after
#   (a) HALF_OPEN half-sent HTTP requests from 100 loopback addresses (two client processes,
#       so that neither needs more than its file limit), held for 20 s, then closed;
#   (b) a no-ACK INVITE flood at RATE calls/s for FLOOD_SECS seconds from one address to the
#       echo route (sipp, benches/flood/noack.xml): each answered call waits 32 s for its ACK.
# Prints one line per sample. MALLOC_ARENA_MAX and the like pass through to the server.
#
#   benches/flood/rss.sh [HALF_OPEN=20000] [RATE=100] [FLOOD_SECS=30]
#
# Needs sipp (sip-tester), curl and python3. Runs huddle from target/release (HUDDLE_BIN to
# use another binary).
set -euo pipefail

half_open="${1:-20000}"
rate="${2:-100}"
flood_secs="${3:-30}"
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."

bin="${HUDDLE_BIN:-target/release/huddle}"
[ -n "${HUDDLE_BIN:-}" ] || cargo build --release --quiet
work="$(mktemp -d)"
sip_port=27060
http_port=29188
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT
ulimit -n "$(ulimit -Hn)"

cat > "$work/huddle.toml" <<TOML
[sip]
listen = ["udp:127.0.0.1:$sip_port"]
advertised_address = "127.0.0.1"
[rtp]
port_range = "20000-40000"
[http]
listen = "127.0.0.1:$http_port"
auth_id = "MAHUDDLEDEFAULT00000"
auth_token = "change-me"
public_url = "http://127.0.0.1:$http_port"
[storage]
database = "sqlite://$work/huddle.db"
recordings = "$work/recordings"
[[route]]
user = "^echo\$"
echo = true
TOML

RUST_LOG=warn "$bin" serve --config "$work/huddle.toml" > "$work/huddle.log" 2>&1 &
huddle_pid=$!
pids+=("$huddle_pid")
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$http_port/health" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$http_port/health" >/dev/null || { echo "huddle did not start:" >&2; cat "$work/huddle.log" >&2; exit 1; }

t0=$(date +%s)
sample() {
  local rss fds health
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$huddle_pid/status")
  fds=$(ls "/proc/$huddle_pid/fd" | wc -l)
  health=$(curl -s -o /dev/null -m 5 -w "%{http_code} in %{time_total}s" "http://127.0.0.1:$http_port/health" || true)
  printf "%4ss  %-44s RSS %7s MB  open files %6s  /health %s\n" \
    "$(( $(date +%s) - t0 ))" "$1" "$(awk -v k="$rss" 'BEGIN {printf "%.1f", k / 1024}')" "$fds" "$health"
}
metric() { curl -sf "http://127.0.0.1:$http_port/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

echo "huddle $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX:-unset}"
sleep 2
sample "idle after start"

# (a) Half-sent HTTP requests, in two processes of half each.
hold=20
half=$((half_open / 2))
python3 "$here/half_open.py" 127.0.0.1 "$http_port" "$half" 1 "$hold" > "$work/half1.out" 2>&1 &
pids+=($!)
python3 "$here/half_open.py" 127.0.0.1 "$http_port" "$((half_open - half))" 101 "$hold" > "$work/half2.out" 2>&1 &
pids+=($!)
for _ in $(seq 600); do
  [ "$(grep -c '^held' "$work/half1.out" "$work/half2.out" | awk -F: '{s += $2} END {print s}')" = 2 ] && break
  sleep 0.1
done
sample "HTTP: $(awk '/^held/ {s += $2} END {print s}' "$work/half1.out" "$work/half2.out") half-sent requests open"
sleep $((hold / 2))
sample "HTTP: still open"
for _ in $(seq 600); do
  [ "$(grep -c '^closed' "$work/half1.out" "$work/half2.out" | awk -F: '{s += $2} END {print s}')" = 2 ] && break
  sleep 0.1
done
sleep 2
sample "HTTP: 2 s after the clients closed"
sleep 15
sample "HTTP: 17 s after"
echo "        shed: $(metric huddle_http_connections_shed_total), timed out: $(metric 'huddle_http_connections_timed_out_total{reason="header"}')"

# (b) No-ACK INVITE flood.
sipp 127.0.0.1:$sip_port -sf "$here/noack.xml" -r "$rate" -m $((rate * flood_secs)) \
  -i 127.0.0.1 -p 27999 -nostdin -bg -timeout $((flood_secs + 30))s \
  -trace_stat -stf "$work/flood.csv" -fd 5 > "$work/sipp.out" 2>&1 || true
sipp_pid=$(grep -o 'PID=\[[0-9]*\]' "$work/sipp.out" | tr -dc 0-9 || true)
[ -n "$sipp_pid" ] && pids+=("$sipp_pid")
sleep "$flood_secs"
sample "SIP: end of the flood ($rate INVITE/s, ${flood_secs} s)"
echo "        refused: $(curl -sf "http://127.0.0.1:$http_port/metrics" | awk '/^huddle_sip_refused_total/ {printf "%s=%s ", $1, $2}')"
sleep 35
sample "SIP: 35 s after (ACK timers fired)"
sleep 30
sample "SIP: 65 s after"
echo "logs in $work"
