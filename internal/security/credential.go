package security

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// A credential lets its holder dial into the cluster without the cluster
// key. It is a certificate signed by the cluster authority, for client
// authentication only, with its claims in a URI of the certificate, and
// its private key. Servers keep no state for credentials: any holder of the
// key verifies one against the authority. What a credential cannot do, the
// key can:
//
//   - it cannot mint credentials or certificates (it has no authority key);
//   - it cannot act as a server: its certificate is not good for server
//     authentication, and it opens no gossip connection;
//   - it cannot decrypt gossip, sign discovery announcements, or derive the
//     console's token;
//   - it ends: its certificate expires (a worker's credential is renewed by
//     its server while the worker runs, and no longer).
//
// The form is a certificate rather than a key derived from the cluster key
// and an ID, because a certificate's holder can verify servers without
// being able to impersonate them, and because TLS already checks its
// signature and its expiry on every connection.

// credScheme is the URI scheme of the claims of a credential.
const credScheme = "circuit-cred"

// Claims are what a credential says of its holder.
type Claims struct {
	ID     string // the certificate's serial: 32 hex digits
	Name   string // who holds it: "worker R…" for a worker
	Parent string // whom it was made for: "key", or a credential's name
	Worker string // the worker's ID, for a worker's credential
	Server string // the server that made it, if one did
	// Role is what the holder may do (package op: read, operate, admin).
	Role string
	// Selector, when set, limits the servers it acts on to those whose
	// labels it matches (package label's syntax, as circuit run -l).
	Selector string
	// Path, when set, limits it to one anchor subtree below each server:
	// "/jobs" allows /X…/jobs and everything below it.
	Path string
	// Chain holds the IDs of the credentials this one was made under,
	// its parent's last: a process's credential names its starter's, so
	// that revoking a credential revokes every one made under it.
	Chain    []string
	NotAfter time.Time // when it expires
}

// MaxChain bounds a credential's Chain: a credential made under one whose
// chain is full keeps the newest MaxChain IDs.
const MaxChain = 16

// Lineage is the credential's ID and those of its chain: the IDs whose
// revocation revokes it.
func (c Claims) Lineage() []string { return append([]string{c.ID}, c.Chain...) }

// Under returns the chain of a credential made under c.
func (c Claims) Under() []string {
	chain := append(slices.Clone(c.Chain), c.ID)
	if len(chain) > MaxChain {
		chain = chain[len(chain)-MaxChain:]
	}
	return chain
}

// uri encodes the claims other than ID and NotAfter, which the certificate
// holds itself.
func (c Claims) uri() *url.URL {
	q := url.Values{}
	q.Set("name", c.Name)
	if c.Parent != "" {
		q.Set("parent", c.Parent)
	}
	if c.Worker != "" {
		q.Set("worker", c.Worker)
	}
	if c.Server != "" {
		q.Set("server", c.Server)
	}
	q.Set("role", c.Role)
	if c.Selector != "" {
		q.Set("selector", c.Selector)
	}
	if c.Path != "" {
		q.Set("path", c.Path)
	}
	if len(c.Chain) > 0 {
		q.Set("chain", strings.Join(c.Chain, ","))
	}
	return &url.URL{Scheme: credScheme, Opaque: "v1", RawQuery: q.Encode()}
}

// claimsOf reads the claims of a credential's certificate; ok is false for
// a certificate that is not a credential (a key holder's leaf).
func claimsOf(cert *x509.Certificate) (c Claims, ok bool) {
	for _, u := range cert.URIs {
		if u.Scheme != credScheme || u.Opaque != "v1" {
			continue
		}
		q := u.Query()
		var chain []string
		if v := q.Get("chain"); v != "" {
			chain = strings.Split(v, ",")
		}
		return Claims{
			Chain:    chain,
			ID:       hex.EncodeToString(cert.SerialNumber.Bytes()),
			Name:     q.Get("name"),
			Parent:   q.Get("parent"),
			Worker:   q.Get("worker"),
			Server:   q.Get("server"),
			Role:     q.Get("role"),
			Selector: q.Get("selector"),
			Path:     q.Get("path"),
			NotAfter: cert.NotAfter,
		}, true
	}
	return Claims{}, false
}

// MaxCredentialLife bounds the life of any credential.
const MaxCredentialLife = 366 * 24 * time.Hour

// Mint makes a credential with the given claims (ID and NotAfter are
// chosen here) valid for life, in the text form of a credential file.
func (k *Key) Mint(c Claims, life time.Duration) ([]byte, error) {
	if c.Name == "" {
		return nil, errors.New("a credential needs a name")
	}
	if life <= 0 || life > MaxCredentialLife {
		return nil, fmt.Errorf("a credential's life must be above 0 and at most %v, not %v", MaxCredentialLife, life)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("making credential key: %w", err)
	}
	serial := make([]byte, 16)
	if _, err := rand.Read(serial); err != nil {
		return nil, fmt.Errorf("making credential serial: %w", err)
	}
	serial[0] |= 0x80 // always 16 bytes, so always 32 hex digits
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:   new(big.Int).SetBytes(serial),
		Subject:        pkix.Name{CommonName: c.Name},
		NotBefore:      now.Add(-time.Hour), // tolerate clocks a little behind
		NotAfter:       now.Add(life),
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:           []*url.URL{c.uri()},
		AuthorityKeyId: k.ca.SubjectKeyId,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, k.ca, pub, k.caKey)
	if err != nil {
		return nil, fmt.Errorf("signing credential: %w", err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encoding credential key: %w", err)
	}
	out := pem.EncodeToMemory(&pem.Block{Type: pemCredential, Bytes: der})
	out = append(out, pem.EncodeToMemory(&pem.Block{Type: pemAuthority, Bytes: k.ca.Raw})...)
	return append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})...), nil
}

const (
	pemCredential = "CIRCUIT CREDENTIAL"
	pemAuthority  = "CIRCUIT AUTHORITY"
)

// ErrNotACredential is wrapped by the errors about files that are not
// credentials made by Mint.
var ErrNotACredential = errors.New("not a circuit credential")

// Credential is a loaded credential: what a client dials in with instead of
// the key.
type Credential struct {
	claims Claims
	cert   tls.Certificate
	priv   ed25519.PrivateKey
	pool   *x509.CertPool // the cluster authority, to verify servers
}

// ParseCredential loads a credential from the contents of its file. It
// checks that the file is whole and signed by the authority it names, and
// that the credential has not expired.
func ParseCredential(contents []byte) (*Credential, error) {
	var leaf, ca *x509.Certificate
	var priv ed25519.PrivateKey
	rest := contents
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		var err error
		switch b.Type {
		case pemCredential:
			leaf, err = x509.ParseCertificate(b.Bytes)
		case pemAuthority:
			ca, err = x509.ParseCertificate(b.Bytes)
		case "PRIVATE KEY":
			var k any
			if k, err = x509.ParsePKCS8PrivateKey(b.Bytes); err == nil {
				var ok bool
				if priv, ok = k.(ed25519.PrivateKey); !ok {
					err = errors.New("the private key is not Ed25519")
				}
			}
		default:
			err = fmt.Errorf("unexpected block %q", b.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrNotACredential, b.Type, err)
		}
	}
	if leaf == nil || ca == nil || priv == nil {
		return nil, fmt.Errorf("%w: a credential file holds a %s, a %s and a PRIVATE KEY block, as circuit makes them", ErrNotACredential, pemCredential, pemAuthority)
	}
	claims, ok := claimsOf(leaf)
	if !ok {
		return nil, fmt.Errorf("%w: its certificate carries no claims", ErrNotACredential)
	}
	if pub, ok := leaf.PublicKey.(ed25519.PublicKey); !ok || !pub.Equal(priv.Public()) {
		return nil, fmt.Errorf("%w: its private key does not match its certificate", ErrNotACredential)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if err := verifyChain(leaf, claims, pool); err != nil {
		if errors.Is(err, errExpired) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", ErrNotACredential, err)
	}
	return &Credential{
		claims: claims,
		cert:   tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: priv, Leaf: leaf},
		priv:   priv,
		pool:   pool,
	}, nil
}

// ReadClaims reads the claims of the credential in a credential file's
// contents without checking it: to name a credential to revoke, which may
// have expired or be another cluster's.
func ReadClaims(contents []byte) (Claims, error) {
	for rest := contents; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return Claims{}, fmt.Errorf("%w: no %s block", ErrNotACredential, pemCredential)
		}
		if b.Type != pemCredential {
			continue
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return Claims{}, fmt.Errorf("%w: %v", ErrNotACredential, err)
		}
		c, ok := claimsOf(cert)
		if !ok {
			return Claims{}, fmt.Errorf("%w: its certificate carries no claims", ErrNotACredential)
		}
		return c, nil
	}
}

// Claims are what the credential says of its holder.
func (c *Credential) Claims() Claims { return c.claims }

// DER is the credential's certificate.
func (c *Credential) DER() []byte { return c.cert.Certificate[0] }

// Sign signs msg with the credential's private key.
func (c *Credential) Sign(msg []byte) []byte { return ed25519.Sign(c.priv, msg) }

// ClientTLS is the TLS configuration of a connection dialled with the
// credential.
func (c *Credential) ClientTLS() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{c.cert},
		RootCAs:      c.pool,
		ServerName:   ServerName,
	}
}

// Verify checks a credential's certificate (DER) against the cluster
// authority and the signature sig over msg made with it, and returns its
// claims.
func (k *Key) Verify(der, msg, sig []byte) (Claims, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %v", ErrNotACredential, err)
	}
	claims, err := k.CheckCredential(cert)
	if err != nil {
		return Claims{}, err
	}
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok || !ed25519.Verify(pub, msg, sig) {
		return Claims{}, fmt.Errorf("the signature of credential %s (%s) does not verify (or was made for another connection)", claims.ID, claims.Name)
	}
	return claims, nil
}

// AcceptMAC returns k if tag is b's preamble tag under it, else nil (a key
// alone as a wire.Acceptor).
func (k *Key) AcceptMAC(b, tag []byte) *Key {
	if k.VerifyMAC(b, tag) {
		return k
	}
	return nil
}

// AcceptCredential is Verify, naming k as the credential's key.
func (k *Key) AcceptCredential(der, msg, sig []byte) (Claims, *Key, error) {
	c, err := k.Verify(der, msg, sig)
	if err != nil {
		return Claims{}, nil, err
	}
	return c, k, nil
}

// CheckCredential checks that cert is a credential of this cluster, in
// force now, and returns its claims.
func (k *Key) CheckCredential(cert *x509.Certificate) (Claims, error) {
	claims, ok := claimsOf(cert)
	if !ok {
		return Claims{}, fmt.Errorf("%w: its certificate carries no claims", ErrNotACredential)
	}
	if err := verifyChain(cert, claims, k.pool); err != nil {
		if errors.Is(err, errExpired) {
			return Claims{}, err
		}
		return Claims{}, fmt.Errorf("credential %s (%s) is not one of this cluster's: %w", claims.ID, claims.Name, ErrKeyMismatch)
	}
	return claims, nil
}

// errExpired is wrapped by the error about a credential past its end.
var errExpired = errors.New("expired")

// verifyChain checks a credential's certificate against the authority in
// roots, for client authentication. A certificate past its end gets an
// error saying so (wrapping errExpired); any other failure is x509's.
func verifyChain(cert *x509.Certificate, c Claims, roots *x509.CertPool) error {
	_, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil && time.Now().After(cert.NotAfter) {
		return fmt.Errorf("credential %s (%s) %w at %s", c.ID, c.Name, errExpired, cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return err
}

// PeerClaims returns the claims of the credential a TLS peer authenticated
// with; ok is false for a peer that holds the key.
func PeerClaims(cs tls.ConnectionState) (Claims, bool) {
	if len(cs.PeerCertificates) == 0 {
		return Claims{}, false
	}
	return claimsOf(cs.PeerCertificates[0])
}

// CredentialFile is a credential loaded from a file that is read again
// when the credential it held is past half its life, so that a file renewed
// in place (as a worker's is) is picked up.
type CredentialFile struct {
	path string

	mu      sync.Mutex
	cred    *Credential
	checked time.Time
	mod     time.Time // the file's modification time when read
}

// LoadCredentialFile reads the credential at path. The file must not be
// open to group or others, as a key file must not.
func LoadCredentialFile(path string) (*CredentialFile, error) {
	f := &CredentialFile{path: path}
	if fi, err := os.Stat(path); err == nil {
		f.mod = fi.ModTime()
	}
	c, err := f.read()
	if err != nil {
		return nil, err
	}
	f.cred, f.checked = c, time.Now()
	return f, nil
}

func (f *CredentialFile) read() (*Credential, error) {
	if err := checkPrivate(f.path, "credential file", "acts as its holder"); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(f.path)
	if err != nil {
		return nil, fmt.Errorf("credential: %w", err)
	}
	c, err := ParseCredential(b)
	if err != nil {
		return nil, fmt.Errorf("credential %s: %w", f.path, err)
	}
	return c, nil
}

// Current is the credential to dial with now: the file is read again, at
// most once a second, when it changed (its server renewed it, or made it
// again under a new key) or its credential is past half its life.
func (f *CredentialFile) Current() *Credential {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.cred
	if time.Since(f.checked) < time.Second {
		return c
	}
	f.checked = time.Now()
	life := c.cert.Leaf.NotAfter.Sub(c.cert.Leaf.NotBefore)
	fi, err := os.Stat(f.path)
	if err != nil || fi.ModTime().Equal(f.mod) && time.Until(c.cert.Leaf.NotAfter) > life/2 {
		return c
	}
	if n, err := f.read(); err == nil && (!fi.ModTime().Equal(f.mod) || n.cert.Leaf.NotAfter.After(c.cert.Leaf.NotAfter)) {
		f.cred, f.mod = n, fi.ModTime()
	}
	return f.cred
}

// ClientTLS is the TLS configuration of a connection dialled with the
// credential the file holds at the time of the handshake.
func (f *CredentialFile) ClientTLS() *tls.Config {
	cfg := f.Current().ClientTLS()
	cfg.Certificates = nil
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return &f.Current().cert, nil
	}
	return cfg
}

// Signer returns the current credential's certificate and its signing
// function.
func (f *CredentialFile) Signer() (cert []byte, sign func(msg []byte) []byte) {
	c := f.Current()
	return c.DER(), c.Sign
}

// Claims are the claims of the credential the file holds now.
func (f *CredentialFile) Claims() Claims { return f.Current().claims }

// Auth is what a dialler proves itself with: the cluster key (*Key) or a
// credential (*CredentialFile). A nil Auth is no key at all.
type Auth interface {
	// ClientTLS is the TLS configuration of the dialling side.
	ClientTLS() *tls.Config
	// Signer returns how a preamble is proved: with the key, no
	// certificate and a MAC; with a credential, its certificate and its
	// signature.
	Signer() (cert []byte, sign func(msg []byte) []byte)
}

// Signer returns no certificate and the preamble MAC: the key proves
// itself by a MAC under its preamble subkey.
func (k *Key) Signer() (cert []byte, sign func(msg []byte) []byte) { return nil, k.MAC }

// Auth is k as an Auth: nil for a nil key.
func (k *Key) Auth() Auth {
	if k == nil {
		return nil
	}
	return k
}
