package metrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCheckAddr(t *testing.T) {
	for _, c := range []struct {
		addr string
		want string // in the error; "" for none
	}{
		{"127.0.0.1:9100", ""},
		{":9100", ""},
		{"[::1]:0", ""},
		{"localhost:9100", ""},
		{"metrics-host.example:9100", ""},
		{"127.0.0.1", "want HOST:PORT"},
		{"", "want HOST:PORT"},
		{"127.0.0.1:", `port "" is not a number`},
		{"127.0.0.1:http", `port "http" is not a number`},
		{"127.0.0.1:65536", `port "65536" is not a number`},
		{"127.0.0.1:-1", `port "-1" is not a number`},
		{"a b:1", `host "a b" is neither`},
		{"host/x:1", `host "host/x" is neither`},
	} {
		err := CheckAddr(c.addr)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("CheckAddr(%q) = %v, want %q", c.addr, err, c.want)
		}
	}
}

// TestNilSet checks that metrics off does nothing: every hook is safe on
// a nil Set, and a stream's connection is not wrapped.
func TestNilSet(t *testing.T) {
	var s *Set
	if !s.Now().IsZero() {
		t.Error("a nil Set read the clock")
	}
	s.Operation("Proc.Make", time.Now(), errors.New("x"))
	s.Forwarded(ForwardRPC, true)
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if c := s.CountStream(a, "stdout"); c != a {
		t.Errorf("a nil Set wrapped the connection: %T", c)
	}
	if s.Registry() != nil {
		t.Error("a nil Set has a registry")
	}
	if _, err := Listen(context.Background(), "127.0.0.1:0", nil, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("Listen served a nil Set")
	}
	allocs := testing.AllocsPerRun(100, func() {
		start := s.Now()
		s.Operation("Proc.Make", start, nil)
		s.Forwarded(ForwardStream, false)
		_ = s.CountStream(a, "stdin")
	})
	if allocs != 0 {
		t.Errorf("the hooks of a nil Set allocate %v times", allocs)
	}
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() { // owned here: it ends with the one Accept
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	client, err = net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	server, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// TestEndpoint serves a Set on loopback, feeds its hooks, and reads the
// result over HTTP; then Close stops the endpoint.
func TestEndpoint(t *testing.T) {
	elements := map[string]int{"proc": 3, "chan": 1}
	s, err := New(Sources{
		Members:  func() (int, int, int) { return 4, 1, 2 },
		Elements: func() map[string]int { return elements },
	})
	if err != nil {
		t.Fatal(err)
	}
	ep, err := Listen(context.Background(), "127.0.0.1:0", s, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- ep.Serve() }() // owned here: ends with ep.Close below
	closed := false
	t.Cleanup(func() {
		if !closed {
			ep.Close()
			<-served
		}
	})

	start := s.Now()
	s.Operation("Proc.Make", start, nil)
	s.Operation("Proc.Make", start, nil)
	s.Operation("Proc.Make", start, errors.New("no such binary"))
	s.Operation("Chan.Recv", start, nil)
	s.Forwarded(ForwardRPC, true)
	s.Forwarded(ForwardStream, false)

	// Bytes through a real connection: 5 written by the server end, 3 read.
	cc, sc := tcpPair(t)
	counted := s.CountStream(sc, "stdout")
	odd := s.CountStream(sc, "no-such-stream")
	if _, err := counted.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(cc, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("read %q, %v", buf, err)
	}
	if _, err := cc.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(odd, buf[:3]); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+ep.Addr().String()+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("scrape: %s %v", resp.Status, err)
	}
	text := string(body)
	for _, line := range []string{
		`circuit_members{state="alive"} 4`,
		`circuit_members{state="suspect"} 1`,
		`circuit_members{state="failed"} 2`,
		`circuit_elements{kind="proc"} 3`,
		`circuit_elements{kind="chan"} 1`,
		`circuit_elements{kind="dns"} 0`,
		`circuit_operations_total{op="Proc.Make",result="ok"} 2`,
		`circuit_operations_total{op="Proc.Make",result="error"} 1`,
		`circuit_operations_total{op="Chan.Recv",result="ok"} 1`,
		`circuit_operation_duration_seconds_count{op="Proc.Make"} 3`,
		`circuit_forwarded_connections_total{kind="rpc",result="ok"} 1`,
		`circuit_forwarded_connections_total{kind="stream",result="error"} 1`,
		`circuit_forwarded_connections_total{kind="stream",result="ok"} 0`,
		`circuit_stream_bytes_total{direction="out",stream="stdout"} 5`,
		`circuit_stream_bytes_total{direction="in",stream="other"} 3`,
	} {
		if !strings.Contains(text, "\n"+line+"\n") {
			t.Errorf("no line %q in the scrape", line)
		}
	}
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_resident_memory_bytes"} {
		if !strings.Contains(text, "\n"+name+" ") {
			t.Errorf("no %s in the scrape", name)
		}
	}
	// The client library's own linter, on what circuit defines.
	problems, err := testutil.GatherAndLint(s.Registry(), "circuit_members", "circuit_elements",
		"circuit_operations_total", "circuit_operation_duration_seconds",
		"circuit_stream_bytes_total", "circuit_forwarded_connections_total")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	if n, err := testutil.GatherAndCount(s.Registry(), "circuit_stream_bytes_total"); err != nil || n != 4 {
		t.Errorf("circuit_stream_bytes_total has %d series (%v), want 4: a stream name not known becomes other", n, err)
	}
	if resp, err := http.Get("http://" + ep.Addr().String() + "/"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET /: %s, want 404", resp.Status)
		}
	}

	if err := ep.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve after Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after Close")
	}
	if c, err := net.DialTimeout("tcp", ep.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Error("the endpoint still accepts connections after Close")
	}
}

// TestListenTaken checks that a taken port is an error naming the address.
func TestListenTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s, err := New(Sources{})
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if _, err := Listen(context.Background(), addr, s, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "metrics "+addr) {
		t.Errorf("Listen on a taken port: %v, want an error naming metrics %s", err, addr)
	}
}
