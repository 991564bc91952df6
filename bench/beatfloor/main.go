// Command beatfloor is the floor of the scale benchmark's idle CPU: the
// least a server can do and still see a lost host as circuit's watches do
// (internal/cluster/watch.go). It listens, prints its address, reads one
// line of comma-separated addresses from standard input, dials each, and
// then, on one ticker, writes one byte on every connection it accepted and
// reads TCP_INFO on every connection it dialled. Nothing else: no
// membership, no gossip, no requests.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	every := flag.Duration("beat", 500*time.Millisecond, "how often to beat")
	flag.Parse()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	fmt.Println(ln.Addr())

	var mu sync.Mutex
	var accepted []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepted = append(accepted, c)
			mu.Unlock()
		}
	}()

	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil {
		fail(fmt.Errorf("reading the peers: %w", err))
	}
	var dialled []*net.TCPConn
	for _, addr := range strings.Split(strings.TrimSpace(line), ",") {
		if addr == "" {
			continue
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			fail(err)
		}
		dialled = append(dialled, c.(*net.TCPConn))
	}

	beat := []byte{0}
	t := time.NewTicker(*every)
	for range t.C {
		mu.Lock()
		for _, c := range accepted {
			c.Write(beat)
		}
		mu.Unlock()
		for _, c := range dialled {
			rc, err := c.SyscallConn()
			if err != nil {
				continue
			}
			rc.Control(func(fd uintptr) { unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) })
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "beatfloor:", err)
	os.Exit(1)
}
