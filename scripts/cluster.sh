#!/usr/bin/env bash
# Build circuit and run a local cluster of N servers (default 3) on loopback,
# in the foreground. Ctrl-C stops them all.
#
#   ./scripts/cluster.sh [N]
#
# It writes the first server's URL to .cluster/dial, so in another terminal:
#   export PATH=$PWD/bin:$PATH CIRCUIT=$PWD/.cluster/dial
#   circuit ls /
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-3}
case "$n" in ''|*[!0-9]*) echo "usage: $0 [NUMBER_OF_SERVERS]" >&2; exit 2;; esac

go build -o bin/circuit ./cmd/circuit
mkdir -p .cluster
pids=()
stop() {
	trap - INT TERM EXIT
	echo; echo "stopping ${#pids[@]} servers"
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	wait
}
trap stop INT TERM EXIT

url_of() { # wait up to 10 s for server $1's URL
	for _ in $(seq 100); do
		[ -s ".cluster/$1.url" ] && { head -n1 ".cluster/$1.url"; return; }
		sleep 0.1
	done
	echo "server $1 did not start; see .cluster/$1.log" >&2; exit 1
}

join=()
for i in $(seq 1 "$n"); do
	bin/circuit start -a 127.0.0.1:0 -var ".cluster/var$i" "${join[@]}" >".cluster/$i.url" 2>".cluster/$i.log" &
	pids+=($!)
	url=$(url_of "$i")
	echo "server $i: $url"
	if [ "$i" = 1 ]; then
		echo "$url" >.cluster/dial
		join=(-j "$url")
	fi
done
cat <<MSG

$n circuit servers are running (logs in .cluster/). In another terminal:

  export PATH=$PWD/bin:\$PATH CIRCUIT=$PWD/.cluster/dial
  circuit ls /

Press Ctrl-C to stop them.
MSG
wait
