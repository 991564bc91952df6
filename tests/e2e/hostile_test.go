package e2e

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/ident"
	"github.com/circuit-project/circuit/internal/testsupport/testcluster"
	"github.com/circuit-project/circuit/internal/wire"
)

// rssKiB is rss, failing the test on error.
func rssKiB(t *testing.T, pid int) int {
	t.Helper()
	kib, err := rss(pid)
	if err != nil {
		t.Fatalf("resident memory of pid %d: %v", pid, err)
	}
	return kib
}

// openStream opens a stream connection by hand, as a hostile client may.
func openStream(t *testing.T, srv *testcluster.Proc, h wire.StreamHeader) (net.Conn, error) {
	t.Helper()
	u, err := ident.ParseURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := wire.Dial(ctx, srv.Addr, wire.KindStream, u.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if err := wire.WriteStreamHeader(conn, h); err != nil {
		conn.Close()
		return nil, err
	}
	if err := wire.ReadStatus(conn); err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	return conn, nil
}

// TestSerialStaysWithItsAnchor: the output of a process removed by Scrub is
// kept for its creator, found by anchor and serial. Serials are counted, so
// naming another anchor with a guessed serial must not reach it.
func TestSerialStaysWithItsAnchor(t *testing.T) {
	cl := testcluster.Start(t, 1, testcluster.Options{})
	srv := cl.Servers[0]
	secret := "/" + srv.ID + "/a/secret"
	if r := cl.RunVia(srv, `{"Path": "/bin/echo", "Args": ["the secret"], "Scrub": true}`, "mkproc", secret); r.Code != 0 {
		t.Fatalf("mkproc: %+v", r)
	}
	const serial = 1 // the server's first process
	for _, other := range []string{"/" + srv.ID + "/a/other", "/" + srv.ID + "/b", "/" + srv.ID} {
		if c, err := openStream(t, srv, wire.StreamHeader{Path: other, Stream: "stdout", Serial: serial}); err == nil {
			b, _ := io.ReadAll(c)
			c.Close()
			t.Fatalf("serial %d at %s reached %s's output: %q", serial, other, secret, b)
		} else if !strings.Contains(err.Error(), other) {
			t.Errorf("refusal for %s does not name it: %v", other, err)
		}
	}
	c, err := openStream(t, srv, wire.StreamHeader{Path: secret, Stream: "stdout", Serial: serial})
	if err != nil {
		t.Fatalf("the creator's own anchor and serial: %v", err)
	}
	defer c.Close()
	if b, _ := io.ReadAll(c); string(b) != "the secret\n" {
		t.Fatalf("stdout of %s: %q", secret, b)
	}
}

// TestTruncatedAndOversized sends cut-off frames and oversized messages; each
// is refused or dropped, with an error that says what was wrong, and the
// server goes on serving.
func TestTruncatedAndOversized(t *testing.T) {
	cl := testcluster.Start(t, 1, testcluster.Options{})
	srv := cl.Servers[0]
	u, _ := ident.ParseURL(srv.URL)
	dial := func() net.Conn {
		c, err := net.Dial("tcp", srv.Addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		return c
	}
	// greeted dials and reads the server's greeting; full is a whole
	// preamble answering it.
	greeted := func(kind wire.Kind) (net.Conn, []byte) {
		c := dial()
		g, err := wire.ReadGreeting(c)
		if err != nil {
			t.Fatalf("greeting: %v", err)
		}
		return c, wire.NewPreamble(kind, u.ID, 0, g, nil).Bytes()
	}
	// A preamble cut short, at every length.
	for n := 1; n < wire.PreambleLen; n += 7 {
		c, full := greeted(wire.KindStream)
		c.Write(full[:n])
		c.Close()
	}
	// A whole preamble, then a stream header that claims more than it sends.
	c, full := greeted(wire.KindStream)
	c.Write(full)
	wire.ReadStatus(c)
	var hdr [2]byte
	binary.BigEndian.PutUint16(hdr[:], 200)
	c.Write(append(hdr[:], `{"Path":"/`...))
	c.Close()
	// A stream header larger than any allowed: refused, saying so.
	c, full = greeted(wire.KindStream)
	c.Write(full)
	if err := wire.ReadStatus(c); err != nil {
		t.Fatalf("preamble refused: %v", err)
	}
	binary.BigEndian.PutUint16(hdr[:], 65535)
	c.Write(hdr[:])
	if err := wire.ReadStatus(c); err == nil || !strings.Contains(err.Error(), "stream header of 65535 bytes") {
		t.Errorf("a 64 KiB stream header: %v", err)
	}
	c.Close()
	// Run streams whose first frame is not a command: each refused,
	// naming what a run stream starts with.
	for _, first := range [][]byte{
		nil, // none at all, then the end
		wire.AppendFrame(nil, wire.FrameStdin, []byte("x")),
		wire.AppendFrame(nil, wire.FrameSpec, []byte(`{"Path":`)),
		wire.AppendFrame(nil, wire.FrameSpec, []byte(`{}`)),
		{wire.FrameSpec, 0x7f, 0xff, 0xff, 0xff},
	} {
		c, full := greeted(wire.KindStream)
		c.Write(full)
		if err := wire.ReadStatus(c); err != nil {
			t.Fatalf("preamble refused: %v", err)
		}
		wire.WriteStreamHeader(c, wire.StreamHeader{Path: "/" + u.ID.String() + "/r", Stream: "run"}, first)
		if first == nil {
			c.(*net.TCPConn).CloseWrite()
		}
		if err := wire.ReadStatus(c); err == nil || !strings.Contains(err.Error(), "a run stream starts with its command") {
			t.Errorf("run stream starting with %q: %v", first, err)
		}
		c.Close()
	}
	// An RPC connection cut off in the middle of HTTP/2's preface.
	c, full = greeted(wire.KindRPC)
	c.Write(full)
	wire.ReadStatus(c)
	c.Write([]byte("PRI * HTTP/2.0\r\n"))
	c.Close()
	// A command description over the CLI's limit.
	huge := strings.Repeat("x", 8<<20)
	r := cl.RunVia(srv, `{"Path": "/bin/echo", "Args": ["`+huge+`"]}`, "mkproc", "/"+srv.ID+"/huge")
	if r.Code != 2 || !strings.Contains(r.Stderr, "longer than 1048576 bytes") {
		t.Errorf("an 8 MiB command through the CLI: exit %d, stderr %.300q", r.Code, r.Stderr)
	}
	// A request over the server's message limit, through the library.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := cl.Client(srv).MakeProcAt(ctx, "/"+srv.ID+"/huge", client.Cmd{Path: "/bin/echo", Args: []string{huge}})
	if !errors.Is(err, client.ErrRemote) || !strings.Contains(err.Error(), "larger than max") {
		t.Errorf("an 8 MiB command through the library: %v", err)
	}
	if r := cl.Run("ls", "/"+srv.ID+"/..."); r.Code != 0 || r.Stdout != "" {
		t.Fatalf("after truncated and oversized input, ls: %+v", r)
	}
}

// TestSlowReaders opens the output of processes that write without end, and
// never reads it: the server's memory must stay bounded, and it must go on
// serving.
func TestSlowReaders(t *testing.T) {
	cl := testcluster.Start(t, 1, testcluster.Options{})
	srv := cl.Servers[0]
	before := rssKiB(t, srv.Cmd.Process.Pid)
	const n = 20
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range n {
		p := fmt.Sprintf("/%s/yes/%d", srv.ID, i)
		if r := cl.RunVia(srv, `{"Path": "/usr/bin/yes", "Args": ["0123456789abcdef"]}`, "mkproc", p); r.Code != 0 {
			t.Fatalf("mkproc: %+v", r)
		}
		for _, s := range []string{"stdout", "stderr"} {
			c, err := openStream(t, srv, wire.StreamHeader{Path: p, Stream: s})
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c) // and never read
		}
	}
	// Watch the server's memory for two seconds while the writers push.
	peak := before
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		peak = max(peak, rssKiB(t, srv.Cmd.Process.Pid))
	}
	t.Logf("FIGURE %d never-read output streams: server RSS %d KiB before, peak %d KiB", 2*n, before, peak)
	if grow := peak - before; grow > 64<<10 {
		t.Errorf("the server grew by %d KiB with %d unread streams", grow, 2*n)
	}
	if r := cl.Run("ls", "/"+srv.ID+"/yes"); r.Code != 0 || len(testcluster.Lines(r.Stdout)) != n {
		t.Fatalf("ls with slow readers: %+v", r)
	}
	for i := range n {
		if r := cl.Run("scrub", fmt.Sprintf("/%s/yes/%d", srv.ID, i)); r.Code != 0 {
			t.Fatalf("scrub: %+v", r)
		}
	}
}

// TestHostileCLI sends invalid paths, JSON, resource records and signals
// through the CLI. Each must fail with a usage or request error that names
// what was wrong, and leave the server and its elements as they were.
func TestHostileCLI(t *testing.T) {
	cl := testcluster.Start(t, 1, testcluster.Options{})
	srv := cl.Servers[0]
	x := "/" + srv.ID
	if r := cl.RunVia(srv, `{"Path": "/bin/sleep", "Args": ["600"]}`, "mkproc", x+"/p"); r.Code != 0 {
		t.Fatalf("mkproc: %+v", r)
	}
	if r := cl.Run("mkdns", x+"/dns", "127.0.0.1:0"); r.Code != 0 {
		t.Fatalf("mkdns: %+v", r)
	}
	if r := cl.Run("mkchan", x+"/ch", "1"); r.Code != 0 {
		t.Fatalf("mkchan: %+v", r)
	}
	before := cl.Run("ls", x+"/...").Stdout
	cases := []struct {
		name, stdin string
		args        []string
		says        string
	}{
		{"dot-dot path", "", []string{"peek", x + "/../p"}, ".."},
		{"dot path", "", []string{"peek", x + "/./p"}, "."},
		{"relative path", "", []string{"peek", "p"}, "p"},
		{"empty element", "", []string{"peek", x + "//p"}, "empty"},
		{"bad server ID", "", []string{"peek", "/Xnothex/p"}, "Xnothex"},
		{"unknown server", "", []string{"peek", "/X0123456789abcdef/p"}, "X0123456789abcdef"},
		{"newline in a path", "", []string{"mkchan", x + "/a\nb", "1"}, "a\nb"},
		{"mkproc on the root", `{"Path": "/bin/true"}`, []string{"mkproc", "/"}, "/"},
		{"JSON cut short", `{"Path": "/bin/true"`, []string{"mkproc", x + "/q"}, "JSON"},
		{"JSON unknown field", `{"Path": "/bin/true", "Uid": 0}`, []string{"mkproc", x + "/q"}, "Uid"},
		{"JSON wrong type", `{"Path": ["/bin/true"]}`, []string{"mkproc", x + "/q"}, "Path"},
		{"JSON two documents", `{"Path": "/bin/true"} {"Path": "/bin/false"}`, []string{"mkproc", x + "/q"}, "JSON"},
		{"JSON no path", `{"Args": ["x"]}`, []string{"mkproc", x + "/q"}, "Path"},
		{"occupied anchor", `{"Path": "/bin/true"}`, []string{"mkproc", x + "/p"}, x + "/p"},
		{"bad record", "", []string{"set", x + "/dns", "a.example. IN A 999.1.1.1"}, "999.1.1.1"},
		{"bad record type", "", []string{"set", x + "/dns", "a.example. IN NOSUCH 1"}, "NOSUCH"},
		{"record on a channel", "", []string{"set", x + "/ch", "a.example. IN A 1.2.3.4"}, "chan"},
		{"unknown signal", "", []string{"signal", "NOSUCH", x + "/p"}, "NOSUCH"},
		{"signal number out of range", "", []string{"signal", "99999", x + "/p"}, "99999"},
		{"signal to a channel", "", []string{"signal", "TERM", x + "/ch"}, "chan"},
		{"negative capacity", "", []string{"mkchan", x + "/c2", "-1"}, "-1"},
		{"stdin of a channel", "hi", []string{"stdin", x + "/ch"}, "chan"},
		{"dirs on a non-worker anchor", `{"Path": "/bin/true", "Dirs": ["/jobs"]}`, []string{"mkproc", x + "/q"}, "worker ID"},
		{"dirs with dot-dot", `{"Path": "/bin/true", "Dirs": ["/jobs/../x"]}`, []string{"mkproc", x + "/R0123456789abcdef"}, ".."},
		{"dirs of a server", `{"Path": "/bin/true", "Dirs": ["` + x + `/jobs"]}`, []string{"mkproc", x + "/R0123456789abcdef"}, "reserved for server IDs"},
		{"dirs at the root", `{"Path": "/bin/true", "Dirs": ["/"]}`, []string{"mkproc", x + "/R0123456789abcdef"}, "not in / itself"},
		{"kill without a path", "", []string{"kill"}, "kill takes"},
		{"kill of a server path", "", []string{"kill", x + "/p"}, "anchor file system"},
		{"kill of the root", "", []string{"kill", "/..."}, "not /..."},
		{"kill of nothing", "", []string{"kill", "/nothing/..."}, "no worker"},
		{"ls of a missing directory", "", []string{"ls", "/nothing"}, "no such anchor directory"},
		{"ls of a worker ID at the root", "", []string{"ls", "/R0123456789abcdef"}, "inside a directory"},
	}
	for _, tc := range cases {
		r := cl.RunVia(srv, tc.stdin, tc.args...)
		if r.Code == 0 || !strings.Contains(r.Stderr, tc.says) {
			t.Errorf("%s: circuit %q: exit %d, stderr %q; want a failure naming %q", tc.name, tc.args, r.Code, r.Stderr, tc.says)
		}
		if strings.Contains(r.Stderr, "panic") {
			t.Errorf("%s: %s", tc.name, r.Stderr)
		}
	}
	if after := cl.Run("ls", x+"/...").Stdout; after != before {
		t.Fatalf("the elements changed:\nbefore %q\nafter  %q", before, after)
	}
	if r := cl.Run("peek", x+"/p"); r.Code != 0 || !strings.Contains(r.Stdout, "running") {
		t.Fatalf("the process after hostile input: %+v", r)
	}
}
