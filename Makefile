# Everyday targets. CI runs .ci/run, which does what `make check` does and
# installs its tools first.
.PHONY: build cluster test lint check bench proto

build:
	go build -o bin/circuit ./cmd/circuit

cluster:
	./scripts/cluster.sh

test:
	go test -race ./...

lint:
	test -z "$$(gofmt -l $$(git ls-files "*.go"))"
	go vet ./...
	staticcheck ./...

check: lint test

bench: build
	go run ./bench

proto:
	go generate ./internal/api
