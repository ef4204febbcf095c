#!/usr/bin/env bash
# Load run: ROOMS MPCs of 5 talking G.711 participants (1 agent, 3 customers, 1 coaching
# supervisor), placed by sipp with real RTP, held for HOLD seconds. Reports the mixer's tick
# lateness percentiles, dropped frames and huddle's CPU per participant over the steady part.
#
#   benches/load/run.sh [ROOMS=100] [HOLD_SECS=60]
#
# MIXER_PRIORITY=normal|high|realtime sets server.mixer_priority (default high).
#
# One sipp process per member slot of the room (5 processes), each streaming its own tone, so
# that the load generator's RTP work is spread over processes. Needs sipp (sip-tester), sox,
# curl and python3. Runs huddle from target/release.
#
# CALLER=rust places the same calls with huddle-loadgen (crates/loadgen) instead of sipp, which
# has no SRTP. SRTP=on offers RTP/SAVP with AES_CM_128_HMAC_SHA1_80 (SRTP=gcm:
# AEAD_AES_128_GCM) to a route with srtp = "required"; SRTP=off (the default) offers plain
# RTP/AVP to a route with srtp = "off", for a comparison with the same caller. The caller's
# own figures (received packets per call, authentication failures, its CPU) follow the report.
#
# AI=on adds one ai-agent stream member to every room through the REST API (role ai-agent,
# ai_agent_stream_service_url; AI_CONTENT_TYPE sets ai_agent_stream_content_type, default
# audio/x-l16;rate=8000), all served by one local huddle-aiservice process (crates/loadgen)
# that consumes the media frames and answers with a tone by playAudio. The report then adds
# the streams huddle opened and the service's own figures: frames received per stream,
# frames huddle skipped, arrival gaps and the service's CPU. AI=off (the default) adds none.
#
# CODEC=opus (with CALLER=rust) makes every call offer and send Opus instead of PCMU.
# TALK=turns (with CALLER=rust) has the members of each room talk in turns of 2 s, one at a
# time, sending silence otherwise, as people in a call do; TALK=all (the default) has every
# member talk all the time, the worst case.
set -euo pipefail

rooms="${1:-100}"
hold="${2:-60}"
procs=5
caller="${CALLER:-sipp}"
srtp="${SRTP:-off}"
codec="${CODEC:-pcmu}"
talk="${TALK:-all}"
if [ "$talk" != all ] && [ "$caller" != rust ]; then
  echo "TALK=$talk needs CALLER=rust (the sipp members talk all the time)" >&2; exit 2
fi
if [ "$codec" != pcmu ] && [ "$caller" != rust ]; then
  echo "CODEC=$codec needs CALLER=rust (the sipp scenario sends PCMU)" >&2; exit 2
fi
case "$caller:$srtp" in
  sipp:off) route_srtp="" ;;
  rust:off) media=plain route_srtp='srtp = "off"' ;;
  rust:on) media=aes-cm route_srtp='srtp = "required"' ;;
  rust:gcm) media=aes-gcm route_srtp='srtp = "required"' ;;
  sipp:*) echo "sipp has no SRTP: use CALLER=rust for SRTP=$srtp" >&2; exit 2 ;;
  *) echo "CALLER is sipp or rust, SRTP is off, on or gcm" >&2; exit 2 ;;
esac
ai="${AI:-off}"
ai_type="${AI_CONTENT_TYPE:-audio/x-l16;rate=8000}"
case "$ai" in
  on|off) ;;
  *) echo "AI is on or off" >&2; exit 2 ;;
esac
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."

cargo build --release --quiet
if [ "$caller" = rust ] || [ "$ai" = on ]; then
  cargo build --release --quiet -p huddle-loadgen
fi
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; pkill -f "sipp 127.0.0.1:25060" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

for i in 0 1 2 3 4; do
  sox -n -r 8000 -c 1 -e u-law -t raw "$work/tone$i.ulaw" synth 10 sine $((310 + i * 270)) vol 0.3
done

sip_port=25060
http_port=28088
cat > "$work/huddle.toml" <<TOML
[sip]
listen = ["udp:127.0.0.1:$sip_port"]
advertised_address = "127.0.0.1"
[rtp]
port_range = "20000-30000"
rtp_timeout_secs = 0
[http]
listen = "127.0.0.1:$http_port"
auth_id = "MAHUDDLEDEFAULT00000"
auth_token = "change-me"
public_url = "http://127.0.0.1:$http_port"
[server]
mixer_priority = "${MIXER_PRIORITY:-high}"
[storage]
database = "sqlite://$work/huddle.db"
recordings = "$work/recordings"
[[route]]
user = "^(?P<role>agent|customer|supervisor)-(?P<mpc>[A-Za-z0-9_.-]+)\$"
xml = '<Response><MultiPartyCall role="\$role" stayAlone="true">\$mpc</MultiPartyCall></Response>'
$route_srtp
TOML

ai_port=28090
if [ "$ai" = on ]; then
  target/release/huddle-aiservice --listen 127.0.0.1:$ai_port --per-stream \
    > "$work/aiservice.out" 2> "$work/aiservice.err" &
  ai_pid=$!
fi

RUST_LOG=warn target/release/huddle serve --config "$work/huddle.toml" > "$work/huddle.log" 2>&1 &
huddle_pid=$!
up=no
for _ in $(seq 100); do
  if curl -sf "http://127.0.0.1:$http_port/health" >/dev/null 2>&1; then up=yes; break; fi
  sleep 0.1
done
if [ "$up" != yes ]; then
  echo "huddle did not start:" >&2
  cat "$work/huddle.log" >&2
  exit 1
fi

members=$((rooms * 5))
per_proc=$(( (members + procs - 1) / procs ))
rate=40
ramp=$(( per_proc / rate + 3 ))
hold_ms=$(( (hold + ramp + 10) * 1000 ))
if [ "$caller" = rust ]; then
  # The same ramp (5 x 40 calls a second) and the same time on the call as the sipp path.
  target/release/huddle-loadgen --server 127.0.0.1:$sip_port --rooms "$rooms" \
    --rate $((procs * rate)) --hold $((hold_ms / 1000)) --media "$media" --codec "$codec" --talk "$talk" \
    > "$work/loadgen.out" 2> "$work/loadgen.err" &
  caller_pid=$!
  caller_cpu() { awk '{print $14 + $15}' "/proc/$caller_pid/stat"; }
  caller_label="huddle-loadgen media=$media codec=$codec talk=$talk"
else
python3 - "$work" "$rooms" "$procs" "$per_proc" "$here/member.xml" <<'PY'
import sys
work, rooms, procs, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
roles = ["agent", "customer", "customer", "customer", "supervisor"]
for p, role in enumerate(roles):
    with open(f"{work}/members{p}.csv", "w") as f:
        f.write("SEQUENTIAL\n" + "\n".join(f"{role}-r{r};" for r in range(rooms)) + "\n")
    # rtp_stream takes a literal file name, so each process gets its own scenario.
    scenario = open(sys.argv[5]).read().replace("[field1]", f"{work}/tone{p}.ulaw")
    open(f"{work}/member{p}.xml", "w").write(scenario)
PY

for p in $(seq 0 $((procs - 1))); do
  calls=$(( $(wc -l < "$work/members$p.csv") - 1 ))
  sipp 127.0.0.1:$sip_port -sf "$work/member$p.xml" -inf "$work/members$p.csv" \
    -m "$calls" -l "$calls" -r "$rate" -d "$hold_ms" \
    -i 127.0.0.1 -p $((19000 + p)) -mi 127.0.0.1 -mp $((10000 + p * 2000)) \
    -nostdin -bg -trace_err -error_file "$work/sipp$p.err" -trace_stat -stf "$work/sipp$p.csv" \
    > "$work/sipp$p.out" 2>&1 || true
done
caller_cpu() { for p in $(pgrep -f "sipp 127.0.0.1:$sip_port"); do awk '{print $14 + $15}' "/proc/$p/stat"; done | paste -sd+ | bc; }
caller_label=sipp
fi

sleep "$ramp"
ai_added=0
if [ "$ai" = on ]; then
  # One stream member per room, added once the rooms are up; 201 answers are counted.
  for r in $(seq 0 $((rooms - 1))); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -u MAHUDDLEDEFAULT00000:change-me \
      -H 'Content-Type: application/json' \
      -d "{\"role\":\"ai-agent\",\"ai_agent_stream_service_url\":\"ws://127.0.0.1:$ai_port/r$r\",\"ai_agent_stream_content_type\":\"$ai_type\"}" \
      "http://127.0.0.1:$http_port/v1/Account/MAHUDDLEDEFAULT00000/MultiPartyCall/name_r$r/Participant/" || true)
    if [ "$code" = 201 ]; then ai_added=$((ai_added + 1)); fi
  done
  ai_cpu() { awk '{print $14 + $15}' "/proc/$ai_pid/stat"; }
else
  ai_cpu() { echo 0; }
fi
sleep 5
a0=$(ai_cpu)
s0=$(caller_cpu)
metrics() { curl -sf "http://127.0.0.1:$http_port/metrics"; }
cpu() { awk '{print $14 + $15}' "/proc/$huddle_pid/stat"; }
# Datagrams the kernel dropped at huddle's RTP sockets (ports 20000-30000; full buffers).
rtp_socket_drops() { python3 -c 'import sys; print(sum(int(l.split()[-1]) for f in ("/proc/net/udp", "/proc/net/udp6") for l in open(f).readlines()[1:] if 20000 <= int(l.split()[1].split(":")[1], 16) <= 30000))'; }
k0=$(rtp_socket_drops)
metrics > "$work/m0.txt"; c0=$(cpu); t0=$(date +%s.%N); head -1 /proc/stat > "$work/stat0.txt"
sleep "$hold"
metrics > "$work/m1.txt"; c1=$(cpu); t1=$(date +%s.%N); s1=$(caller_cpu); a1=$(ai_cpu); head -1 /proc/stat > "$work/stat1.txt"
k1=$(rtp_socket_drops)

active=$(grep -E '^huddle_calls_active ' "$work/m1.txt" | awk '{print $2}')

python3 - "$work" "$rooms" "$members" "$c0" "$c1" "$t0" "$t1" "${active:-0}" "$procs" "${s0:-0}" "${s1:-0}" "$((k1 - k0))" "$caller_label" "$ai" "$ai_added" "$a0" "$a1" <<'PY'
import sys, re
work, rooms, members = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c0, c1, t0, t1, active = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]), float(sys.argv[7]), float(sys.argv[8])
procs = int(sys.argv[9])
caller_cores = (int(sys.argv[11]) - int(sys.argv[10])) / 100.0 / (t1 - t0)
def parse(path):
    out = {}
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        name, value = line.rsplit(" ", 1)
        out[name] = float(value)
    return out
m0, m1 = parse(f"{work}/m0.txt"), parse(f"{work}/m1.txt")
def delta(name):
    return m1.get(name, 0.0) - m0.get(name, 0.0)
buckets = sorted(
    (float(re.search(r'le="([^"]+)"', k).group(1)), delta(k))
    for k in m1 if k.startswith("huddle_mixer_tick_lateness_seconds_bucket")
)
total = delta("huddle_mixer_tick_lateness_seconds_count")
def pct(p):
    for le, n in buckets:
        if total and n >= p * total:
            return le
    return float("inf")
dropped = {k: delta(k) for k in m1 if k.startswith(("huddle_rtp_dropped_total", "huddle_mixer_ticks_skipped_total")) and delta(k) > 0}
secs = t1 - t0
cpu = (c1 - c0) / 100.0 / secs  # cores
caller = sys.argv[13]
if caller == "sipp":
    print(f"rooms={rooms} participants={members} active_calls={active:.0f} window={secs:.0f}s sipp_processes={procs}")
else:
    print(f"rooms={rooms} participants={members} active_calls={active:.0f} window={secs:.0f}s caller={caller}")
def within(limit):
    return next((n for le, n in buckets if abs(le - limit) < 1e-9), 0.0) * 100 / max(total, 1)
print(f"ticks={total:.0f} p50<={pct(0.5)*1000:.1f}ms p99<={pct(0.99)*1000:.1f}ms p99.9<={pct(0.999)*1000:.1f}ms")
print(f"ticks within 1 ms: {within(0.001):.2f}%, within 2 ms: {within(0.002):.3f}%")
caller_name = "sipp" if caller == "sipp" else "loadgen"
print(f"huddle_cpu={cpu*100:.0f}% of one core, per participant={cpu*100/max(active,1):.3f}%; {caller_name}_cpu={caller_cores*100:.0f}%")
print("dropped:", dropped if dropped else "none")
print(f"datagrams dropped by the kernel at huddle's RTP sockets: {sys.argv[12]}")
print(f"room ticks taken over by another mixing thread: {delta('huddle_mixer_ticks_taken_over_total'):.0f}")
concealed = delta("huddle_rtp_concealed_frames_total")
print(f"concealed frames (a sender's packet missing at its playout tick): {concealed:.0f}")
# The whole machine over the window, from /proc/stat: user, nice, system, irq, softirq vs idle.
# Softirq is where the kernel delivers loopback packets; it is billed to no process.
f0 = [int(x) for x in open(f"{work}/stat0.txt").read().split()[1:]]
f1 = [int(x) for x in open(f"{work}/stat1.txt").read().split()[1:]]
d = [b - a for a, b in zip(f0, f1)]
total = sum(d[:8]) or 1
busy = total - d[3] - d[4]
print(f"machine busy={busy * 100 / total:.0f}% of all cores, softirq={d[6] * 100 / total:.0f}%")
if sys.argv[14] == "on":
    added, a0, a1 = int(sys.argv[15]), int(sys.argv[16]), int(sys.argv[17])
    connects = m1.get("huddle_aistream_connects_total", 0.0)
    failures = m1.get("huddle_aistream_failures_total", 0.0)
    lost = {k: delta(k) for k in m1 if k.startswith(("huddle_aistream_frames_dropped_total", "huddle_aistream_play_dropped_samples_total", "huddle_aistream_refused_messages_total")) and delta(k) > 0}
    print(f"ai streams: added={added} of {rooms} rooms, connects={connects:.0f}, failures={failures:.0f}; "
          f"huddle_cpu={cpu*100:.1f}%, per member (participants and streams)={cpu*100/max(active + added, 1):.3f}%; "
          f"ai_service_cpu={(a1 - a0) / 100.0 / secs * 100:.1f}%")
    print("ai stream losses in the window:", lost if lost else "none")
PY
if [ "$caller" = rust ]; then
  # The caller hangs up on its own once its hold is over; its figures cover whole calls.
  caller_status=0
  wait "$caller_pid" || caller_status=$?
  echo "huddle-loadgen (exit status $caller_status):"
  cat "$work/loadgen.out"
fi
if [ "$ai" = on ]; then
  # The service prints its figures (whole streams, from start to now) when told to stop.
  ai_status=0
  kill -INT "$ai_pid" 2>/dev/null || true
  wait "$ai_pid" || ai_status=$?
  echo "huddle-aiservice (exit status $ai_status; per stream in $work/aiservice.out):"
  grep '^ai-service:' "$work/aiservice.out" || cat "$work/aiservice.err"
fi
echo "logs in $work"
