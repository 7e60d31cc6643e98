#!/usr/bin/env bash
# Capture-to-publish latency of `sestream run` at a given load, as a subscriber sees it.
#
#   scripts/bench_latency.sh MODEL VIDEO STREAMS [SECONDS] [extra run flags...]
#
# Runs `bin/sestream run` on STREAMS looped copies of VIDEO paced at the video's own frame rate (realtime,
# as cameras deliver), publishing to its embedded NATS server on a free local port; after 10 s of warm-up
# `bin/sestream sub` reads the result messages for SECONDS (default 20), and this prints frames/s received
# and the p50, p90, p99 and maximum of each message's timings_ms.total (capture to encoding), plus the mean
# batch size and the median batch inference time. REALTIME=false reads the files as fast as the pipeline takes them instead (saturation: the
# frames/s the subscriber receives is the pipeline's throughput to NATS). SESTREAM_* variables reach the run
# (e.g. SESTREAM_BATCH_WHEN_IDLE=false). Build bin/sestream first (go build -o bin/sestream ./cmd/sestream).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $# -lt 3 ]]; then
	sed -n '2,12p' "$0" >&2
	exit 2
fi
model=$1 video=$2 streams=$3 seconds=${4:-20} realtime=${REALTIME:-true}
shift $(($# < 4 ? 3 : 4))
[[ -f $model ]] || { echo "bench_latency: model $model: no such file" >&2; exit 2; }
[[ -f $video ]] || { echo "bench_latency: video $video: no such file" >&2; exit 2; }
[[ $streams =~ ^[0-9]+$ && $streams -ge 1 ]] || { echo "bench_latency: STREAMS $streams: want a number >= 1" >&2; exit 2; }

dir=$(mktemp -d)
trap 'kill "$run" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
{
	echo "model: {path: $(realpath "$model")}"
	echo "log: {level: warn}"
	echo "streams:"
	for i in $(seq 1 "$streams"); do
		echo "  - {name: s$i, url: $(realpath "$video"), loop: true, realtime: $realtime}"
	done
} >"$dir/config.yaml"
bin/sestream run --config "$dir/config.yaml" --nats-listen "127.0.0.1:$port" --http "" "$@" >"$dir/run.log" 2>&1 &
run=$!
sleep 10
kill -0 "$run" 2>/dev/null || { cat "$dir/run.log" >&2; exit 1; }
timeout "$seconds" bin/sestream sub --nats "nats://127.0.0.1:$port" --kind result --json >"$dir/results.jsonl" || true
python3 - "$dir/results.jsonl" "$seconds" <<'EOF'
import json, sys
total, batch, infer = [], [], []
for line in open(sys.argv[1]):
    m = json.loads(line)
    total.append(m["timings_ms"]["total"])
    batch.append(m.get("batch", {}).get("size", 0))
    infer.append(m["timings_ms"]["inference"])
if not total:
    sys.exit("bench_latency: no result messages received")
total.sort()
infer.sort()
q = lambda p: total[min(len(total) - 1, int(p * len(total)))]
print(f"{len(total)} results in {sys.argv[2]} s: {len(total) / float(sys.argv[2]):.1f} frames/s; "
      f"capture to publish p50 {q(0.5):.2f} ms, p90 {q(0.9):.2f} ms, p99 {q(0.99):.2f} ms, max {total[-1]:.2f} ms; "
      f"mean batch {sum(batch) / len(batch):.2f}, batch inference p50 {infer[len(infer) // 2]:.2f} ms")
EOF
grep -E 'layout|ERROR' "$dir/run.log" | head -3 || true
