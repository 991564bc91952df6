# A circuit server in an image with nothing but the circuit binary.
#
#   make image                      # builds bin/image/circuit, then this image
#   docker network create circuit
#   circuit keygen > key
#   docker run -d --init --network circuit -v $PWD/key:/key:ro -e CIRCUIT_HMAC=/key -e CIRCUIT_DISCOVER=228.8.8.8:7711 circuit:TAG
#
# No registry is needed: instead of a multi-stage build from a Go image, the
# binary is built on the host, static (CGO_ENABLED=0), by `make image`:
#
#   CGO_ENABLED=0 go build -trimpath -ldflags "-X ..." -o bin/image/circuit ./cmd/circuit
#
# and bin/image/rootfs supplies the directories a scratch image lacks.
FROM scratch

# /tmp (mode 1777): without -var, a server keeps the binaries uploaded for
# circuit.Spawn in a temporary directory, and processes expect one.
# /var/lib/circuit: the server's state (-var): its lock, circuit.log and the
# uploaded binaries. Mount a volume there to keep them across containers.
COPY bin/image/rootfs/ /
COPY bin/image/circuit /circuit

# A server listens on one port, TCP for the API and gossip streams, UDP for
# gossip; discovery (CIRCUIT_DISCOVER) sends and receives UDP multicast on
# its own port, which stays inside the Docker network.
EXPOSE 11022/tcp 11022/udp

# The container's address on its network is the address of eth0; that is
# the one the server must advertise to the other containers. Pass
# CIRCUIT_DISCOVER and CIRCUIT_HMAC (with the key file mounted) with -e, or
# replace the command: docker run IMAGE start -if eth0 -j URL.
# Run it with --init when processes it starts may leave orphans: the server
# is PID 1 and waits only for its own children.
# A server of this image refuses to start without a key: mount one
# (circuit keygen > key) and give its path in CIRCUIT_HMAC.
ENV CIRCUIT_REQUIRE_KEY=1
ENTRYPOINT ["/circuit"]
CMD ["start", "-if", "eth0", "-var", "/var/lib/circuit"]
