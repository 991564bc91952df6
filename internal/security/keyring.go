package security

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/circuit-project/circuit/internal/safefile"
)

// A server's keyring lets a cluster change its key without stopping: a
// server accepts every installed key (preambles, TLS, credentials, gossip)
// and signs, presents and encrypts with the one in use. Rotating from A to
// B is three steps, each on every server before the next (circuit
// keyring): install B, use B, remove A. Between any two steps every server
// accepts what every other sends.
//
// Credentials are certificates of one key's authority: one made under a
// key is refused once that key is removed, and must be made again under
// the new key (circuit cred). The credentials a server made for its running
// processes are made again under the new key when it comes into use.

// ID is the key's fingerprint: 16 hex digits of a hash of its secret,
// which tells keys apart without revealing them.
func (k *Key) ID() string {
	sum := sha256.Sum256(append([]byte("circuit key id "), k.secret...))
	return hex.EncodeToString(sum[:8])
}

// Text is the key's secret in the text form of key files.
func (k *Key) Text() string { return string(k.secret) }

// Ring is a server's installed keys and the one in use. A nil *Ring is a
// server without a key.
type Ring struct {
	path string // where it is kept (-var/keyring), or ""

	mu   sync.RWMutex
	keys []*Key // installed, in the order installed
	use  *Key
	pool *x509.CertPool // every installed key's authority
	// watch, if set, is told after every change, outside mu.
	watch func()
}

// ringFile is the keyring file's form.
type ringFile struct {
	Use  string   // the ID of the key in use
	Keys []string // every installed key's text
}

// ErrKeyring is wrapped by refusals of keyring changes (removing the key
// in use, using a key not installed).
var ErrKeyring = errors.New("keyring")

// OpenRing returns the keyring of a server started with key (-hmac): the one
// kept in dir (its -var) if there is one there, else key alone. dir ""
// keeps it in memory only. A ring kept in dir that lacks key wins (the key
// was removed from it); warning says so, for the server's log.
func OpenRing(dir string, key *Key) (r *Ring, warning string, err error) {
	if key == nil {
		return nil, "", nil
	}
	r = &Ring{keys: []*Key{key}, use: key}
	if dir != "" {
		r.path = filepath.Join(dir, "keyring")
		switch b, rerr := os.ReadFile(r.path); {
		case errors.Is(rerr, os.ErrNotExist):
		case rerr != nil:
			return nil, "", fmt.Errorf("reading the keyring: %w", rerr)
		default:
			if err := r.load(b); err != nil {
				return nil, "", fmt.Errorf("the keyring %s: %w", r.path, err)
			}
			if r.find(key.ID()) == nil {
				warning = fmt.Sprintf("the key given to the server (%s) is not in the keyring kept in %s, which was changed by circuit keyring: the ring's keys are used, %s in use", key.ID(), r.path, r.use.ID())
			}
		}
	}
	r.reindex()
	return r, warning, nil
}

func (r *Ring) load(b []byte) error {
	var f ringFile
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	var keys []*Key
	for _, t := range f.Keys {
		k, err := New([]byte(t))
		if err != nil {
			return err
		}
		keys = append(keys, k)
	}
	r.keys = keys
	if r.use = r.find(f.Use); r.use == nil {
		return fmt.Errorf("the key in use, %s, is not installed", f.Use)
	}
	return nil
}

// find returns the installed key with the given ID; the caller holds mu
// (or owns r).
func (r *Ring) find(id string) *Key {
	for _, k := range r.keys {
		if k.ID() == id {
			return k
		}
	}
	return nil
}

// reindex rebuilds the pool of authorities; the caller holds mu.
func (r *Ring) reindex() {
	r.pool = x509.NewCertPool()
	for _, k := range r.keys {
		r.pool.AddCert(k.ca)
	}
}

// Watch sets the function told after every change.
func (r *Ring) Watch(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.watch = f
}

// Use returns the key in use: the one that signs, presents and encrypts.
func (r *Ring) Use() *Key {
	if r == nil {
		return nil
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.use
}

// Keys returns the installed keys, the one in use first.
func (r *Ring) Keys() []*Key {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := []*Key{r.use}
	for _, k := range r.keys {
		if k != r.use {
			out = append(out, k)
		}
	}
	return out
}

// Auth is what the server dials other servers with: the key in use.
func (r *Ring) Auth() Auth { return r.Use().Auth() }

// AcceptMAC returns the installed key under which tag is b's preamble tag,
// or nil.
func (r *Ring) AcceptMAC(b, tag []byte) *Key {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, k := range r.keys {
		if k.VerifyMAC(b, tag) {
			return k
		}
	}
	return nil
}

// AcceptCredential verifies a credential (its certificate der, and its
// signature sig over msg) against the installed key whose authority made
// it, and returns its claims and that key.
func (r *Ring) AcceptCredential(der, msg, sig []byte) (Claims, *Key, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return Claims{}, nil, fmt.Errorf("%w: %v", ErrNotACredential, err)
	}
	r.mu.RLock()
	keys := slices.Clone(r.keys)
	r.mu.RUnlock()
	var last error
	for _, k := range keys {
		if !slices.Equal(cert.AuthorityKeyId, k.ca.SubjectKeyId) {
			continue
		}
		claims, err := k.Verify(der, msg, sig)
		if err == nil {
			return claims, k, nil
		}
		last = err
	}
	if last == nil {
		claims, _ := claimsOf(cert)
		last = fmt.Errorf("credential %s (%s) is not one of this cluster's, or was made under a key since removed: %w", claims.ID, claims.Name, ErrKeyMismatch)
	}
	return Claims{}, nil, last
}

// ServerTLS is the accepting side's TLS configuration for a connection
// whose preamble was made under k (AcceptMAC, AcceptCredential): it
// presents k's certificate, which that dialler trusts, and accepts a
// client certificate of any installed authority.
func (r *Ring) ServerTLS(k *Key) *tls.Config {
	r.mu.RLock()
	pool := r.pool
	r.mu.RUnlock()
	cfg := k.ServerTLS()
	cfg.ClientCAs = pool
	return cfg
}

// KeyInfo describes an installed key.
type KeyInfo struct {
	ID    string
	InUse bool
}

// List describes the installed keys, the one in use first.
func (r *Ring) List() []KeyInfo {
	var out []KeyInfo
	for i, k := range r.Keys() {
		out = append(out, KeyInfo{ID: k.ID(), InUse: i == 0})
	}
	return out
}

// Install adds a key; it reports whether the key is new.
func (r *Ring) Install(k *Key) (bool, error) {
	return r.change(func() (bool, error) {
		if r.find(k.ID()) != nil {
			return false, nil
		}
		r.keys = append(r.keys, k)
		return true, nil
	})
}

// UseKey makes the installed key with the given ID the one in use; it
// reports whether that changed anything.
func (r *Ring) UseKey(id string) (bool, error) {
	return r.change(func() (bool, error) {
		k := r.find(id)
		if k == nil {
			return false, fmt.Errorf("%w: key %s is not installed here: install it first (circuit keyring -install FILE)", ErrKeyring, id)
		}
		if k == r.use {
			return false, nil
		}
		r.use = k
		return true, nil
	})
}

// Remove uninstalls the key with the given ID, which must not be in use; it
// reports whether the key was installed.
func (r *Ring) Remove(id string) (bool, error) {
	return r.change(func() (bool, error) {
		k := r.find(id)
		switch {
		case k == nil:
			return false, nil
		case k == r.use:
			return false, fmt.Errorf("%w: key %s is in use here: use another first (circuit keyring -use FILE)", ErrKeyring, id)
		}
		r.keys = slices.DeleteFunc(r.keys, func(x *Key) bool { return x == k })
		return true, nil
	})
}

// change applies f under mu and, if it changed the ring, keeps the ring in
// its file and tells the watcher.
func (r *Ring) change(f func() (bool, error)) (bool, error) {
	r.mu.Lock()
	changed, err := f()
	if !changed || err != nil {
		r.mu.Unlock()
		return false, err
	}
	r.reindex()
	err = r.save()
	watch := r.watch
	r.mu.Unlock()
	if watch != nil {
		watch()
	}
	return true, err
}

// save writes the ring whole, synced, mode 600; the caller holds mu.
func (r *Ring) save() error {
	if r.path == "" {
		return nil
	}
	f := ringFile{Use: r.use.ID()}
	for _, k := range r.keys {
		f.Keys = append(f.Keys, k.Text())
	}
	b, _ := json.MarshalIndent(f, "", "  ")
	if err := safefile.Write(r.path, b, 0o600); err != nil {
		return fmt.Errorf("keeping the keyring: %w", err)
	}
	return nil
}
