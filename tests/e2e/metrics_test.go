package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/circuit-project/circuit/internal/testsupport"
	"github.com/circuit-project/circuit/internal/testsupport/testcluster"
)

// metricsAddrRE finds the metrics endpoint's address in a server's log.
var metricsAddrRE = regexp.MustCompile(`msg="serving metrics" .*addr=(\S+)`)

// metricsAddr is where server p serves its metrics, from its log (the
// line is logged before the server prints its URL).
func metricsAddr(t *testing.T, p *testcluster.Proc) string {
	t.Helper()
	m := metricsAddrRE.FindStringSubmatch(p.Stderr())
	if m == nil {
		t.Fatalf("server %s logged no metrics address:\n%s", p.ID, p.Stderr())
	}
	return m[1]
}

// scrape fetches /metrics at addr: the text, and the families parsed.
func scrape(t *testing.T, addr string) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scraping %s: %v", addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scraping %s: %s %v\n%s", addr, resp.Status, err, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("scraping %s: content type %q, want the text format", addr, ct)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parsing the metrics of %s: %v\n%s", addr, err, body)
	}
	return string(body), fams
}

// value is the value of the series of family name whose labels include
// every pair of want; -1 if there is none.
func value(fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
	f, ok := fams[name]
	if !ok {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(want); i += 2 {
			if have[want[i]] != want[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return -1
}

// promtoolCheck runs `promtool check metrics` on text. Without promtool
// the check is skipped, unless $CI is true.
func promtoolCheck(t *testing.T, text string) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("promtool is not installed (Debian package prometheus): %v", err)
		}
		t.Log("promtool is not installed (Debian package prometheus): not checking the metrics with it")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestMetrics starts two servers with -metrics, works them, and reads
// their metrics over HTTP: members, elements, operations that succeeded
// and failed, stream bytes, relayed connections, and a member crashing.
func TestMetrics(t *testing.T) {
	cl := testcluster.Start(t, 2, testcluster.Options{Local: true, Args: []string{"-metrics", "127.0.0.1:0"}})
	s0, s1 := cl.Servers[0], cl.Servers[1]
	addr0, addr1 := metricsAddr(t, s0), metricsAddr(t, s1)

	text, fams := scrape(t, addr1)
	promtoolCheck(t, text)
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_resident_memory_bytes"} {
		if value(fams, name) <= 0 {
			t.Errorf("%s: %v, want a positive value", name, value(fams, name))
		}
	}

	// A process on server 1, made through server 0 (so that server 0
	// relays the RPC connection), and its output read.
	proc := "/" + s1.ID + "/metrics/echo"
	if r := cl.RunVia(s0, `{"Path": "/bin/echo", "Args": ["hello, metrics"]}`, "mkproc", proc); r.Code != 0 {
		t.Fatalf("mkproc: %+v", r)
	}
	if r := cl.RunVia(s0, "", "stdout", proc); r.Code != 0 || r.Stdout != "hello, metrics\n" {
		t.Fatalf("stdout: %+v", r)
	}
	// An operation that fails on server 1: a binary that does not exist.
	if r := cl.RunVia(s0, `{"Path": "/nonexistent/binary"}`, "mkproc", "/"+s1.ID+"/metrics/bad"); r.Code == 0 {
		t.Fatalf("mkproc of a missing binary succeeded: %+v", r)
	}

	text, fams = scrape(t, addr1)
	promtoolCheck(t, text)
	for _, c := range []struct {
		name   string
		labels []string
		min    float64 // at least
		max    float64 // at most; 0 for exactly min
	}{
		{"circuit_members", []string{"state", "alive"}, 2, 0},
		{"circuit_members", []string{"state", "suspect"}, 0, 0},
		{"circuit_members", []string{"state", "failed"}, 0, 0},
		{"circuit_elements", []string{"kind", "proc"}, 1, 0},
		{"circuit_elements", []string{"kind", "chan"}, 0, 0},
		{"circuit_operations_total", []string{"op", "Proc.Make", "result", "ok"}, 1, 0},
		{"circuit_operations_total", []string{"op", "Proc.Make", "result", "error"}, 1, 0},
		{"circuit_operation_duration_seconds", []string{"op", "Proc.Make"}, 2, 0},
		// The output, and the stream's status answer (one byte for OK).
		{"circuit_stream_bytes_total", []string{"direction", "out", "stream", "stdout"}, float64(len("hello, metrics\n")), float64(len("hello, metrics\n") + 8)},
	} {
		v := value(fams, c.name, c.labels...)
		if max := max(c.max, c.min); v < c.min || v > max {
			t.Errorf("server 1: %s%v = %v, want %v to %v", c.name, c.labels, v, c.min, max)
		}
	}

	text, fams = scrape(t, addr0)
	promtoolCheck(t, text)
	if v := value(fams, "circuit_forwarded_connections_total", "kind", "rpc", "result", "ok"); v < 1 {
		t.Errorf("server 0 relayed the RPC connection to server 1, but circuit_forwarded_connections_total{kind=rpc,result=ok} = %v", v)
	}
	if v := value(fams, "circuit_elements", "kind", "proc"); v != 0 {
		t.Errorf("server 0 holds no process, but circuit_elements{kind=proc} = %v", v)
	}

	// A hung server (SIGSTOP) is failed for server 0, and alive again
	// once it runs (SIGCONT); a crash (SIGKILL) leaves one member alive.
	if err := s1.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	suspected := pollMembers(t, addr0, 30*time.Second, "server 1 was stopped", 1, 1)
	t.Logf("server 1 stopped: suspect seen %v", suspected)
	if err := s1.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	pollMembers(t, addr0, 30*time.Second, "server 1 was continued", 2, 0)
	s1.Kill()
	pollMembers(t, addr0, 20*time.Second, "server 1 was killed", 1, -1)
}

// pollMembers scrapes addr until circuit_members shows alive members and
// failed ones (any number if failed < 0), for up to timeout, and tells
// whether a scrape on the way showed a suspect.
func pollMembers(t *testing.T, addr string, timeout time.Duration, after string, alive, failed float64) (suspected bool) {
	t.Helper()
	scrapes := 0
	testsupport.Eventually(t, timeout, func() error {
		scrapes++
		_, fams := scrape(t, addr)
		a, s, f := value(fams, "circuit_members", "state", "alive"), value(fams, "circuit_members", "state", "suspect"), value(fams, "circuit_members", "state", "failed")
		suspected = suspected || s > 0
		if a == alive && (failed < 0 || f == failed) {
			t.Logf("after %s: alive %v, failed %v at scrape %d", after, a, f, scrapes)
			return nil
		}
		return fmt.Errorf("after %s, circuit_members at %s: alive %v, suspect %v, failed %v; want alive %v, failed %v", after, addr, a, s, f, alive, failed)
	})
	return suspected
}

// TestMetricsFlag checks -metrics's refusals: a malformed address is a
// usage error (exit 2) before anything starts, and a port that is taken
// keeps the server from starting.
func TestMetricsFlag(t *testing.T) {
	cl := testcluster.Start(t, 1, testcluster.Options{Local: true, Args: []string{"-metrics", "127.0.0.1:0"}})
	taken := metricsAddr(t, cl.Servers[0])
	for _, c := range []struct {
		addr string
		code int
		want string
	}{
		{"127.0.0.1", 2, "want HOST:PORT"},
		{"127.0.0.1:http", 2, `port "http" is not a number`},
		{"127.0.0.1:70000", 2, `port "70000" is not a number`},
		{"bad host:9100", 2, `host "bad host" is neither`},
		{taken, 1, "metrics " + taken},
	} {
		r := cl.RunEnv(nil, "", "start", "-a", "127.0.0.1:0", "-timing", "local", "-metrics", c.addr)
		if r.Code != c.code || r.Stdout != "" || !strings.Contains(r.Stderr, c.want) {
			t.Errorf("start -metrics %q: exit %d, stdout %q, stderr %q; want exit %d, no URL, and %q", c.addr, r.Code, r.Stdout, r.Stderr, c.code, c.want)
		}
	}
}
