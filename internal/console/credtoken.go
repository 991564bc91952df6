package console

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/circuit-project/circuit/internal/op"
	"github.com/circuit-project/circuit/internal/security"
)

// A credential's console token lets its holder log in to a console with
// the credential's role, without giving the console the credential: it is
// the credential's certificate, an expiry, and the credential's signature
// over both, so a console verifies it against its server's keys alone and
// learns nothing that would let it act as the holder elsewhere.
//
//	cred1.<certificate>.<expiry, unix seconds, 8 bytes big-endian>.<signature>
//
// each part in unpadded base64url.
const credTokenPrefix = "cred1."

// credTokenLabel starts what a credential's console token signs.
const credTokenLabel = "circuit console token v1\x00"

// MaxCredTokenLife bounds how long a credential's console token lasts.
const MaxCredTokenLife = 30 * 24 * time.Hour

// CredentialToken makes a console token for the credential, valid for life
// (at most MaxCredTokenLife, and no longer than the credential).
func CredentialToken(c *security.Credential, life time.Duration) (string, error) {
	if life <= 0 || life > MaxCredTokenLife {
		return "", fmt.Errorf("a console token lasts more than 0 and at most %v, not %v", MaxCredTokenLife, life)
	}
	until := time.Now().Add(life)
	if na := c.Claims().NotAfter; until.After(na) {
		until = na
	}
	exp := binary.BigEndian.AppendUint64(nil, uint64(until.Unix()))
	sig := c.Sign(credTokenSigned(c.DER(), exp))
	enc := base64.RawURLEncoding.EncodeToString
	return credTokenPrefix + enc(c.DER()) + "." + enc(exp) + "." + enc(sig), nil
}

func credTokenSigned(der, exp []byte) []byte {
	return append(append([]byte(credTokenLabel), der...), exp...)
}

// grant is what a console session may do, and whose it is.
type grant struct {
	who   string // "key", or a credential's name and ID
	write bool   // its role allows the console's writes (operate or more)
}

// credGrant checks a credential's console token against the server's keys
// and its Admit (revocation), and returns what its session may do.
func (c *Console) credGrant(t string) (grant, error) {
	if c.cfg.Ring == nil {
		return grant{}, errors.New("this console's server has no keyring")
	}
	parts := strings.Split(strings.TrimPrefix(t, credTokenPrefix), ".")
	if len(parts) != 3 {
		return grant{}, errors.New("not a console token")
	}
	var raw [3][]byte
	for i, p := range parts {
		b, err := base64.RawURLEncoding.Strict().DecodeString(p)
		if err != nil {
			return grant{}, errors.New("not a console token")
		}
		raw[i] = b
	}
	der, exp, sig := raw[0], raw[1], raw[2]
	if len(exp) != 8 {
		return grant{}, errors.New("not a console token")
	}
	if until := time.Unix(int64(binary.BigEndian.Uint64(exp)), 0); time.Now().After(until) {
		return grant{}, fmt.Errorf("the console token expired at %s", until.UTC().Format(time.RFC3339))
	}
	claims, _, err := c.cfg.Ring.AcceptCredential(der, credTokenSigned(der, exp), sig)
	if err != nil {
		return grant{}, err
	}
	if c.cfg.Admit != nil {
		if err := c.cfg.Admit(claims); err != nil {
			return grant{}, err
		}
	}
	if claims.Selector != "" || claims.Path != "" {
		// The console shows the whole cluster, which such a credential
		// may not see.
		return grant{}, fmt.Errorf("credential %s (%s) is limited to some servers or a subtree (-l, -path), and the console shows the whole cluster: use circuit with it instead", claims.ID, claims.Name)
	}
	role, _ := op.ParseRole(claims.Role)
	if role < op.Read {
		return grant{}, fmt.Errorf("credential %s (%s) has no role that may read", claims.ID, claims.Name)
	}
	return grant{who: claims.Name + " (credential " + claims.ID + ")", write: role >= op.Operate}, nil
}

// grantKey is the context key of a request's grant.
type grantKey struct{}

// grantOf is the grant of the session a request came with.
func grantOf(r *http.Request) grant {
	g, _ := r.Context().Value(grantKey{}).(grant)
	return g
}

// writable tells whether the request may change the cluster: the console
// allows writes (-http-write) and its session's role does.
func (c *Console) writable(r *http.Request) bool { return c.cfg.Write && grantOf(r).write }
