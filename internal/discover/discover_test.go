package discover

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/circuit-project/circuit/internal/testsupport/testnet"
)

var (
	testKey  = []byte("0123456789abcdef0123456789abcdef")
	otherKey = []byte("fedcba9876543210fedcba9876543210")
	fuzzKey  = []byte("fuzz key")
)

const (
	testGroup = "228.8.8.8:7711"
	urlA      = "circuit://127.0.0.1:11022/4242/X0123456789abcdef"
	urlB      = "circuit://127.0.0.1:11023/4343/X00000000000000b2"
)

func mustEncode(t testing.TB, p packet, key []byte) []byte {
	t.Helper()
	b, err := encode(p, key)
	if err != nil {
		t.Fatalf("encode(%+v): %v", p, err)
	}
	return b
}

func TestCodec(t *testing.T) {
	ann := newPacket(typeAnnounce, urlA)
	qry := newPacket(typeQuery, "")
	tagged := mustEncode(t, ann, testKey)
	plain := mustEncode(t, ann, nil)
	flipped := bytes.Clone(tagged)
	flipped[headerLen+3] ^= 1 // a URL byte, under the tag

	cases := []struct {
		name    string
		b       []byte
		key     []byte
		want    packet
		wantErr string // substring; "" means success
	}{
		{"announce round trip", plain, nil, ann, ""},
		{"announce round trip with key", tagged, testKey, ann, ""},
		{"query round trip", mustEncode(t, qry, nil), nil, qry, ""},
		{"query round trip with key", mustEncode(t, qry, testKey), testKey, qry, ""},
		{"wrong key", tagged, otherKey, packet{}, "wrong authentication tag"},
		{"tampered", flipped, testKey, packet{}, "wrong authentication tag"},
		{"missing tag", plain, testKey, packet{}, "missing authentication tag"},
		{"tag when no key", tagged, nil, packet{}, "no key configured"},
		{"empty", nil, nil, packet{}, "truncated"},
		{"truncated header", plain[:headerLen-1], nil, packet{}, "truncated"},
		{"truncated URL", plain[:len(plain)-1], nil, packet{}, "length"},
		{"truncated tag", tagged[:len(tagged)-1], testKey, packet{}, "length"},
		{"trailing byte", append(bytes.Clone(plain), 0), nil, packet{}, "length"},
		{"oversized", append(bytes.Clone(tagged), make([]byte, maxPacket)...), testKey, packet{}, "length"},
		{"wrong magic", append([]byte("CIRX"), plain[4:]...), nil, packet{}, "magic"},
		{"wrong version", patch(plain, 4, 2), nil, packet{}, "version"},
		{"unknown type", patch(plain, 5, 9), nil, packet{}, "unknown packet type"},
		{"unknown flag", patch(plain, 6, 2), nil, packet{}, "flags"},
		{"query with URL", patch(plain, 5, byte(typeQuery)), nil, packet{}, "query carries a URL"},
		{"announce without URL", patch(mustEncode(t, qry, nil), 5, byte(typeAnnounce)), nil, packet{}, "malformed circuit URL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := decode(c.b, c.key)
			if c.wantErr == "" {
				if err != nil || got != c.want {
					t.Fatalf("decode = %+v, %v; want %+v", got, err, c.want)
				}
				return
			}
			if err == nil || !errors.Is(err, errBadPacket) || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("decode error = %v; want errBadPacket containing %q", err, c.wantErr)
			}
		})
	}
}

func patch(b []byte, i int, v byte) []byte {
	b = bytes.Clone(b)
	b[i] = v
	return b
}

func TestEncodeRejects(t *testing.T) {
	long := "circuit://" + strings.Repeat("h", 240) + ":1/1/X0123456789abcdef"
	for _, p := range []packet{
		{Type: typeAnnounce, URL: long},
		{Type: typeAnnounce, URL: ""},
		{Type: typeAnnounce, URL: " " + urlA},
		{Type: typeAnnounce, URL: "http://x:1/2/X0123456789abcdef"},
		{Type: typeQuery, URL: urlA},
		{Type: 7},
	} {
		if b, err := encode(p, nil); err == nil {
			t.Errorf("encode(%q, %v) = %x, want error", p.URL, p.Type, b)
		}
	}
	// The largest URL fits, and the packet stays within maxPacket.
	max := "circuit://" + strings.Repeat("h", maxURLLen-len("circuit://:1/1/X0123456789abcdef")) + ":1/1/X0123456789abcdef"
	b, err := encode(newPacket(typeAnnounce, max), testKey)
	if err != nil || len(b) != maxPacket {
		t.Fatalf("encode of a %d-byte URL = %d bytes, %v; want %d bytes", len(max), len(b), err, maxPacket)
	}
	if a, b := newPacket(typeQuery, ""), newPacket(typeQuery, ""); a.Nonce == b.Nonce {
		t.Errorf("two packets share nonce %x", a.Nonce)
	}
}

func TestParseGroup(t *testing.T) {
	if g, err := ParseGroup(testGroup); err != nil || g.String() != testGroup {
		t.Fatalf("ParseGroup(%q) = %v, %v", testGroup, g, err)
	}
	for in, want := range map[string]string{
		"10.0.0.1:7711":  "discover: 10.0.0.1:7711 is not a multicast address",
		"228.8.8.8":      `discover: group "228.8.8.8": want IPv4 multicast address and port`,
		"[ff02::1]:7711": "discover: [ff02::1]:7711 is not an IPv4 address",
		"example:7711":   "discover: example:7711 is not an IPv4 address",
		"228.8.8.8:0":    `discover: 228.8.8.8:0: bad port "0"`,
		"228.8.8.8:x":    `discover: 228.8.8.8:x: bad port "x"`,
	} {
		if _, err := ParseGroup(in); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("ParseGroup(%q) error = %v; want prefix %q", in, err, want)
		}
	}
}

// Bad configurations fail before any socket is opened.
func TestServeFindRejectConfig(t *testing.T) {
	ctx := context.Background()
	if _, err := Serve(ctx, Config{Group: "10.0.0.1:7711"}, urlA, nil); err == nil {
		t.Error("Serve with a unicast group succeeded")
	}
	if _, err := Serve(ctx, Config{Group: testGroup}, "not a url", nil); err == nil {
		t.Error("Serve with a bad self URL succeeded")
	}
	if _, err := Serve(ctx, Config{Group: testGroup, TTL: 256}, urlA, nil); err == nil {
		t.Error("Serve with TTL 256 succeeded")
	}
	if _, err := Find(ctx, Config{Group: "228.8.8.8:99999"}); err == nil {
		t.Error("Find with a bad port succeeded")
	}
}

func FuzzDecode(f *testing.F) {
	for _, key := range [][]byte{nil, fuzzKey} {
		f.Add(mustEncode(f, newPacket(typeAnnounce, urlA), key))
		f.Add(mustEncode(f, newPacket(typeQuery, ""), key))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, key := range [][]byte{nil, fuzzKey} {
			p, err := decode(b, key)
			if err != nil {
				continue
			}
			again, err := encode(p, key)
			if err != nil {
				t.Fatalf("decoded %+v does not encode: %v", p, err)
			}
			if !bytes.Equal(again, b) {
				t.Fatalf("decode then encode changed %x into %x", b, again)
			}
		}
	})
}

// Integration tests. Each runs a scenario in a child process (this test
// binary, re-executed under "ip netns exec") inside a fresh network namespace
// whose only interface is lo, so no packet reaches a real network.

const helperEnv = "CIRCUIT_DISCOVER_HELPER"

func TestMain(m *testing.M) {
	if name := os.Getenv(helperEnv); name != "" {
		os.Exit(runHelper(name))
	}
	os.Exit(m.Run())
}

func TestNetnsPair(t *testing.T)     { inNetns(t, "pair") }
func TestNetnsFind(t *testing.T)     { inNetns(t, "find") }
func TestNetnsKey(t *testing.T)      { inNetns(t, "key") }
func TestNetnsNoServer(t *testing.T) { inNetns(t, "none") }

var scenarios = map[string]func(context.Context, *slog.Logger) error{
	"pair": scenarioPair,
	"find": scenarioFind,
	"key":  scenarioKey,
	"none": scenarioNone,
}

// inNetns creates a network namespace, runs the named scenario in it and
// deletes the namespace.
func inNetns(t *testing.T, scenario string) {
	t.Parallel()
	ns := testnet.Netns(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("finding the test binary: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := testnet.Command(ctx, ns, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+scenario)
	out, err := cmd.CombinedOutput()
	t.Logf("scenario %s in namespace %s:\n%s", scenario, ns, out)
	if err != nil {
		t.Fatalf("scenario %s failed: %v", scenario, err)
	}
}

// runHelper runs a scenario in this (child) process and returns its exit
// code. It refuses to run unless lo is the only interface.
func runHelper(name string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	run, ok := scenarios[name]
	if !ok {
		log.Error("unknown scenario", "name", name)
		return 2
	}
	ifs, err := net.Interfaces()
	if err != nil {
		log.Error("listing interfaces", "err", err)
		return 2
	}
	for _, ifi := range ifs {
		if ifi.Flags&net.FlagLoopback == 0 {
			log.Error("refusing to run outside a private network namespace", "interface", ifi.Name)
			return 2
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, log); err != nil {
		log.Error("scenario failed", "name", name, "err", err)
		return 1
	}
	log.Info("scenario passed", "name", name)
	return 0
}

func config(log *slog.Logger, key []byte) Config {
	return Config{Group: testGroup, LocalIP: net.IPv4(127, 0, 0, 1), Key: key, Logger: log}
}

// recorder collects the URLs a node reports.
type recorder struct {
	mu   sync.Mutex
	urls map[string]int
}

func (r *recorder) found(url string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.urls == nil {
		r.urls = make(map[string]int)
	}
	r.urls[url]++
}

func (r *recorder) count(url string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.urls[url]
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprint(r.urls)
}

// waitFor polls cond until it holds or d has passed.
func waitFor(ctx context.Context, d time.Duration, what string, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting %v for %s: %w", d, what, ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

// serve starts a node and returns it with its recorder.
func serve(ctx context.Context, cfg Config, self string) (*Node, *recorder, error) {
	r := new(recorder)
	n, err := Serve(ctx, cfg, self, r.found)
	return n, r, err
}

func closeAll(nodes ...*Node) error {
	var errs []error
	for _, n := range nodes {
		errs = append(errs, n.Close(), n.Close()) // Close is idempotent
	}
	return errors.Join(errs...)
}

func scenarioPair(ctx context.Context, log *slog.Logger) error {
	a, ra, err := serve(ctx, config(log.With("node", "A"), nil), urlA)
	if err != nil {
		return err
	}
	b, rb, err := serve(ctx, config(log.With("node", "B"), nil), urlB)
	if err != nil {
		a.Close()
		return err
	}
	err = errors.Join(
		waitFor(ctx, 5*time.Second, "A to find B", func() bool { return ra.count(urlB) > 0 }),
		waitFor(ctx, 5*time.Second, "B to find A", func() bool { return rb.count(urlA) > 0 }),
	)
	if ra.count(urlA) != 0 || rb.count(urlB) != 0 {
		err = errors.Join(err, fmt.Errorf("a node found itself: A found %v, B found %v", ra, rb))
	}
	return errors.Join(err, closeAll(a, b))
}

func scenarioFind(ctx context.Context, log *slog.Logger) error {
	a, _, err := serve(ctx, config(log.With("node", "A"), nil), urlA)
	if err != nil {
		return err
	}
	defer a.Close()
	for _, cfg := range []Config{
		config(log.With("find", "lo"), nil),
		{Group: testGroup, Logger: log.With("find", "default")}, // system default interface
	} {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		url, err := Find(fctx, cfg)
		cancel()
		if err != nil || url != urlA {
			return fmt.Errorf("Find = %q, %v; want %q", url, err, urlA)
		}
	}
	return a.Close()
}

func scenarioKey(ctx context.Context, log *slog.Logger) error {
	a, ra, err := serve(ctx, config(log.With("node", "A"), testKey), urlA)
	if err != nil {
		return err
	}
	defer a.Close()
	b, rb, err := serve(ctx, config(log.With("node", "B"), otherKey), urlB)
	if err != nil {
		return err
	}
	defer b.Close()
	// A rejects B's first announcement, B rejects A's second.
	if err := errors.Join(
		waitFor(ctx, 5*time.Second, "A to reject B", func() bool { return a.rejected.Load() > 0 }),
		waitFor(ctx, 5*time.Second, "B to reject A", func() bool { return b.rejected.Load() > 0 }),
	); err != nil {
		return err
	}
	if ra.count(urlB) != 0 || rb.count(urlA) != 0 {
		return fmt.Errorf("nodes with different keys found each other: A found %v, B found %v", ra, rb)
	}
	for key, want := range map[string]string{string(testKey): urlA, string(otherKey): urlB} {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		url, err := Find(fctx, config(log, []byte(key)))
		cancel()
		if err != nil || url != want {
			return fmt.Errorf("Find with key %q = %q, %v; want %q", key, url, err, want)
		}
	}
	for _, key := range [][]byte{[]byte("wrong"), nil} {
		if err := findNothing(ctx, config(log, key), time.Second, "1s"); err != nil {
			return fmt.Errorf("with key %q: %w", key, err)
		}
	}
	return nil
}

func scenarioNone(ctx context.Context, log *slog.Logger) error {
	canceled := make(chan error, 1)
	go func() {
		cctx, cancel := context.WithCancel(ctx)
		stop := time.AfterFunc(100*time.Millisecond, cancel)
		defer stop.Stop()
		_, err := Find(cctx, config(log, nil))
		if !errors.Is(err, context.Canceled) {
			err = fmt.Errorf("Find with a canceled context: %v, want context.Canceled", err)
		} else {
			err = nil
		}
		canceled <- err
	}()
	return errors.Join(
		findNothing(ctx, config(log, nil), time.Second, "1s"),
		findNothing(ctx, config(log, nil), 0, "3s"), // no deadline: 3s default
		<-canceled,
	)
}

// findNothing runs Find with timeout d (0: none) and checks that it times out
// after about d with a clear error.
func findNothing(ctx context.Context, cfg Config, d time.Duration, within string) error {
	if d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	} else {
		ctx = context.WithoutCancel(ctx) // drops the deadline too
	}
	start := time.Now()
	url, err := Find(ctx, cfg)
	took := time.Since(start)
	want := "no circuit server answered on multicast " + testGroup + " within " + within + " (interface lo)"
	if err == nil || !errors.Is(err, ErrNoAnswer) || err.Error() != want {
		return fmt.Errorf("Find = %q, %v; want error %q", url, err, want)
	}
	if lim, _ := time.ParseDuration(within); took < lim-50*time.Millisecond || took > lim+2*time.Second {
		return fmt.Errorf("Find gave up after %v, want about %v", took, lim)
	}
	return nil
}
