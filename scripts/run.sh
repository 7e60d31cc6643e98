#!/usr/bin/env bash
# Sets up what sestream needs (scripts/setup.sh --runtime), builds bin/sestream and runs it. With no
# arguments it runs the built-in demo: the bundled model on the bundled sample video, publishing to an
# embedded NATS server, printing a summary line every second. Arguments are passed to `sestream run`.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

bash scripts/setup.sh --runtime
echo "run: building bin/sestream (the first build compiles gocv: about a minute)"
go build -buildvcs=auto -o bin/sestream ./cmd/sestream
exec bin/sestream run "$@"
