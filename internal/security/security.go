// Package security owns the cluster key and everything derived from it.
//
// A cluster key is a random secret shared by every server and client of a
// cluster (circuit keygen, -hmac FILE, CIRCUIT_HMAC). The key itself never
// crosses the wire. From it, HKDF-SHA256 derives independent subkeys:
//
//   - a deterministic Ed25519 certificate authority: every process makes a
//     short-lived leaf certificate signed by it, and every connection that
//     carries API or stream traffic is TLS 1.3 with both sides verified
//     against that authority;
//   - the MAC key of connection preambles, so a relaying server admits only
//     peers that hold the key;
//   - the AES-256 keys that encrypt gossip packets and streams, one for the
//     pool of a datacenter (LAN) and another for the pool that spans
//     datacenters (WAN), so that packets of one cannot be replayed into the
//     other;
//   - the MAC key of multicast discovery announcements;
//   - the console's token key.
//
// Only a key like keygen's is accepted: 32 random bytes, in base64. A
// password or any shorter secret is refused, since a preamble seen on the
// wire would let its guesses be tested offline.
package security

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strings"
	"sync"
	"time"
)

// KeyLen is the length of a cluster key's secret, in bytes (before its
// base64 encoding).
const KeyLen = 32

// ServerName is the name every leaf certificate carries and every client
// verifies: identity comes from the cluster authority, not from host names.
const ServerName = "circuit"

// leafLife is how long a leaf certificate is valid; leaves are renewed when
// half of it has passed, so a long-running server never presents an expired
// one.
const leafLife = 24 * time.Hour

// Key is a loaded cluster key. A nil *Key means "no key": plaintext traffic.
type Key struct {
	secret      []byte // its text, as key files hold it
	macKey      []byte
	gossipKey   []byte
	wanKey      []byte
	discoverKey []byte
	consoleKey  []byte
	ca          *x509.Certificate
	caKey       ed25519.PrivateKey
	pool        *x509.CertPool

	mu   sync.Mutex
	leaf *tls.Certificate
}

// Generate returns a new random key in the text form that key files hold.
func Generate() string {
	b := make([]byte, KeyLen)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("security: reading random bytes: %v", err))
	}
	return base64.StdEncoding.EncodeToString(b)
}

// Parse makes the key from the contents of a key file. Surrounding white
// space is ignored.
func Parse(contents []byte) (*Key, error) {
	return New(bytes.TrimSpace(contents))
}

// ErrNotAKey is wrapped by the errors about secrets that are not keys
// made by Generate.
var ErrNotAKey = errors.New("not a circuit key")

// New derives everything from secret, the text of a key made by Generate:
// 32 random bytes in base64.
func New(secret []byte) (*Key, error) {
	raw, err := base64.StdEncoding.Strict().DecodeString(string(secret))
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: the key must be 32 random bytes in base64, as circuit keygen makes (a password or other text is refused); make one with: circuit keygen", ErrNotAKey)
	case len(raw) != KeyLen:
		return nil, fmt.Errorf("%w: the key holds %d bytes, want %d random bytes in base64; make one with: circuit keygen", ErrNotAKey, len(raw), KeyLen)
	}
	derive := func(info string, n int) []byte {
		b, err := hkdf.Key(sha256.New, secret, nil, "circuit v1 "+info, n)
		if err != nil {
			panic(fmt.Sprintf("security: hkdf: %v", err)) // only for absurd lengths
		}
		return b
	}
	k := &Key{
		secret:      append([]byte(nil), secret...),
		macKey:      derive("preamble mac", 32),
		gossipKey:   derive("gossip lan aes-256", 32),
		wanKey:      derive("gossip wan aes-256", 32),
		discoverKey: derive("discovery mac", 32),
		consoleKey:  derive("console token", 32),
		caKey:       ed25519.NewKeyFromSeed(derive("ca ed25519 seed", ed25519.SeedSize)),
	}
	pub := k.caKey.Public().(ed25519.PublicKey)
	skid := sha256.Sum256(pub)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "circuit cluster authority"},
		NotBefore:             time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2199, 12, 31, 0, 0, 0, 0, time.UTC),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          skid[:20],
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, k.caKey)
	if err != nil {
		return nil, fmt.Errorf("making cluster authority: %w", err)
	}
	if k.ca, err = x509.ParseCertificate(der); err != nil {
		return nil, fmt.Errorf("parsing cluster authority: %w", err)
	}
	k.pool = x509.NewCertPool()
	k.pool.AddCert(k.ca)
	return k, nil
}

// GossipKey is the AES-256 key of the membership traffic of a server's own
// pool (its datacenter, or the whole cluster without -dc).
func (k *Key) GossipKey() []byte { return k.gossipKey }

// WANGossipKey is the AES-256 key of the pool that spans datacenters.
func (k *Key) WANGossipKey() []byte { return k.wanKey }

// ConsoleKey is the key from which the web console derives its token and
// signs its sessions.
func (k *Key) ConsoleKey() []byte { return k.consoleKey }

// CheckFileMode tells whether the key file at path is private: a key
// readable or writable by group or others is refused by the server (as ssh
// refuses an open private key) and warned about by the CLI.
func CheckFileMode(path string) error { return checkPrivate(path, "key file", "controls the cluster") }

// checkPrivate refuses a file of secrets open to group or others.
func checkPrivate(path, what, power string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if m := fi.Mode().Perm(); m&0o077 != 0 {
		return fmt.Errorf("%s %s is open to group or others (mode %04o): anyone who reads it %s; chmod 600 %s", what, path, m, power, path)
	}
	return nil
}

// DiscoveryKey is the MAC key of multicast discovery packets.
func (k *Key) DiscoveryKey() []byte { return k.discoverKey }

// MAC returns the preamble authentication tag of b.
func (k *Key) MAC(b []byte) []byte {
	m := hmac.New(sha256.New, k.macKey)
	m.Write(b)
	return m.Sum(nil)
}

// VerifyMAC reports whether tag is b's preamble tag, in constant time.
func (k *Key) VerifyMAC(b, tag []byte) bool { return hmac.Equal(k.MAC(b), tag) }

// certificate returns the current leaf, renewing it when half its life has
// passed.
func (k *Key) certificate() (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.leaf != nil && time.Until(k.leaf.Leaf.NotAfter) > leafLife/2 {
		return k.leaf, nil
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("making leaf key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, fmt.Errorf("making leaf serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:   serial,
		Subject:        pkix.Name{CommonName: ServerName},
		DNSNames:       []string{ServerName},
		NotBefore:      now.Add(-time.Hour), // tolerate clocks a little behind
		NotAfter:       now.Add(leafLife),
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		AuthorityKeyId: k.ca.SubjectKeyId,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, k.ca, pub, k.caKey)
	if err != nil {
		return nil, fmt.Errorf("signing leaf certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing leaf certificate: %w", err)
	}
	k.leaf = &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv, Leaf: leaf}
	return k.leaf, nil
}

// ServerTLS is the TLS configuration of the accepting side of a connection.
func (k *Key) ServerTLS() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return k.certificate()
		},
		ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs:  k.pool,
	}
}

// ClientTLS is the TLS configuration of the dialling side of a connection.
func (k *Key) ClientTLS() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return k.certificate()
		},
		RootCAs:    k.pool,
		ServerName: ServerName,
	}
}

// ErrKeyMismatch is wrapped by TLS failures caused by peers whose keys differ.
var ErrKeyMismatch = errors.New("the peer's cluster key differs")

// ExplainTLS turns a TLS handshake failure due to a foreign certificate into
// an error that says so, wrapping ErrKeyMismatch.
func ExplainTLS(err error) error {
	if err == nil {
		return nil
	}
	var unknown x509.UnknownAuthorityError
	if errors.As(err, &unknown) || strings.Contains(err.Error(), "unknown certificate authority") ||
		strings.Contains(err.Error(), "bad certificate") {
		return fmt.Errorf("%w: %v", ErrKeyMismatch, err)
	}
	return err
}
