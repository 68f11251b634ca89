#!/usr/bin/env bash
# Admission load and fault benchmark (not a test): `modelseal serve`'s server on loopback
# under sustained load, with IDLE TLS connections held open the whole time and every
# uncached decision delayed by STORE_LATENCY_MS before it reads the store. Two phases:
# cached (every request a cache hit) and uncached (cache off: every request reads the
# store), and uncached-2of3 (as uncached, under a policy needing 2 of 3 co-signing publishers,
# every publisher's signature in the store). Reports requests/s, client-side p50/p99/p99.9, server-time p50/p99/p99.9 (from
# the server's own histogram: the upper bound of the bucket), failures (requests not
# answered 200), and the server's peak RSS. See bench/README.md.
#
#   REPS=3 (each phase REPS times, interleaved; medians reported)
#   SECONDS_PER_PHASE=15 (at most 25: the idle connections must outlive a phase within
#   the 30 s header timeout)  CONNECTIONS=32  IDLE=1000  STORE_LATENCY_MS=5
#   OUT=FILE (default bench/results/DATE-admission.json)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SECONDS_PER_PHASE=${SECONDS_PER_PHASE:-15}
[ "$SECONDS_PER_PHASE" -le 25 ] || { echo "SECONDS_PER_PHASE must be at most 25" >&2; exit 2; }
CONNECTIONS=${CONNECTIONS:-32}
IDLE=${IDLE:-1000}
STORE_LATENCY_MS=${STORE_LATENCY_MS:-5}
REPS=${REPS:-3}
OUT=$(realpath -m "${OUT:-$ROOT/bench/results/$(date -u +%Y-%m-%d)-admission.json}")
say() { printf '==> %s\n' "$*" >&2; }

say "building modelseal and the bench (release)"
cargo build --release --locked --quiet --manifest-path "$ROOT/Cargo.toml" -p modelseal-cli
cargo build --release --locked --quiet --manifest-path "$HERE/Cargo.toml" --target-dir "$ROOT/target"
MODELSEAL=$ROOT/target/release/modelseal
BENCH=$ROOT/target/release/modelseal-admission-bench
# Both ends hold IDLE connections: raise the soft descriptor limit to the hard one.
ulimit -n "$(ulimit -Hn)"

W=$(mktemp -d "${TMPDIR:-/tmp}/modelseal-admission-bench.XXXXXX")
SERVER=
cleanup() { [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
cd "$W"

say "a signed dataset, a model trained on it, the store, a policy, certificates"
for k in publisher builder curator; do "$MODELSEAL" keygen --out "$k.key" >/dev/null; done
mkdir -p corpus model
echo '{"text": "hello"}' > corpus/train.jsonl
head -c 1000000 /dev/urandom > model/weights.bin
"$MODELSEAL" sign corpus --kind dataset --key curator.key >/dev/null
"$MODELSEAL" sign model --key publisher.key >/dev/null
"$MODELSEAL" attest training --model model --key builder.key --dataset corpus --builder-id https://ci.example.com/trainer >/dev/null
for k in second third; do "$MODELSEAL" keygen --out "$k.key" >/dev/null; done
"$MODELSEAL" sign model --key second.key --signature model.second.sig >/dev/null
"$MODELSEAL" sign model --key third.key --signature model.third.sig >/dev/null
"$MODELSEAL" store add store corpus.sig model.sig model.provenance.sig model.second.sig model.third.sig >/dev/null
MODEL=$("$MODELSEAL" hash model | cut -d' ' -f1)
cat > policy.toml <<POLICY
[[signer]]
name = "release"
roles = ["model-publisher"]
key = "publisher.key.pub"
[[signer]]
name = "ci"
roles = ["training-builder"]
key = "builder.key.pub"
[[signer]]
name = "data"
roles = ["dataset-curator"]
key = "curator.key.pub"
POLICY
{ cat policy.toml; cat <<POLICY
[[signer]]
name = "second"
roles = ["model-publisher"]
key = "second.key.pub"
[[signer]]
name = "third"
roles = ["model-publisher"]
key = "third.key.pub"
[roles.model-publisher]
threshold = 2
POLICY
} > policy-2of3.toml
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem \
  -days 2 -subj /CN=bench-ca 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout tls.key -out tls.csr \
  -subj /CN=127.0.0.1 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > ext.cnf
openssl x509 -req -in tls.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out tls.pem -days 2 \
  -extfile ext.cnf 2>/dev/null

phase() {  # NAME CACHE-SETTINGS [POLICY]: one server, one load run; prints the phase's JSON
  local name=$1 cache=$2 policy=${3:-policy.toml}
  cat > "$name.toml" <<CONFIG
listen = "127.0.0.1:0"
tls_cert = "tls.pem"
tls_key = "tls.key"
policy = "$policy"
store = "store"
$cache
[limits]
# The idle connections must outlive the run to be held open (hyper closes an idle
# HTTP/1.1 connection after the header timeout: it is waiting for the next head).
header_timeout_ms = 30000
idle_timeout_ms = 600000
max_connections = 2048
CONFIG
  "$BENCH" serve "$name.toml" "$STORE_LATENCY_MS" > "$name.out" 2> "$name.log" &
  SERVER=$!
  for _ in $(seq 1 100); do grep -q '^listening' "$name.out" 2>/dev/null && break; sleep 0.1; done
  local port
  port=$(awk '/^listening/ {print $2}' "$name.out")
  [ -n "$port" ] || { echo "the $name server did not start" >&2; exit 1; }
  say "$name: $CONNECTIONS connections for ${SECONDS_PER_PHASE}s, $IDLE idle held, store latency ${STORE_LATENCY_MS} ms"
  local result
  result=$("$BENCH" load "$port" ca.pem "$MODEL" "$SECONDS_PER_PHASE" "$CONNECTIONS" "$IDLE")
  local rss
  rss=$(awk '/^VmHWM:/ {print $2}' "/proc/$SERVER/status")
  local threads
  threads=$(awk '/^Threads:/ {print $2}' "/proc/$SERVER/status")
  kill -INT "$SERVER"; wait "$SERVER" || true; SERVER=
  python3 - "$name" "$result" "$rss" "$threads" <<'PY'
import json, sys
name, result, rss, threads = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
result.update(phase=name, server_peak_rss_mib=round(rss / 1024, 1), server_threads=threads)
print(json.dumps(result))
PY
}

for _ in $(seq 1 "$REPS"); do
  phase cached "cache_entries = 1000
cache_ttl_seconds = 600"
  phase uncached "cache_entries = 0
cache_ttl_seconds = 0"
  phase uncached-2of3 "cache_entries = 0
cache_ttl_seconds = 0" policy-2of3.toml
done > "$W/results.jsonl"
python3 - "$W/results.jsonl" "$OUT" "$(nproc)" "$STORE_LATENCY_MS" <<'PY'
import json, platform, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(values):
    finite = [v for v in values if v != "inf"]
    return statistics.median(finite) if len(finite) == len(values) else "inf"
medians = {}
for phase in dict.fromkeys(r["phase"] for r in rows):
    runs = [r for r in rows if r["phase"] == phase]
    medians[phase] = {
        "runs": len(runs),
        "requests_per_second": med([r["requests_per_second"] for r in runs]),
        "server_ms_at_most": {q: med([r["server_ms_at_most"][q] for r in runs]) for q in ("p50", "p99", "p999")},
        "client_ms": {q: med([r["client_ms"][q] for r in runs]) for q in ("p50", "p99", "p999")},
        "failures_total": sum(r["failures"] for r in runs),
        "idle_still_answering_min": min(r["idle_connections_still_answering"] for r in runs),
        "idle_held": runs[0]["idle_connections_held"],
        "server_peak_rss_mib_max": max(r["server_peak_rss_mib"] for r in runs),
    }
doc = {"machine": {"cpus": int(sys.argv[3]), "kernel": platform.release()},
       "store_latency_ms": int(sys.argv[4]), "medians": medians, "runs": rows}
open(sys.argv[2], "w").write(json.dumps(doc, indent=2) + "\n")
for phase, m in medians.items():
    s, c = m["server_ms_at_most"], m["client_ms"]
    print(f"{phase:>8} (median of {m['runs']}): {m['requests_per_second']:8.0f} req/s  "
          f"server p50/p99/p99.9 <= {s['p50']}/{s['p99']}/{s['p999']} ms  "
          f"client p50/p99/p99.9 {c['p50']}/{c['p99']}/{c['p999']} ms  "
          f"failures {m['failures_total']}  idle answering {m['idle_still_answering_min']}/{m['idle_held']}  "
          f"peak RSS {m['server_peak_rss_mib_max']} MiB")
PY
say "written: $OUT"
