# Everyday targets. CI runs .ci/run, which does what `make check` does and
# installs its tools first.
.PHONY: build image cluster test lint check bench proto

# The version and commit baked into the binary (circuit version). Outside a
# git checkout both are empty, and the binary reports what the Go toolchain
# recorded instead ("devel" and "unknown" when it recorded nothing).
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null)
COMMIT := $(shell git rev-parse HEAD 2>/dev/null)
VERSION_PKG := github.com/circuit-project/circuit/internal/version
LDFLAGS := -X $(VERSION_PKG).Version=$(VERSION) -X $(VERSION_PKG).Commit=$(COMMIT)

# The Docker image that `make image` builds.
IMAGE ?= circuit:$(or $(VERSION),devel)

build:
	go build -ldflags "$(LDFLAGS)" -o bin/circuit ./cmd/circuit

# The image is FROM scratch and holds a static binary built here, on the
# host, so that building it needs no registry (see Dockerfile). bin/image is
# the part of the build context that .dockerignore lets through: the binary
# and an empty root file system with a /tmp (mode 1777) and the state
# directory.
image:
	rm -rf bin/image
	mkdir -p bin/image/rootfs/var/lib/circuit
	install -d -m 1777 bin/image/rootfs/tmp
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o bin/image/circuit ./cmd/circuit
	docker build -t $(IMAGE) .

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
