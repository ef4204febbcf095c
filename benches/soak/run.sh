#!/usr/bin/env bash
# Soak: ROOMS five-party MPCs whose members come and go continuously for MINUTES. Each member
# slot (agent, three customers, a coaching supervisor) is one sipp process placing calls to
# the rooms in turn, ROOMS calls per HOLD_MEAN seconds, each call talking a tone for a
# uniform 0.5–1.5 × HOLD_MEAN seconds before its BYE: about ROOMS × 5 calls are up at any
# time, and every room sees joins and exits all the time (and ends and starts again when its
# last member leaves). Samples huddle's RSS and open files every 10 s and reports their growth
# after a two-minute warm-up, failed calls, tick lateness and drops.
#
#   benches/soak/run.sh [ROOMS=320] [MINUTES=10] [HOLD_MEAN_SECS=30]
#
# Needs sipp (sip-tester), sox, curl and python3. Runs huddle from target/release.
set -euo pipefail

rooms="${1:-320}"
minutes="${2:-10}"
hold_mean="${3:-30}"
procs=5
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."

cargo build --release --quiet
work="$(mktemp -d)"
sip_port=26060
http_port=29088
trap 'kill $(jobs -p) 2>/dev/null || true; pkill -f "sipp 127.0.0.1:$sip_port" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

for i in 0 1 2 3 4; do
  sox -n -r 8000 -c 1 -e u-law -t raw "$work/tone$i.ulaw" synth 10 sine $((310 + i * 270)) vol 0.3
done

cat > "$work/huddle.toml" <<TOML
[sip]
listen = ["udp:127.0.0.1:$sip_port"]
advertised_address = "127.0.0.1"
[rtp]
port_range = "20000-40000"
rtp_timeout_secs = 0
[http]
listen = "127.0.0.1:$http_port"
auth_id = "MAHUDDLEDEFAULT00000"
auth_token = "change-me"
public_url = "http://127.0.0.1:$http_port"
[storage]
database = "sqlite://$work/huddle.db"
recordings = "$work/recordings"
[[route]]
user = "^(?P<role>agent|customer|supervisor)-(?P<mpc>[A-Za-z0-9_.-]+)\$"
xml = '<Response><MultiPartyCall role="\$role" stayAlone="true">\$mpc</MultiPartyCall></Response>'
TOML

RUST_LOG=warn target/release/huddle serve --config "$work/huddle.toml" > "$work/huddle.log" 2>&1 &
huddle_pid=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$http_port/health" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$http_port/health" >/dev/null || { echo "huddle did not start:" >&2; cat "$work/huddle.log" >&2; exit 1; }

python3 - "$work" "$rooms" "$here/../load/member.xml" "$hold_mean" <<'PY'
import sys
work, rooms, template, hold_mean = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
roles = ["agent", "customer", "customer", "customer", "supervisor"]
lo, hi = hold_mean * 500, hold_mean * 1500
for p, role in enumerate(roles):
    with open(f"{work}/members{p}.csv", "w") as f:
        f.write("SEQUENTIAL\n" + "\n".join(f"{role}-s{r};" for r in range(rooms)) + "\n")
    scenario = open(template).read().replace("[field1]", f"{work}/tone{p}.ulaw")
    scenario = scenario.replace("<pause/>", f'<pause distribution="uniform" min="{lo}" max="{hi}"/>')
    open(f"{work}/member{p}.xml", "w").write(scenario)
PY

secs=$((minutes * 60))
calls=$((rooms * secs / hold_mean))
for p in $(seq 0 $((procs - 1))); do
  # ROOMS calls every HOLD_MEAN seconds; at most twice the target concurrency in flight.
  sipp 127.0.0.1:$sip_port -sf "$work/member$p.xml" -inf "$work/members$p.csv" \
    -m "$calls" -l $((rooms * 2)) -r "$rooms" -rp $((hold_mean * 1000)) \
    -i 127.0.0.1 -p $((19100 + p)) -mi 127.0.0.1 -mp $((10000 + p * 3000)) \
    -nostdin -bg -trace_err -error_file "$work/sipp$p.err" -trace_stat -stf "$work/sipp$p.csv" -fd 10 \
    > "$work/sipp$p.out" 2>&1 || true
done

metric() { curl -sf "http://127.0.0.1:$http_port/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
sample() {
  local rss fds active
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$huddle_pid/status")
  fds=$(ls "/proc/$huddle_pid/fd" | wc -l)
  active=$(metric huddle_calls_active)
  echo "$1,$rss,$fds,${active:-0}" >> "$work/samples.csv"
}
echo "secs,rss_kib,open_files,calls_active" > "$work/samples.csv"
curl -sf "http://127.0.0.1:$http_port/metrics" > "$work/m0.txt"
start=$(date +%s)
while :; do
  now=$(( $(date +%s) - start ))
  sample "$now"
  [ "$now" -ge "$secs" ] && break
  sleep 10
done
curl -sf "http://127.0.0.1:$http_port/metrics" > "$work/m1.txt"
# Let the last calls end (the sipp processes stop after their last BYE), then sample once more.
for _ in $(seq $((hold_mean * 2 + 30))); do
  pgrep -f "sipp 127.0.0.1:$sip_port" > /dev/null || break
  sleep 1
done
sleep 5
sample "$(( $(date +%s) - start ))"

python3 - "$work" "$procs" <<'PY'
import csv, re, statistics, sys
work, procs = sys.argv[1], int(sys.argv[2])
rows = list(csv.DictReader(open(f"{work}/samples.csv")))
churn, after = rows[:-1], rows[-1]
def col(rs, name):
    return [float(r[name]) for r in rs]
end = int(churn[-1]["secs"])
warm = [r for r in churn if 120 <= int(r["secs"]) < 180]
last = [r for r in churn if int(r["secs"]) >= end - 60]
print(f"soak: {end} s of churn, samples every 10 s; calls up: median {statistics.median(col(churn[12:], 'calls_active')):.0f}")
for name, label in (("rss_kib", "RSS"), ("open_files", "open files")):
    base, tail = statistics.median(col(warm, name)), statistics.median(col(last, name))
    growth = (tail - base) * 100 / base if base else float("nan")
    peak = max(col(churn, name))
    print(f"{label}: after warm-up (2-3 min) {base:.0f}, last minute {tail:.0f} ({growth:+.1f} %), peak {peak:.0f}, after the calls ended {float(after[name]):.0f}")
ok = failed = 0
for p in range(procs):
    lines = open(f"{work}/sipp{p}.csv").read().strip().splitlines()
    head, tail = lines[0].split(";"), lines[-1].split(";")
    ok += int(tail[head.index("SuccessfulCall(C)")])
    failed += int(tail[head.index("FailedCall(C)")])
print(f"calls: {ok} completed, {failed} failed")
def parse(path):
    out = {}
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        name, value = line.rsplit(" ", 1)
        out[name] = float(value)
    return out
m0, m1 = parse(f"{work}/m0.txt"), parse(f"{work}/m1.txt")
d = lambda k: m1.get(k, 0.0) - m0.get(k, 0.0)
total = d("huddle_mixer_tick_lateness_seconds_count")
within = {float(re.search(r'le="([^"]+)"', k).group(1)): d(k) for k in m1 if k.startswith("huddle_mixer_tick_lateness_seconds_bucket")}
print(f"ticks within 2 ms: {within.get(0.002, 0) * 100 / max(total, 1):.3f} %")
dropped = {k: d(k) for k in m1 if k.startswith(("huddle_rtp_dropped_total", "huddle_mixer_ticks_skipped_total")) and d(k) > 0}
print("dropped:", dropped if dropped else "none")
PY
echo "logs and samples in $work"
