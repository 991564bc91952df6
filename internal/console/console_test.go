package console

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
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
	return startConsoleWith(t, servers, Config{Addr: "127.0.0.1:0", Key: key, Write: write})
}

type answer struct {
	code int
	body string
	resp *http.Response
}

// do makes one request to the console, with the CSRF header when csrf,
// and for a POST the Origin a browser sends, the console's own.
func do(t *testing.T, method, u, body string, csrf bool, cookies ...*http.Cookie) answer {
	t.Helper()
	h := http.Header{}
	if csrf {
		h.Set(csrfHeader, "1")
	}
	if method == http.MethodPost {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		h.Set("Origin", pu.Scheme+"://"+pu.Host)
	}
	return doWith(t, nil, method, u, body, h, cookies...)
}

// doWith makes one request with exactly the headers h, through hc (a
// plain client when nil), without following redirects.
func doWith(t *testing.T, hc *http.Client, method, u, body string, h http.Header, cookies ...*http.Cookie) answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		if k == "Host" {
			req.Host = v[0]
			continue
		}
		req.Header[k] = v
	}
	if method == http.MethodPost && body != "" && strings.HasPrefix(body, "token=") {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	// No redirects: the test looks at each answer.
	if hc == nil {
		hc = &http.Client{}
	}
	nc := *hc
	nc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := nc.Do(req)
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

	// ?token= is exchanged for a session: the cookie holds a session ID,
	// not the token, and the answer sends the browser to the same address
	// without the token.
	a := do(t, "GET", c.URL()+"api/info?token="+token, "", false)
	if a.code != http.StatusSeeOther || a.resp.Header.Get("Location") != "/api/info" || strings.Contains(a.body, token) {
		t.Fatalf("with ?token=: %d, Location %q, %s", a.code, a.resp.Header.Get("Location"), a.body)
	}
	cookie := sessionCookie(t, a, token)
	if cookie.Secure {
		t.Errorf("a Secure cookie over plain HTTP: %+v", cookie)
	}
	if a := do(t, "GET", c.URL()+"api/list?path=/", "", false, cookie); a.code != 200 || !strings.Contains(a.body, id) {
		t.Fatalf("list with the cookie: %d %s", a.code, a.body)
	}
	// The token itself is no cookie.
	if a := do(t, "GET", c.URL()+"api/info", "", false, &http.Cookie{Name: cookieName, Value: token}); a.code != http.StatusUnauthorized {
		t.Errorf("the token as the cookie: %d %s", a.code, a.body)
	}
	// The login form.
	if a := do(t, "POST", c.URL()+"login", "token=wrong", false); a.code != http.StatusUnauthorized || !strings.Contains(a.body, `id="refused"`) {
		t.Fatalf("login with a wrong token: %d %s", a.code, a.body)
	}
	if a := do(t, "GET", c.URL(), "", false); a.code != http.StatusUnauthorized || !strings.Contains(a.body, `id="token"`) || strings.Contains(a.body, `id="refused"`) {
		t.Fatalf("the login page on a first visit: %d %s", a.code, a.body)
	}
	a = do(t, "POST", c.URL()+"login", "token="+token, false)
	if a.code != http.StatusSeeOther || a.resp.Header.Get("Location") != "/" {
		t.Fatalf("login: %d %s", a.code, a.body)
	}
	second := sessionCookie(t, a, token)
	if second.Value == cookie.Value {
		t.Fatalf("two logins got the same session %q", cookie.Value)
	}
	if a := do(t, "GET", c.URL()+"api/info", "", false, second); a.code != 200 {
		t.Fatalf("info with the login's cookie: %d %s", a.code, a.body)
	}
	// Writes through the key-dialled client work.
	if a := do(t, "POST", c.URL()+"api/mkproc", `{"Path": "/`+id+`/t", "Command": "/bin/true", "Scrub": true}`, true, cookie); a.code != 200 {
		t.Fatalf("mkproc with the token: %d %s", a.code, a.body)
	}
}

// sessionCookie is the session cookie an answer sets, checked: HttpOnly,
// SameSite=Strict, a random ID and never the token.
func sessionCookie(t *testing.T, a answer, token string) *http.Cookie {
	t.Helper()
	var cookie *http.Cookie
	for _, ck := range a.resp.Cookies() {
		if ck.Name == cookieName {
			cookie = ck
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/" {
		t.Fatalf("session cookie: %+v", cookie)
	}
	if strings.Contains(cookie.Value, token) || len(cookie.Value) < 43 {
		t.Fatalf("session cookie %q: want a random ID of 32 bytes, never the token", cookie.Value)
	}
	return cookie
}

// The token is derived from the console's subkey of the cluster key, not
// from the raw key.
func TestTokenDerivation(t *testing.T) {
	secret := security.Generate()
	k, err := security.Parse([]byte(secret + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	token, err := Token([]byte(secret + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, k.ConsoleKey())
	m.Write([]byte("token"))
	if want := hex.EncodeToString(m.Sum(nil)); token != want || TokenOf(k) != want {
		t.Fatalf("Token = %s, want HMAC-SHA256(ConsoleKey, \"token\") = %s", token, want)
	}
	other, err := Token([]byte(security.Generate()))
	if err != nil || other == token {
		t.Fatalf("another key's token: %s, %v", other, err)
	}
	for _, bad := range []string{"not a key", "password1234", ""} {
		if _, err := Token([]byte(bad)); !errors.Is(err, security.ErrNotAKey) {
			t.Errorf("Token(%q): %v, want ErrNotAKey", bad, err)
		}
	}
}

// A valid ?token= sets a session and sends the browser to the same address
// without the token, other parameters kept; sessions live in one console's
// memory, expire when idle, and are bounded.
func TestSessions(t *testing.T) {
	secret := security.Generate()
	key, err := security.New([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	servers := testcluster.StartInProcess(t, 1, key)
	c := startConsole(t, servers, []byte(secret), false)
	other := startConsole(t, servers, []byte(secret), false)
	token := TokenOf(key)

	a := do(t, "GET", c.URL()+"api/list?path=/&token="+token+"&x=a%26b", "", false)
	if loc := a.resp.Header.Get("Location"); a.code != http.StatusSeeOther || loc != "/api/list?path=/&x=a%26b" {
		t.Fatalf("GET with ?token= among other parameters: %d, Location %q", a.code, loc)
	}
	ck := sessionCookie(t, a, token)
	if a := do(t, "GET", c.URL()+"api/list?path=/&x=a%26b", "", false, ck); a.code != 200 || !strings.Contains(a.body, servers[0].ID().String()) {
		t.Fatalf("following the redirect with the cookie: %d %s", a.code, a.body)
	}
	// Another console of the same cluster does not know this session.
	if a := do(t, "GET", other.URL()+"api/info", "", false, ck); a.code != http.StatusUnauthorized {
		t.Fatalf("a session of another console: %d %s", a.code, a.body)
	}
	// A POST never takes the token in its address.
	if a := do(t, "POST", c.URL()+"api/scrub?token="+token, "{}", true); a.code != http.StatusUnauthorized || len(a.resp.Cookies()) != 0 {
		t.Fatalf("POST with ?token=: %d %s, cookies %v", a.code, a.body, a.resp.Cookies())
	}

	// Idle for longer than sessionIdle: gone.
	var mu sync.Mutex
	now := time.Now()
	c.sess.mu.Lock()
	c.sess.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c.sess.max = 3
	c.sess.mu.Unlock()
	login := func() *http.Cookie {
		t.Helper()
		a := do(t, "POST", c.URL()+"login", "token="+token, false)
		if a.code != http.StatusSeeOther {
			t.Fatalf("login: %d %s", a.code, a.body)
		}
		return sessionCookie(t, a, token)
	}
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	fresh := login()
	advance(sessionIdle - time.Minute)
	if a := do(t, "GET", c.URL()+"api/info", "", false, fresh); a.code != 200 {
		t.Fatalf("a session used within %v: %d", sessionIdle, a.code)
	}
	advance(sessionIdle - time.Minute) // idle less than sessionIdle since its last use
	if a := do(t, "GET", c.URL()+"api/info", "", false, fresh); a.code != 200 {
		t.Fatalf("a session used again within %v: %d", sessionIdle, a.code)
	}
	advance(sessionIdle + time.Second)
	if a := do(t, "GET", c.URL()+"api/info", "", false, fresh); a.code != http.StatusUnauthorized {
		t.Fatalf("a session idle for longer than %v: %d", sessionIdle, a.code)
	}
	// Bounded: the least recently used session goes to make room.
	s1 := login()
	advance(time.Second)
	s2 := login()
	advance(time.Second)
	s3 := login()
	advance(time.Second)
	do(t, "GET", c.URL()+"api/info", "", false, s1) // s2 is now the oldest
	s4 := login()
	for _, tc := range []struct {
		ck   *http.Cookie
		want int
	}{{s1, 200}, {s2, http.StatusUnauthorized}, {s3, 200}, {s4, 200}} {
		if a := do(t, "GET", c.URL()+"api/info", "", false, tc.ck); a.code != tc.want {
			t.Errorf("session %s: %d, want %d", tc.ck.Value[:8], a.code, tc.want)
		}
	}
	if n := c.sess.len(); n != 3 {
		t.Errorf("%d sessions held, want at most 3", n)
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

// startConsoleWith starts a console for the first of servers with cfg,
// whose Server, Members and Ops it fills.
func startConsoleWith(t *testing.T, servers []*server.Server, cfg Config) *Console {
	t.Helper()
	s := servers[0]
	cfg.Server, cfg.Members, cfg.Ops = s.URL().String(), s.Members, s.Ops()
	c, err := Start(context.Background(), cfg)
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

// Host and Origin are checked whatever the bind address.
func TestHostsAndOrigins(t *testing.T) {
	servers := testcluster.StartInProcess(t, 1, nil)
	id := servers[0].ID().String()
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	lo := startConsole(t, servers, nil, true)
	wide := startConsoleWith(t, servers, Config{Addr: "0.0.0.0:0", Write: true, Hosts: []string{"console.example", "Other.Example."}})
	port := func(c *Console) string { return fmt.Sprint(c.ln.Addr().(*net.TCPAddr).Port) }

	type req struct {
		c                    *Console
		method, host, origin string
		want                 int
		says                 string // in a refusal
	}
	reqs := []req{
		// Loopback: loopback names only, with the console's port or none.
		{c: lo, host: "127.0.0.1:" + port(lo), want: 200},
		{c: lo, host: "localhost", want: 200},
		{c: lo, host: "[::1]:" + port(lo), want: 200},
		{c: lo, host: "evil.example:" + port(lo), want: 403, says: "evil.example"},
		{c: lo, host: "localhost:1", want: 403, says: "localhost:1"},
		// An Origin, when there is one, is the console's own.
		{c: lo, host: "localhost:" + port(lo), origin: "http://localhost:" + port(lo), want: 200},
		{c: lo, host: "localhost:" + port(lo), origin: "http://evil.example", want: 403, says: "http://evil.example"},
		{c: lo, host: "localhost:" + port(lo), origin: "http://127.0.0.1:" + port(lo), want: 403, says: "another site"},
		{c: lo, host: "localhost:" + port(lo), origin: "https://localhost:" + port(lo), want: 403, says: "http"},
		{c: lo, host: "localhost:" + port(lo), origin: "null", want: 403, says: "null"},
		// Every POST has an Origin, the console's own.
		{c: lo, method: "POST", host: "localhost:" + port(lo), want: 403, says: "Origin"},
		{c: lo, method: "POST", host: "localhost:" + port(lo), origin: "http://evil.example", want: 403, says: "evil.example"},
		{c: lo, method: "POST", host: "localhost:" + port(lo), origin: "http://localhost:" + port(lo), want: 200},
		// Beyond loopback: the machine's name, its addresses, loopback,
		// and the -http-host names (those with any port).
		{c: wide, host: hostname + ":" + port(wide), want: 200},
		{c: wide, host: "127.0.0.1:" + port(wide), want: 200},
		{c: wide, host: "console.example", want: 200},
		{c: wide, host: "CONSOLE.example:8443", want: 200},
		{c: wide, host: "other.example:" + port(wide), want: 200},
		{c: wide, host: "evil.example:" + port(wide), want: 403, says: "evil.example"},
		{c: wide, host: hostname + ".evil.example:" + port(wide), want: 403, says: "evil.example"},
		{c: wide, host: "console.example", origin: "http://evil.example", want: 403, says: "evil.example"},
		{c: wide, host: "console.example:8443", origin: "http://console.example:8443", want: 200},
		{c: wide, method: "POST", host: hostname + ":" + port(wide), want: 403, says: "Origin"},
		{c: wide, method: "POST", host: hostname + ":" + port(wide), origin: "http://" + hostname + ":" + port(wide), want: 200},
	}
	for _, r := range reqs {
		h := http.Header{"Host": {r.host}}
		if r.origin != "" {
			h.Set("Origin", r.origin)
		}
		method, path, body := "GET", "api/list?path=/", ""
		if r.method == "POST" {
			method, path, body = "POST", "api/scrub", `{"Path": "/`+id+`/none"}`
			h.Set(csrfHeader, "1")
		}
		a := doWith(t, nil, method, r.c.URL()+path, body, h)
		switch {
		case r.want == 200 && a.code == http.StatusForbidden:
			t.Errorf("%s Host %s Origin %q: %d %s, want it let through", method, r.host, r.origin, a.code, a.body)
		case r.want == 403 && (a.code != 403 || !strings.Contains(a.body, r.says) || strings.Contains(a.body, id)):
			t.Errorf("%s Host %s Origin %q: %d %s, want 403 saying %q", method, r.host, r.origin, a.code, a.body, r.says)
		}
	}
	// A request of another site to the interface, as browsers mark it.
	a := doWith(t, nil, "GET", lo.URL()+"api/list?path=/", "", http.Header{"Sec-Fetch-Site": {"cross-site"}})
	if a.code != http.StatusForbidden {
		t.Errorf("a cross-site request: %d %s", a.code, a.body)
	}
	a = doWith(t, nil, "GET", lo.URL()+"api/list?path=/", "", http.Header{"Sec-Fetch-Site": {"same-origin"}})
	if a.code != 200 {
		t.Errorf("a same-origin request: %d %s", a.code, a.body)
	}
	if _, err := Start(context.Background(), Config{Addr: "127.0.0.1:0", Server: servers[0].URL().String(), Members: servers[0].Members, Hosts: []string{"http://x.example"}}); err == nil {
		t.Error("a host name with a scheme: no error")
	}
}

// A read-only console does not show a process's environment, in the API
// the page calls; a writable one does.
func TestReadOnlyHidesEnv(t *testing.T) {
	servers := testcluster.StartInProcess(t, 1, nil)
	ro := startConsole(t, servers, nil, false)
	rw := startConsole(t, servers, nil, true)
	cl, err := client.Connect(context.Background(), client.Options{Addr: servers[0].URL().String()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	path := "/" + servers[0].ID().String() + "/env"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cl.MakeProcAt(ctx, path, client.Cmd{Path: "/bin/sleep", Args: []string{"60"}, Env: []string{"PASSWORD=hunter2", "TOKEN=s3cr3t"}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.ScrubAt(context.Background(), path) })

	a := do(t, "GET", ro.URL()+"api/peek?path="+url.QueryEscape(path), "", false)
	var peek struct {
		Kind string
		Peek struct {
			Phase string
			Cmd   struct {
				Path string
				Env  any
			}
		}
	}
	if err := json.Unmarshal([]byte(a.body), &peek); err != nil || a.code != 200 || peek.Peek.Phase != "running" || peek.Peek.Cmd.Path != "/bin/sleep" {
		t.Fatalf("read-only peek: %d %s (%v)", a.code, a.body, err)
	}
	if strings.Contains(a.body, "hunter2") || strings.Contains(a.body, "PASSWORD") || strings.Contains(a.body, "s3cr3t") {
		t.Fatalf("a read-only console shows the environment: %s", a.body)
	}
	if env, ok := peek.Peek.Cmd.Env.(string); !ok || !strings.Contains(env, "hidden: 2 variables") {
		t.Fatalf("read-only peek's Env: %#v, want it hidden with its count", peek.Peek.Cmd.Env)
	}
	a = do(t, "GET", rw.URL()+"api/peek?path="+url.QueryEscape(path), "", false)
	if a.code != 200 || !strings.Contains(a.body, `"Env":["PASSWORD=hunter2","TOKEN=s3cr3t"]`) {
		t.Fatalf("a writable console's peek: %d %s, want the environment", a.code, a.body)
	}
}

func TestHideEnv(t *testing.T) {
	doc := json.RawMessage(`{"Id":"abc","Config":{"Env":["A=1","B=2","C=3"],"Image":"x"},"Mounts":[{"Env":["D=4"]}],"Size":12345678901234}`)
	got, err := hideEnv(doc)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, leak := range []string{"A=1", "B=2", "D=4"} {
		if strings.Contains(s, leak) {
			t.Errorf("hideEnv left %s: %s", leak, s)
		}
	}
	if !strings.Contains(s, "hidden: 3 variables") || !strings.Contains(s, "hidden: 1 variables") || !strings.Contains(s, `"Size":12345678901234`) || !strings.Contains(s, `"Image":"x"`) {
		t.Errorf("hideEnv: %s", s)
	}
}

// A read-only console's viewer of a process leaves its output to its real
// reader: a reader that comes after the viewer still gets every byte.
func TestReadOnlyLeavesOutput(t *testing.T) {
	servers := testcluster.StartInProcess(t, 1, nil)
	ro := startConsole(t, servers, nil, false)
	cl, err := client.Connect(context.Background(), client.Options{Addr: servers[0].URL().String()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	path := "/" + servers[0].ID().String() + "/out"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := cl.MakeProcAt(ctx, path, client.Cmd{Path: "/bin/sh", Args: []string{"-c", "seq 1 20000; echo err >&2; exec /bin/sleep 60"}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.ScrubAt(context.Background(), path) })
	var want strings.Builder
	for i := 1; i <= 20000; i++ {
		fmt.Fprintf(&want, "%d\n", i)
	}

	// The viewer does all the page does: peek, and ask for both outputs.
	if a := do(t, "GET", ro.URL()+"api/peek?path="+url.QueryEscape(path), "", false); a.code != 200 || !strings.Contains(a.body, `"running"`) {
		t.Fatalf("peek: %d %s", a.code, a.body)
	}
	for _, name := range []string{"stdout", "stderr"} {
		a := do(t, "GET", ro.URL()+"api/stream?name="+name+"&path="+url.QueryEscape(path), "", false)
		if a.code != http.StatusForbidden || !strings.Contains(a.body, "read-only") || strings.Contains(a.body, "1\n2\n") {
			t.Fatalf("a read-only console's %s: %d %s, want 403", name, a.code, a.body)
		}
	}
	page := do(t, "GET", ro.URL()+"app.js", "", false)
	if !strings.Contains(page.body, "output-hidden") {
		t.Fatal("the page does not say that a read-only console shows no output")
	}

	// The real reader, after the viewer, gets every byte.
	conn, err := cl.OpenStreamAt(ctx, path, "stdout")
	if err != nil {
		t.Fatalf("stdout after a read-only viewer: %v", err)
	}
	defer conn.Close()
	if err := conn.SetReadDeadline(time.Now().Add(15 * time.Second)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, want.Len())
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != want.String() {
		t.Fatalf("stdout after a read-only viewer: %d bytes, %v; want all %d", len(got), err, want.Len())
	}
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and localhost,
// and its key, as PEM files, and returns their paths and the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "circuit console test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	if cert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, cert
}

// With a certificate, the console is served over HTTPS, its session cookie
// is Secure, and the token goes nowhere in the clear.
func TestTLS(t *testing.T) {
	secret := security.Generate()
	key, err := security.New([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	servers := testcluster.StartInProcess(t, 1, key)
	certFile, keyFile, cert := selfSigned(t)
	c := startConsoleWith(t, servers, Config{Addr: "127.0.0.1:0", Key: []byte(secret), TLSCert: certFile, TLSKey: keyFile})
	if !strings.HasPrefix(c.URL(), "https://127.0.0.1:") {
		t.Fatalf("URL %s, want https", c.URL())
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer hc.CloseIdleConnections()
	token := TokenOf(key)

	a := doWith(t, hc, "GET", c.URL()+"?token="+token, "", nil)
	if a.code != http.StatusSeeOther || a.resp.TLS == nil || a.resp.Header.Get("Strict-Transport-Security") == "" {
		t.Fatalf("GET over HTTPS with ?token=: %d, TLS %v, headers %v", a.code, a.resp.TLS != nil, a.resp.Header)
	}
	ck := sessionCookie(t, a, token)
	if !ck.Secure {
		t.Fatalf("the session cookie over HTTPS is not Secure: %+v", ck)
	}
	a = doWith(t, hc, "GET", c.URL()+"api/list?path=/", "", nil, ck)
	if a.code != 200 || !strings.Contains(a.body, servers[0].ID().String()) {
		t.Fatalf("list over HTTPS with the session: %d %s", a.code, a.body)
	}
	// A POST's Origin is https.
	h := http.Header{"Origin": {"https://" + c.ln.Addr().String()}, "Content-Type": {"application/x-www-form-urlencoded"}}
	if a := doWith(t, hc, "POST", c.URL()+"login", "token="+token, h); a.code != http.StatusSeeOther || !sessionCookie(t, a, token).Secure {
		t.Fatalf("login over HTTPS: %d %s", a.code, a.body)
	}
	h.Set("Origin", "http://"+c.ln.Addr().String())
	if a := doWith(t, hc, "POST", c.URL()+"login", "token="+token, h); a.code != http.StatusForbidden {
		t.Fatalf("login over HTTPS with an http Origin: %d %s", a.code, a.body)
	}
	// Plain HTTP gets nothing of the console.
	plain := doWith(t, nil, "GET", strings.Replace(c.URL(), "https://", "http://", 1)+"?token="+token, "", nil)
	if plain.code == http.StatusSeeOther || len(plain.resp.Cookies()) != 0 {
		t.Fatalf("plain HTTP to the HTTPS console: %d %s", plain.code, plain.body)
	}

	if _, err := Start(context.Background(), Config{Addr: "127.0.0.1:0", Server: servers[0].URL().String(), Members: servers[0].Members, TLSCert: certFile}); err == nil {
		t.Error("a certificate without its key: no error")
	}
	if _, err := Start(context.Background(), Config{Addr: "127.0.0.1:0", Server: servers[0].URL().String(), Members: servers[0].Members, Key: []byte(secret), TLSCert: keyFile, TLSKey: certFile}); err == nil || !strings.Contains(err.Error(), "TLS") {
		t.Errorf("swapped certificate and key: %v", err)
	}
}

// Bound beyond loopback over plain HTTP, the console warns once at start
// that the token and session travel in the clear.
func TestCleartextWarning(t *testing.T) {
	servers := testcluster.StartInProcess(t, 1, nil)
	certFile, keyFile, _ := selfSigned(t)
	for _, tc := range []struct {
		addr string
		tls  bool
		warn bool
	}{
		{"0.0.0.0:0", false, true},
		{"127.0.0.1:0", false, false},
		{"0.0.0.0:0", true, false},
	} {
		var log testcluster.SyncBuffer
		cfg := Config{Addr: tc.addr, Logger: slog.New(slog.NewTextHandler(&log, nil))}
		if tc.tls {
			cfg.TLSCert, cfg.TLSKey = certFile, keyFile
		}
		c := startConsoleWith(t, servers, cfg)
		do(t, "GET", strings.Replace(c.URL(), "https:", "http:", 1)+"api/info", "", false) // no more warnings for requests
		got := strings.Count(log.String(), "in the clear")
		if (tc.warn && got != 1) || (!tc.warn && got != 0) {
			t.Errorf("%s tls=%v: %d warnings, want warn=%v:\n%s", tc.addr, tc.tls, got, tc.warn, log.String())
		}
		if tc.warn && (!strings.Contains(log.String(), "token") || !strings.Contains(log.String(), "session") || !strings.Contains(log.String(), "level=WARN")) {
			t.Errorf("the warning does not say what travels in the clear: %s", log.String())
		}
	}
}
