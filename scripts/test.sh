#!/usr/bin/env bash
# Sets up what the tests need (scripts/setup.sh) and runs every check: gofmt, go vet, and the whole test suite
# with the race detector and gocv's Mat leak profile. Test fixtures (ffmpeg media, PyTorch exports, servers)
# are made by the tests themselves.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

bash scripts/setup.sh

echo "test: gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [[ -n $unformatted ]]; then
  echo "test: these files are not gofmt'ed:" >&2
  echo "$unformatted" >&2
  exit 1
fi

echo "test: go vet"
go vet -tags matprofile ./...

echo "test: go test -race"
go test -race -tags matprofile -count=1 -timeout 45m ./... "$@"
