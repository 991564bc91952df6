package console

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/security"
	"github.com/circuit-project/circuit/internal/testsupport/testcluster"
)

// TestCredentialTokens: a credential's console token opens a session with
// the credential's role: read gets a read-only console (no writes, no
// output, environments hidden), operate gets the writes that -http-write
// allows; revoked, limited, expired, tampered and foreign tokens are
// refused.
func TestCredentialTokens(t *testing.T) {
	secret := security.Generate()
	key, err := security.New([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	servers := testcluster.StartInProcess(t, 1, key)
	s := servers[0]
	c := startConsoleWith(t, servers, Config{Addr: "127.0.0.1:0", Key: []byte(secret), Write: true, Ring: s.Ring(), Admit: s.Admit})
	id := s.ID().String()
	tokenOf := func(k *security.Key, claims security.Claims, life time.Duration) string {
		t.Helper()
		b, err := k.Mint(claims, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		cred, err := security.ParseCredential(b)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := CredentialToken(cred, life)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	login := func(tok string) (*http.Cookie, answer) {
		t.Helper()
		a := do(t, "POST", c.URL()+"login", "token="+tok, false)
		if a.code != http.StatusSeeOther {
			return nil, a
		}
		return sessionCookie(t, a, tok), a
	}
	mkproc := func(ck *http.Cookie, name string) answer {
		return do(t, "POST", c.URL()+"api/mkproc", `{"Path": "/`+id+`/`+name+`", "Command": "/bin/sleep 30", "Scrub": true}`, true, ck)
	}

	reader, a := login(tokenOf(key, security.Claims{Name: "alice", Role: "read"}, time.Hour))
	if reader == nil {
		t.Fatalf("login with a read credential's token: %d %s", a.code, a.body)
	}
	if a := do(t, "GET", c.URL()+"api/info", "", false, reader); a.code != 200 || !strings.Contains(a.body, `"Write":false`) || !strings.Contains(a.body, `"Who":"alice (credential `) {
		t.Errorf("info for a read session: %d %s", a.code, a.body)
	}
	if a := mkproc(reader, "r"); a.code != http.StatusForbidden || !strings.Contains(a.body, "role read") {
		t.Errorf("mkproc in a read session: %d %s", a.code, a.body)
	}
	operator, a := login(tokenOf(key, security.Claims{Name: "bob", Role: "operate"}, time.Hour))
	if operator == nil {
		t.Fatalf("login with an operate credential's token: %d %s", a.code, a.body)
	}
	if a := mkproc(operator, "o"); a.code != 200 {
		t.Fatalf("mkproc in an operate session: %d %s", a.code, a.body)
	}
	admin, err := client.Connect(context.Background(), client.Options{Addr: s.URL().String(), Key: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	h, err := admin.MakeProcAt(context.Background(), "/"+id+"/e", client.Cmd{Path: "/bin/sleep", Args: []string{"30"}, Env: []string{"SECRET=x"}, Scrub: true})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Signal(context.Background(), "KILL")
	defer admin.ProcAt("/"+id+"/o").Signal(context.Background(), "KILL")
	if a := do(t, "GET", c.URL()+"api/peek?path=/"+id+"/e", "", false, reader); a.code != 200 || strings.Contains(a.body, "SECRET") {
		t.Errorf("a read session's peek shows the environment: %d %s", a.code, a.body)
	}
	if a := do(t, "GET", c.URL()+"api/stream?path=/"+id+"/o&name=stdout", "", false, reader); a.code != http.StatusForbidden {
		t.Errorf("a read session reads output: %d %s", a.code, a.body)
	}

	// Refused: revoked, limited, expired, tampered, another cluster's.
	revokedB, _ := key.Mint(security.Claims{Name: "carol", Role: "admin"}, time.Hour)
	rc, _ := security.ParseCredential(revokedB)
	revokedTok, _ := CredentialToken(rc, time.Hour)
	other, _ := security.New([]byte(security.Generate()))
	good := tokenOf(key, security.Claims{Name: "dave", Role: "read"}, time.Hour)
	// One bit of the signature's first byte flipped: a change of the last
	// characters could touch only the encoding's padding bits.
	cut := strings.LastIndexByte(good, '.')
	sigB, _ := base64.RawURLEncoding.DecodeString(good[cut+1:])
	sigB[0] ^= 1
	tampered := good[:cut+1] + base64.RawURLEncoding.EncodeToString(sigB)
	if tampered == good {
		t.Fatal("the tampered token is the good one")
	}
	// The last character one up: the same bytes in a non-canonical encoding.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	padded := good[:len(good)-1] + string(alphabet[strings.IndexByte(alphabet, good[len(good)-1])+1])
	if _, _, err := admin.Revoke(context.Background(), rc.Claims().ID, "carol", rc.Claims().NotAfter); err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{
		"revoked":            revokedTok,
		"limited by -l":      tokenOf(key, security.Claims{Name: "erin", Role: "read", Selector: "role=db"}, time.Hour),
		"limited by -path":   tokenOf(key, security.Claims{Name: "erin", Role: "read", Path: "/jobs"}, time.Hour),
		"tampered":           tampered,
		"non-canonical":      padded,
		"another cluster's":  tokenOf(other, security.Claims{Name: "mallory", Role: "admin"}, time.Hour),
		"no role":            tokenOf(key, security.Claims{Name: "frank", Role: "none"}, time.Hour),
		"not a token at all": "cred1.abc",
	} {
		if ck, a := login(tok); ck != nil || a.code != http.StatusUnauthorized {
			t.Errorf("%s token: login %d", name, a.code)
		}
	}
	// A token whose expiry has passed, properly signed.
	gb, _ := key.Mint(security.Claims{Name: "gina", Role: "read"}, time.Hour)
	gc, _ := security.ParseCredential(gb)
	exp := binary.BigEndian.AppendUint64(nil, uint64(time.Now().Add(-time.Second).Unix()))
	enc := base64.RawURLEncoding.EncodeToString
	past := credTokenPrefix + enc(gc.DER()) + "." + enc(exp) + "." + enc(gc.Sign(credTokenSigned(gc.DER(), exp)))
	if ck, a := login(past); ck != nil {
		t.Errorf("an expired token: login %d", a.code)
	}
	if _, err := CredentialToken(rc, 31*24*time.Hour); err == nil {
		t.Error("a token of 31 days was made")
	}
}
