package e2e

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/circuit-project/circuit/internal/testsupport"
	"github.com/circuit-project/circuit/internal/testsupport/testcluster"
)

// TestConsoleWithCredential: circuit console-token -cred prints a
// credential's token, with which the console of a keyed server opens a
// session of the credential's role: read-only for a read credential,
// writable (with -http-write) for an operate one; a revoked credential's
// token is refused.
func TestConsoleWithCredential(t *testing.T) {
	cl := testcluster.Start(t, 0, testcluster.Options{Key: true})
	s := cl.StartServer("-http", "127.0.0.1:0", "-http-write")
	var base string
	testsupport.Eventually(t, 10*time.Second, func() error {
		m := regexp.MustCompile(`console: (http://127\.0\.0\.1:\d+/)`).FindStringSubmatch(s.Stderr())
		if m == nil {
			return errors.New("the server printed no console address")
		}
		base = m[1]
		return nil
	})
	tokenOf := func(cred string) string {
		t.Helper()
		r := cl.RunEnv([]string{"CIRCUIT_HMAC="}, "", "console-token", "-cred", cred, "-ttl", "1h")
		if r.Code != 0 || !strings.HasPrefix(r.Stdout, "cred1.") {
			t.Fatalf("console-token -cred: %+v", r)
		}
		return strings.TrimSpace(r.Stdout)
	}
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	login := func(token string) (*http.Cookie, int) {
		t.Helper()
		req, _ := http.NewRequest("POST", base+"login", strings.NewReader(url.Values{"token": {token}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", strings.TrimSuffix(base, "/"))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		for _, c := range resp.Cookies() {
			return c, resp.StatusCode
		}
		return nil, resp.StatusCode
	}
	info := func(c *http.Cookie) string {
		t.Helper()
		req, _ := http.NewRequest("GET", base+"api/info", nil)
		req.AddCookie(c)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	reader := credFile(t, cl, "-name", "alice", "-role", "read")
	operator := credFile(t, cl, "-name", "bob", "-role", "operate")
	if c, code := login(tokenOf(reader)); c == nil || !strings.Contains(info(c), `"Write":false`) {
		t.Errorf("a read credential's console: login %d, info %v", code, c)
	}
	if c, code := login(tokenOf(operator)); c == nil || !strings.Contains(info(c), `"Write":true`) {
		t.Errorf("an operate credential's console: login %d", code)
	}
	bobToken := tokenOf(operator)
	if r := cl.Run("revoke", "-d", s.URL, operator); r.Code != 0 {
		t.Fatalf("revoke: %+v", r)
	}
	if c, code := login(bobToken); c != nil || code != http.StatusUnauthorized {
		t.Errorf("a revoked credential's token: login %d", code)
	}
	if r := cl.RunEnv([]string{"CIRCUIT_HMAC="}, "", "console-token", "-cred", reader, "-ttl", "9999h"); r.Code != 2 {
		t.Errorf("console-token -ttl 9999h: %+v; want exit 2", r)
	}
}
