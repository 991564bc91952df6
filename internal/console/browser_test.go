package console

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/circuit-project/circuit/internal/testsupport"
	"github.com/circuit-project/circuit/internal/testsupport/build"
	"github.com/circuit-project/circuit/internal/testsupport/testcluster"
)

func TestMain(m *testing.M) { build.Main(m) }

// chromium finds a Chromium to drive. Without one the browser tests skip,
// except under CI=true, where they fail.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium on $PATH (apt-get install chromium), and CI=true")
	}
	t.Skip("no chromium on $PATH (apt-get install chromium)")
	return ""
}

var consoleLine = regexp.MustCompile(`console: (https?://\S+)`)

// consoleURL waits for the console's URL on a server's standard error.
func consoleURL(t *testing.T, p *testcluster.Proc) string {
	t.Helper()
	var u string
	testsupport.Eventually(t, 20*time.Second, func() error {
		log := p.Stderr()
		m := consoleLine.FindStringSubmatch(log)
		if m == nil {
			return fmt.Errorf("server %s printed no console URL:\n%s", p.ID, log)
		}
		u = m[1]
		return nil
	})
	return u
}

// browser starts a headless Chromium for the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox, // as root, Chromium refuses to start otherwise
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 1000),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// step runs browser actions within limit, failing the test with what.
func step(t *testing.T, ctx context.Context, limit time.Duration, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		shot(t, ctx, "failed-"+strings.ReplaceAll(what, " ", "-"))
		t.Fatalf("%s: %v", what, err)
	}
}

// shot saves a screenshot of the whole page in the test's temporary
// directory, or in $CIRCUIT_TEST_SCREENSHOTS when set (to keep them).
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	dir := os.Getenv("CIRCUIT_TEST_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	path := filepath.Join(dir, t.Name()+"-"+name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// text reads the text of the element sel.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(sctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// poll waits, within the step's limit, until the JavaScript expression is
// true in the page.
func poll(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(0))
}

// has is a JavaScript expression: the element sel exists and its text
// holds want.
func has(sel, want string) string {
	return fmt.Sprintf(`document.querySelector(%q) !== null && document.querySelector(%q).textContent.includes(%q)`, sel, sel, want)
}

func row(id string) string { return fmt.Sprintf(`#members tr[data-id="%s"]`, id) }

// TestBrowser drives the console in a real headless Chromium: the servers
// appear, a process started from the command line shows its output, and a
// server killed with kill -9 turns failed and then leaves the page.
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers and a browser")
	}
	ctx := browser(t)
	c := testcluster.Start(t, 0, testcluster.Options{Local: true})
	first := c.StartServer("-http", "127.0.0.1:0")
	second := c.StartServer("-j", first.URL)
	third := c.StartServer("-j", first.URL)
	c.WaitMembers(3)
	u := consoleURL(t, first)
	t.Logf("console at %s", u)

	step(t, ctx, 30*time.Second, "servers appear",
		chromedp.Navigate(u),
		chromedp.WaitVisible(chromedp.CSS(row(first.ID)+` .health[data-health="alive"]`)),
		chromedp.WaitVisible(chromedp.CSS(row(second.ID)+` .health[data-health="alive"]`)),
		chromedp.WaitVisible(chromedp.CSS(row(third.ID)+` .health[data-health="alive"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#status.live`)),
	)
	if mode := text(t, ctx, `#mode`); mode != "read-only" {
		t.Errorf("mode %q, want read-only", mode)
	}
	shot(t, ctx, "1-members")

	// A process started from the command line, on the second server.
	path := "/" + second.ID + "/hello"
	const line = "hello from the console test"
	r := c.RunVia(first, `{"Path": "/bin/sh", "Args": ["-c", "echo '`+line+`'; echo 'to stderr' >&2; exec /bin/sleep 120"]}`, "mkproc", path)
	if r.Code != 0 {
		t.Fatalf("mkproc: %d %s", r.Code, r.Stderr)
	}
	t.Cleanup(func() { c.Run("scrub", path) }) // before the servers are killed
	server := `#tree li[data-path="/` + second.ID + `"]`
	element := `#tree li[data-path="` + path + `"]`
	// A read-only console shows the process's peek, not its output, and
	// leaves the output to its reader.
	step(t, ctx, 30*time.Second, "the process appears without its output",
		chromedp.Click(chromedp.CSS(server+` > .toggle`)),
		chromedp.WaitVisible(chromedp.CSS(element+` > .name`)),
		chromedp.Click(chromedp.CSS(element+` > .name`)),
		chromedp.WaitVisible(chromedp.CSS(`#detail-kind`)),
		chromedp.WaitVisible(chromedp.CSS(`#output-hidden`)),
		chromedp.WaitNotPresent(chromedp.CSS(`#stdout`)),
	)
	kind, peek := text(t, ctx, `#detail-kind`), text(t, ctx, `#peek`)
	if kind != "proc" || !strings.Contains(peek, `"Phase": "running"`) || !strings.Contains(peek, `"/bin/sh"`) {
		t.Errorf("kind %q, peek %s", kind, peek)
	}
	shot(t, ctx, "2-process")
	for name, want := range map[string]string{"stdout": line + "\n", "stderr": "to stderr\n"} {
		sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		conn, err := c.Client(first).OpenStreamAt(sctx, path, name)
		if err != nil {
			cancel()
			t.Fatalf("%s after the page showed the process: %v", name, err)
		}
		conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		got := make([]byte, len(want))
		_, err = io.ReadFull(conn, got)
		conn.Close()
		cancel()
		if err != nil || string(got) != want {
			t.Fatalf("%s after the page showed the process: %q, %v; want %q", name, got, err, want)
		}
	}

	// kill -9 the third server: failed, then gone from the page.
	third.Kill()
	step(t, ctx, 30*time.Second, "the killed server turns failed",
		chromedp.WaitVisible(chromedp.CSS(row(third.ID)+`.health-failed .health[data-health="failed"]`)),
	)
	shot(t, ctx, "3-failed")
	step(t, ctx, DefaultFailedFor+15*time.Second, "the failed server disappears",
		chromedp.WaitNotPresent(chromedp.CSS(row(third.ID))),
		chromedp.WaitNotPresent(chromedp.CSS(`#tree li[data-path="/`+third.ID+`"]`)),
	)
	step(t, ctx, 10*time.Second, "the others stay",
		chromedp.WaitVisible(chromedp.CSS(row(first.ID)+` .health[data-health="alive"]`)),
		chromedp.WaitVisible(chromedp.CSS(row(second.ID)+` .health[data-health="alive"]`)),
	)
	shot(t, ctx, "4-gone")

	// The console refuses writes: it was started without -http-write.
	resp, err := http.Post(u+"api/scrub", "application/json", strings.NewReader(`{"Path": "`+path+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("scrub through a read-only console: %d", resp.StatusCode)
	}
}

// TestBrowserKeyed starts a keyed server with a writable console: nothing
// without the token (plain HTTP), the login page takes the token that
// circuit console-token prints, and a process started from the page's form
// shows its output.
func TestBrowserKeyed(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers and a browser")
	}
	ctx := browser(t)
	c := testcluster.Start(t, 0, testcluster.Options{Local: true, Key: true})
	p := c.StartServer("-http", "127.0.0.1:0", "-http-write")
	u := consoleURL(t, p)

	for _, path := range []string{"", "api/info", "api/events", "api/list?path=/"} {
		resp, err := http.Get(u + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET /%s without the token: %d", path, resp.StatusCode)
		}
	}
	r := c.RunEnv(nil, "", "console-token")
	if r.Code != 0 {
		t.Fatalf("console-token: %d %s", r.Code, r.Stderr)
	}
	token := strings.TrimSpace(r.Stdout)
	if r := c.RunEnv([]string{"CIRCUIT_HMAC="}, "", "console-token"); r.Code != 2 || !strings.Contains(r.Stderr, "circuit console-token: no cluster key") {
		t.Errorf("console-token without a key: %d %s", r.Code, r.Stderr)
	}

	path := "/" + p.ID + "/web"
	const line = "started from the page"
	// The refused page has #refused, which the first one has not: waiting
	// for it waits for the navigation, so that nothing below touches a
	// field of the page being replaced.
	step(t, ctx, 30*time.Second, "a wrong token is refused",
		chromedp.Navigate(u),
		chromedp.WaitVisible(chromedp.CSS(`#token`)),
		chromedp.SendKeys(chromedp.CSS(`#token`), "wrong"),
		chromedp.Submit(chromedp.CSS(`#token`)),
		chromedp.WaitVisible(chromedp.CSS(`#refused`)),
	)
	step(t, ctx, 30*time.Second, "log in",
		chromedp.WaitVisible(chromedp.CSS(`#token`)),
		chromedp.SetValue(chromedp.CSS(`#token`), token),
		chromedp.Submit(chromedp.CSS(`#token`)),
		chromedp.WaitVisible(chromedp.CSS(row(p.ID)+` .health[data-health="alive"]`)),
	)
	// ?token= leaves the address at once; the page works on the session.
	step(t, ctx, 30*time.Second, "?token= leaves the address",
		chromedp.Navigate(u+"?token="+token+"&x=1"),
		chromedp.WaitVisible(chromedp.CSS(row(p.ID)+` .health[data-health="alive"]`)),
	)
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	href, err := chromedp.Run(lctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	cookie, err := chromedp.Run(lctx, chromedp.Evaluate[string](`document.cookie`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(href, token) || strings.Contains(href, "token=") || !strings.HasSuffix(href, "/?x=1") {
		t.Errorf("the address after ?token=: %s", href)
	}
	if cookie != "" {
		t.Errorf("the page's script sees the cookie %q, want it HttpOnly", cookie)
	}
	step(t, ctx, 30*time.Second, "mkproc from the page",
		chromedp.WaitVisible(chromedp.CSS(`#mkproc-submit`)),
		chromedp.SetValue(chromedp.CSS(`#mkproc-path`), path),
		chromedp.SetValue(chromedp.CSS(`#mkproc-command`), `/bin/sh -c "echo '`+line+`'; exec /bin/sleep 120"`),
		chromedp.Click(chromedp.CSS(`#mkproc-submit`)),
		chromedp.WaitVisible(chromedp.CSS(`#stdout-take`)),
		chromedp.Click(chromedp.CSS(`#stdout-take`)),
		poll(has(`#stdout`, line)),
	)
	shot(t, ctx, "keyed-mkproc")
	if r := c.Run("peek", path); r.Code != 0 || !strings.Contains(r.Stdout, `"running"`) {
		t.Fatalf("peek %s from the command line: %d %s %s", path, r.Code, r.Stdout, r.Stderr)
	}
	// Signal from the page: the process dies of TERM.
	step(t, ctx, 30*time.Second, "signal from the page",
		chromedp.SetValue(chromedp.CSS(`#signal-name`), "TERM"),
		chromedp.Click(chromedp.CSS(`#signal`)),
		poll(has(`#peek`, `"Signal": "TERM"`)),
	)
	if r := c.Run("peek", path); !strings.Contains(r.Stdout, `"exited"`) {
		t.Fatalf("after the page's signal: %s %s", r.Stdout, r.Stderr)
	}
	c.Run("scrub", path)
}

// TestStartFlags runs circuit start with the console's flags: -http-tls
// serves it over HTTPS, -http-host adds a name it answers to, and a
// console beyond loopback over plain HTTP warns on standard error.
func TestStartFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	c := testcluster.Start(t, 0, testcluster.Options{Local: true, Key: true})
	certFile, keyFile, cert := selfSigned(t)
	p := c.StartServer("-http", "127.0.0.1:0", "-http-tls", certFile+","+keyFile, "-http-host", "console.example, other.example")
	u := consoleURL(t, p)
	if !strings.HasPrefix(u, "https://127.0.0.1:") {
		t.Fatalf("console URL %s, want https", u)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer hc.CloseIdleConnections()
	r := c.RunEnv(nil, "", "console-token")
	if r.Code != 0 {
		t.Fatalf("console-token: %d %s", r.Code, r.Stderr)
	}
	token := strings.TrimSpace(r.Stdout)
	a := doWith(t, hc, "GET", u+"?token="+token, "", nil)
	if a.code != http.StatusSeeOther {
		t.Fatalf("GET ?token= over HTTPS: %d %s", a.code, a.body)
	}
	ck := sessionCookie(t, a, token)
	if !ck.Secure {
		t.Errorf("cookie over HTTPS not Secure: %+v", ck)
	}
	for host, want := range map[string]int{"console.example": 200, "other.example:443": 200, "evil.example": 403} {
		if a := doWith(t, hc, "GET", u+"api/info", "", http.Header{"Host": {host}}, ck); a.code != want {
			t.Errorf("Host %s: %d %s, want %d", host, a.code, a.body, want)
		}
	}
	if strings.Contains(p.Stderr(), "in the clear") {
		t.Errorf("an HTTPS console warned about the clear:\n%s", p.Stderr())
	}

	plain := c.StartServer("-http", "0.0.0.0:0")
	consoleURL(t, plain)
	testsupport.Eventually(t, 10*time.Second, func() error {
		if !strings.Contains(plain.Stderr(), "in the clear") {
			return fmt.Errorf("no warning of a console beyond loopback over plain HTTP:\n%s", plain.Stderr())
		}
		return nil
	})

	for _, args := range [][]string{
		{"start", "-http-tls", certFile + "," + keyFile},
		{"start", "-http-host", "x.example"},
		{"start", "-http", "127.0.0.1:0", "-http-tls", certFile},
	} {
		if r := c.RunEnv(nil, "", args...); r.Code != 2 || !strings.Contains(r.Stderr, "-http") {
			t.Errorf("%q: %d %s, want a usage error", args, r.Code, r.Stderr)
		}
	}
}
