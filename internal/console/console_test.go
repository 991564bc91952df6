package console

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/cluster"
	"github.com/circuit-project/circuit/internal/ident"
	"github.com/circuit-project/circuit/internal/security"
	"github.com/circuit-project/circuit/internal/server"
	"github.com/circuit-project/circuit/internal/testsupport"
	"github.com/circuit-project/circuit/internal/testsupport/testcluster"
)

func TestListenAddr(t *testing.T) {
	tests := []struct {
		in, want string
		bad      bool
	}{
		{in: ":8080", want: "127.0.0.1:8080"},
		{in: "127.0.0.1:0", want: "127.0.0.1:0"},
		{in: "0.0.0.0:80", want: "0.0.0.0:80"},
		{in: "[::1]:9", want: "[::1]:9"},
		{in: "localhost:1", want: "localhost:1"},
		{in: "8080", bad: true},
		{in: "host:", bad: true},
		{in: "", bad: true},
	}
	for _, tc := range tests {
		got, err := ListenAddr(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("ListenAddr(%q) = %q, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ListenAddr(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestSplitCommand(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		bad  bool
	}{
		{in: "/bin/ls /", want: []string{"/bin/ls", "/"}},
		{in: "  /bin/echo   a\tb  ", want: []string{"/bin/echo", "a", "b"}},
		{in: `/bin/sh -c 'echo hi; sleep 1'`, want: []string{"/bin/sh", "-c", "echo hi; sleep 1"}},
		{in: `/bin/echo "a \"b\" \\ c" d`, want: []string{"/bin/echo", `a "b" \ c`, "d"}},
		{in: `/bin/echo a\ b ''`, want: []string{"/bin/echo", "a b", ""}},
		{in: `x'y'"z"`, want: []string{"xyz"}},
		{in: "", want: nil},
		{in: "'open", bad: true},
		{in: `"open`, bad: true},
		{in: `trailing\`, bad: true},
	}
	for _, tc := range tests {
		got, err := splitCommand(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("splitCommand(%q) = %q, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("splitCommand(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestCompleteUTF8(t *testing.T) {
	euro := []byte("€") // three bytes
	tests := []struct {
		in   []byte
		want int
	}{
		{[]byte("abc"), 3},
		{append([]byte("ab"), euro[:1]...), 2},
		{append([]byte("ab"), euro[:2]...), 2},
		{append([]byte("ab"), euro...), 5},
		{[]byte{0xff, 0xfe}, 2}, // invalid, not incomplete: sent as is
		{nil, 0},
	}
	for _, tc := range tests {
		if got := completeUTF8(tc.in); got != tc.want {
			t.Errorf("completeUTF8(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestTracker(t *testing.T) {
	a := cluster.Member{ID: ident.ID(0xa), Addr: "127.0.0.1:1", PID: 1, DC: "east"}
	b := cluster.Member{ID: ident.ID(0xb), Addr: "127.0.0.1:2", PID: 2}
	t0 := time.Unix(1000, 0)
	tr := newTracker(15 * time.Second)
	type want struct{ id, health string }
	steps := []struct {
		at      time.Duration
		members []cluster.Member
		want    []want
	}{
		{0, []cluster.Member{a, b}, []want{{a.ID.String(), Alive}, {b.ID.String(), Alive}}},
		{1 * time.Second, []cluster.Member{a}, []want{{a.ID.String(), Alive}, {b.ID.String(), Failed}}},
		{15 * time.Second, []cluster.Member{a}, []want{{a.ID.String(), Alive}, {b.ID.String(), Failed}}},
		{16 * time.Second, []cluster.Member{a}, []want{{a.ID.String(), Alive}}},
		// A server that comes back (same ID) is alive again, from then.
		{17 * time.Second, []cluster.Member{b}, []want{{a.ID.String(), Failed}, {b.ID.String(), Alive}}},
		{18 * time.Second, []cluster.Member{a, b}, []want{{a.ID.String(), Alive}, {b.ID.String(), Alive}}},
	}
	for i, st := range steps {
		now := t0.Add(st.at)
		got := tr.update(now, st.members)
		var have []want
		for _, v := range got {
			have = append(have, want{v.ID, v.Health})
			if v.Health == Failed && (v.Until == nil || !v.Until.Equal(v.Since.Add(15*time.Second))) {
				t.Errorf("step %d: failed %s until %v, since %v", i, v.ID, v.Until, v.Since)
			}
		}
		if !reflect.DeepEqual(have, st.want) {
			t.Fatalf("step %d (t+%v): %v, want %v", i, st.at, have, st.want)
		}
	}
	if v := tr.update(t0.Add(19*time.Second), []cluster.Member{a, b}); v[0].Since != t0.Add(18*time.Second) || v[0].DC != "east" {
		t.Fatalf("an alive member's Since moved, or its fields are missing: %+v", v[0])
	}
}

// startConsole starts a console for the first of servers.
func startConsole(t *testing.T, servers []*server.Server, key []byte, write bool) *Console {
	t.Helper()
	s := servers[0]
	c, err := Start(context.Background(), Config{
		Addr: "127.0.0.1:0", Server: s.URL().String(), Key: key, Write: write,
		Members: s.Members, Ops: s.Ops(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("closing the console: %v", err)
		}
	})
	return c
}

type answer struct {
	code int
	body string
	resp *http.Response
}

// do makes one request to the console, with the CSRF header when csrf.
func do(t *testing.T, method, u, body string, csrf bool, cookies ...*http.Cookie) answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if csrf {
		req.Header.Set(csrfHeader, "1")
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	// No redirects: the test looks at each answer.
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading: %v", method, u, err)
	}
	return answer{resp.StatusCode, string(b), resp}
}

// event is one server-sent event.
type event struct{ name, data string }

// readEvents reads events from an event stream until stop says so or the
// stream ends, within 20 s.
func readEvents(t *testing.T, u string, stop func(event) bool) []event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s: %s", u, resp.StatusCode, ct, b)
	}
	var out []event
	var cur event
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			cur.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			cur.data = strings.TrimPrefix(line, "data: ")
		case line == "" && cur.name != "":
			out = append(out, cur)
			if stop(cur) {
				return out
			}
			cur = event{}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading events of %s after %v: %v", u, out, err)
	}
	return out
}

func TestReadOnlyAndWrites(t *testing.T) {
	servers := testcluster.StartInProcess(t, 2, nil)
	ro := startConsole(t, servers, nil, false)
	rw := startConsole(t, servers, nil, true)
	// The process is on the console's own server, whose log the console
	// shows; the channel on the other, through the relay.
	own := servers[0].ID().String()
	path := "/" + own + "/hello"
	cl, err := client.Connect(context.Background(), client.Options{Addr: servers[0].URL().String()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	// Read-only: every write is refused, and nothing is made.
	for _, ep := range []string{"mkproc", "signal", "scrub"} {
		a := do(t, "POST", ro.URL()+"api/"+ep, `{"Path": "`+path+`"}`, true)
		if a.code != http.StatusForbidden || !strings.Contains(a.body, "read-only") || !strings.Contains(a.body, "-http-write") {
			t.Errorf("read-only %s: %d %s", ep, a.code, a.body)
		}
	}
	// Writable, but without the header a cross-site form cannot send.
	a := do(t, "POST", rw.URL()+"api/mkproc", `{"Path": "`+path+`", "Command": "/bin/true"}`, false)
	if a.code != http.StatusForbidden || !strings.Contains(a.body, csrfHeader) {
		t.Errorf("mkproc without %s: %d %s", csrfHeader, a.code, a.body)
	}
	a = do(t, "GET", rw.URL()+"api/list?path=/"+own, "", false)
	if a.code != 200 || a.body != "[]\n" {
		t.Fatalf("refused writes made something: %d %s", a.code, a.body)
	}

	// Bad requests say what was wrong.
	bad := []struct{ ep, body, says string }{
		{"mkproc", `{"Path": "/nope", "Command": "/bin/true"}`, "mkproc"},
		{"mkproc", `{"Path": "` + path + `", "Command": "'open"}`, "unterminated"},
		{"mkproc", `{"Path": "` + path + `", "Command": "  "}`, "empty"},
		{"mkproc", `{"Path": "` + path + `", "Comand": "/bin/true"}`, `Comand`},
		{"signal", `{"Path": "` + path + `", "Signal": "TERM"}`, "no element"},
	}
	for _, b := range bad {
		a := do(t, "POST", rw.URL()+"api/"+b.ep, b.body, true)
		if a.code < 400 || !strings.Contains(a.body, b.says) {
			t.Errorf("%s %s: %d %s; want an error saying %q", b.ep, b.body, a.code, a.body, b.says)
		}
	}

	// mkproc, then follow its output, as the page does.
	a = do(t, "POST", rw.URL()+"api/mkproc", `{"Path": "`+path+`", "Command": "/bin/sh -c 'echo out-line; echo err-line >&2; exec /bin/sleep 60'"}`, true)
	if a.code != 200 {
		t.Fatalf("mkproc: %d %s", a.code, a.body)
	}
	a = do(t, "GET", rw.URL()+"api/list?path=/"+own, "", false)
	if a.code != 200 || !strings.Contains(a.body, `{"Path":"`+path+`","Kind":"proc"}`) {
		t.Fatalf("list after mkproc: %d %s", a.code, a.body)
	}
	a = do(t, "GET", rw.URL()+"api/peek?path="+url.QueryEscape(path), "", false)
	var peek struct {
		Kind string
		Peek struct {
			Phase string
			Cmd   struct{ Path string }
		}
	}
	if err := json.Unmarshal([]byte(a.body), &peek); err != nil || peek.Kind != "proc" || peek.Peek.Phase != "running" || peek.Peek.Cmd.Path != "/bin/sh" {
		t.Fatalf("peek: %d %s (%v)", a.code, a.body, err)
	}
	for name, want := range map[string]string{"stdout": "out-line\n", "stderr": "err-line\n"} {
		var got strings.Builder
		readEvents(t, rw.URL()+"api/stream?name="+name+"&path="+url.QueryEscape(path), func(e event) bool {
			if e.name != "out" {
				t.Fatalf("%s: event %s %s", name, e.name, e.data)
			}
			var s string
			if err := json.Unmarshal([]byte(e.data), &s); err != nil {
				t.Fatal(err)
			}
			got.WriteString(s)
			return strings.Contains(got.String(), want)
		})
		if got.String() != want {
			t.Errorf("%s: %q, want %q", name, got.String(), want)
		}
	}

	// While a page follows a stream, the console is its one reader; when
	// the page goes, the console closes the stream (and the server
	// discards the rest: the stream stays taken, package proc).
	ticker := "/" + own + "/ticker"
	a = do(t, "POST", rw.URL()+"api/mkproc", `{"Path": "`+ticker+`", "Command": "/bin/sh -c 'while :; do echo tick; /bin/sleep 0.05; done'"}`, true)
	if a.code != 200 {
		t.Fatalf("mkproc: %d %s", a.code, a.body)
	}
	second := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := cl.OpenStreamAt(ctx, ticker, "stdout")
		if err == nil {
			conn.Close()
		}
		return err
	}
	readEvents(t, rw.URL()+"api/stream?name=stdout&path="+url.QueryEscape(ticker), func(e event) bool {
		if e.name != "out" || !strings.Contains(e.data, "tick") {
			t.Fatalf("ticker: event %s %s", e.name, e.data)
		}
		if err := second(); err == nil || !strings.Contains(err.Error(), "already in use") {
			t.Fatalf("a second reader while the page follows: %v; want it refused as in use", err)
		}
		if n := rw.following.Load(); n != 1 {
			t.Fatalf("the console follows %d streams, want 1", n)
		}
		return true
	})
	testsupport.Eventually(t, 10*time.Second, func() error {
		if n := rw.following.Load(); n != 0 {
			return fmt.Errorf("the console still follows %d streams after the page left", n)
		}
		return nil
	})
	if a := do(t, "POST", rw.URL()+"api/scrub", `{"Path": "`+ticker+`"}`, true); a.code != 200 {
		t.Fatalf("scrub %s: %d %s", ticker, a.code, a.body)
	}
	// The stream was closed when the reader went: the process's stderr
	// is discarded now, and stays so. A second reader gets an error or
	// nothing, never the old output.
	a = do(t, "POST", rw.URL()+"api/signal", `{"Path": "`+path+`", "Signal": "FOO"}`, true)
	if a.code != http.StatusBadRequest || !strings.Contains(a.body, `unknown signal \"FOO\"`) {
		t.Fatalf("signal FOO: %d %s", a.code, a.body)
	}
	a = do(t, "POST", rw.URL()+"api/signal", `{"Path": "`+path+`", "Signal": "term"}`, true)
	if a.code != 200 {
		t.Fatalf("signal: %d %s", a.code, a.body)
	}
	testsupport.Eventually(t, 10*time.Second, func() error {
		a := do(t, "GET", rw.URL()+"api/peek?path="+url.QueryEscape(path), "", false)
		if !strings.Contains(a.body, `"Signal":"TERM"`) || !strings.Contains(a.body, `"Phase":"exited"`) {
			return fmt.Errorf("the process has not shown it died of TERM: peek: %d %s", a.code, a.body)
		}
		return nil
	})

	// A channel's counters are its peek.
	ch := servers[1].ID().String()
	c, err := cl.MakeChanAt(context.Background(), "/"+ch+"/ch", 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send(context.Background(), strings.NewReader("m")); err != nil {
		t.Fatal(err)
	}
	a = do(t, "GET", rw.URL()+"api/peek?path=/"+ch+"/ch", "", false)
	if a.code != 200 || !strings.Contains(a.body, `"Kind":"chan","Peek":{"Cap":2,"Closed":false,"Aborted":false,"NumSend":1,"NumRecv":0}`) {
		t.Fatalf("chan peek: %d %s", a.code, a.body)
	}

	// scrub removes any element.
	for _, p := range []string{path, "/" + ch + "/ch"} {
		if a := do(t, "POST", rw.URL()+"api/scrub", `{"Path": "`+p+`"}`, true); a.code != 200 {
			t.Fatalf("scrub %s: %d %s", p, a.code, a.body)
		}
	}
	a = do(t, "GET", rw.URL()+"api/peek?path="+url.QueryEscape(path), "", false)
	if a.code != http.StatusNotFound {
		t.Fatalf("peek after scrub: %d %s", a.code, a.body)
	}

	// The log tail shows the operations, the failed ones with their error.
	evs := readEvents(t, rw.URL()+"api/events", func(e event) bool { return e.name == "ops" })
	last := evs[len(evs)-1]
	if !strings.Contains(last.data, `"Op":"Proc.Make"`) || !strings.Contains(last.data, `"Op":"Anchor.Scrub"`) || !strings.Contains(last.data, "FOO") {
		t.Fatalf("ops event lacks the operations: %s", last.data)
	}
}

func TestKeyed(t *testing.T) {
	secret := security.Generate()
	key, err := security.New([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	servers := testcluster.StartInProcess(t, 1, key)
	c := startConsole(t, servers, []byte(secret+"\n"), true)
	token, err := Token([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	if len(token) != 64 {
		t.Fatalf("token %q: want 64 hex digits", token)
	}
	if _, err := Token([]byte("not a key")); err == nil {
		t.Fatal("Token of a malformed key: no error")
	}

	// Without the token: 401 and nothing of the cluster, everywhere.
	id := servers[0].ID().String()
	for _, r := range []struct{ method, path string }{
		{"GET", ""}, {"GET", "app.js"}, {"GET", "api/info"}, {"GET", "api/events"},
		{"GET", "api/list?path=/"}, {"GET", "api/peek?path=/" + id},
		{"POST", "api/mkproc"}, {"GET", "api/info?token=" + strings.Repeat("0", 64)},
	} {
		a := do(t, r.method, c.URL()+r.path, `{}`, true)
		if a.code != http.StatusUnauthorized || strings.Contains(a.body, id) {
			t.Errorf("%s /%s without the token: %d %s", r.method, r.path, a.code, a.body)
		}
	}
	bad := &http.Cookie{Name: cookieName, Value: "x" + token[1:]}
	if a := do(t, "GET", c.URL()+"api/info", "", false, bad); a.code != http.StatusUnauthorized {
		t.Errorf("a wrong cookie: %d %s", a.code, a.body)
	}

	// ?token= works and sets the cookie, which works alone.
	a := do(t, "GET", c.URL()+"api/info?token="+token, "", false)
	if a.code != 200 || !strings.Contains(a.body, `"Keyed":true`) {
		t.Fatalf("with ?token=: %d %s", a.code, a.body)
	}
	var cookie *http.Cookie
	for _, ck := range a.resp.Cookies() {
		if ck.Name == cookieName {
			cookie = ck
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode {
		t.Fatalf("cookie after ?token=: %+v", cookie)
	}
	if a := do(t, "GET", c.URL()+"api/list?path=/", "", false, cookie); a.code != 200 || !strings.Contains(a.body, id) {
		t.Fatalf("list with the cookie: %d %s", a.code, a.body)
	}
	// The login form.
	if a := do(t, "POST", c.URL()+"login", "token=wrong", false); a.code != http.StatusUnauthorized || !strings.Contains(a.body, `id="refused"`) {
		t.Fatalf("login with a wrong token: %d %s", a.code, a.body)
	}
	if a := do(t, "GET", c.URL(), "", false); a.code != http.StatusUnauthorized || !strings.Contains(a.body, `id="token"`) || strings.Contains(a.body, `id="refused"`) {
		t.Fatalf("the login page on a first visit: %d %s", a.code, a.body)
	}
	req := "token=" + token
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Post(c.URL()+"login", "application/x-www-form-urlencoded", strings.NewReader(req))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 || resp.Cookies()[0].Value != token {
		t.Fatalf("login: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	// Writes through the key-dialled client work.
	if a := do(t, "POST", c.URL()+"api/mkproc", `{"Path": "/`+id+`/t", "Command": "/bin/true", "Scrub": true}`, true, cookie); a.code != 200 {
		t.Fatalf("mkproc with the token: %d %s", a.code, a.body)
	}
}

func TestLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"127.0.0.1:8080": true, "127.0.0.1": true, "[::1]:80": true, "::1": true,
		"localhost:8080": true, "LOCALHOST": true, "127.9.9.9:1": true,
		"evil.example:8080": false, "10.0.0.1:80": false, "": false, "localhost.evil.example": false,
	} {
		if got := loopbackHost(host); got != want {
			t.Errorf("loopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}

// A loopback console refuses requests for other host names (DNS rebinding).
func TestRebindingRefused(t *testing.T) {
	servers := testcluster.StartInProcess(t, 1, nil)
	c := startConsole(t, servers, nil, true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for host, want := range map[string]int{"evil.example": http.StatusForbidden, "localhost": http.StatusOK} {
		req, err := http.NewRequestWithContext(ctx, "GET", c.URL()+"api/list?path=/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host + ":" + c.ln.Addr().(*net.TCPAddr).AddrPort().String()[len("127.0.0.1:"):]
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || (want != 200 && strings.Contains(string(b), servers[0].ID().String())) {
			t.Errorf("Host %s: %d %s, want %d", req.Host, resp.StatusCode, b, want)
		}
	}
}

// The poller runs only while a page is connected.
func TestPollerOnlyWithPages(t *testing.T) {
	servers := testcluster.StartInProcess(t, 1, nil)
	c := startConsole(t, servers, nil, false)
	running := func() bool {
		c.hub.mu.Lock()
		defer c.hub.mu.Unlock()
		return c.hub.stop != nil
	}
	if running() {
		t.Fatal("a poller runs with no page connected")
	}
	for range 2 {
		evs := readEvents(t, c.URL()+"api/events", func(e event) bool { return e.name == "members" })
		if m := evs[len(evs)-1].data; !strings.Contains(m, servers[0].ID().String()) || !strings.Contains(m, `"Health":"alive"`) {
			t.Fatalf("members event: %s", m)
		}
		testsupport.Eventually(t, 10*time.Second, func() error {
			if running() {
				return errors.New("the poller still runs after the page left")
			}
			return nil
		})
		done := make(chan struct{})
		go func() { c.hub.wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the stopped poller's goroutine never ended")
		}
	}
}
