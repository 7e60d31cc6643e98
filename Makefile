# Make targets are thin wrappers around scripts/, which work without make too.
.PHONY: setup build run test bench lint

setup:
	bash scripts/setup.sh

build:
	go build -buildvcs=auto -o bin/sestream ./cmd/sestream

run:
	bash scripts/run.sh

test:
	bash scripts/test.sh

bench:
	go test -run '^$$' -bench . -benchmem ./pipeline/ ./se/

lint:
	gofmt -l $$(git ls-files '*.go')
	go vet ./...
