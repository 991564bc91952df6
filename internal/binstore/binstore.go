// Package binstore owns a server's store of program binaries, addressed by
// their SHA-256 digest: circuit.Spawn uploads the spawning program once per
// server, and every worker of that program starts from the stored copy.
//
// A binary enters the store only whole and verified: it is written to a
// temporary file, hashed as it arrives, and renamed to its digest only when
// the declared size and digest both match. A cut-short or corrupt upload
// leaves nothing behind. With -var DIR the store is DIR/bin and survives
// restarts; without, it is a temporary directory removed when the server
// stops.
package binstore

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// MaxSize is the largest binary the store accepts.
const MaxSize = 1 << 30

var (
	// ErrBadDigest is wrapped when a digest is not 64 lower-case hex digits.
	ErrBadDigest = errors.New("bad SHA-256 digest")
	// ErrCutShort is wrapped when an upload ends before its declared size.
	ErrCutShort = errors.New("upload cut short")
	// ErrMismatch is wrapped when the bytes do not hash to the declared
	// digest, or exceed the declared size.
	ErrMismatch = errors.New("upload does not match its digest")
)

// Store is a directory of binaries named by digest. It is safe for
// concurrent use; concurrent uploads of one binary both succeed.
type Store struct {
	dir  string // "" until made, for a temporary store
	temp bool

	mu sync.Mutex
}

// Open returns the store in dir, or a temporary one when dir is "". The
// directory is made on first use. Stored paths are absolute, since
// processes start from them in any working directory.
func Open(dir string) *Store {
	if dir != "" {
		if abs, err := filepath.Abs(dir); err == nil {
			dir = abs
		}
	}
	return &Store{dir: dir, temp: dir == ""}
}

// CheckDigest checks the form of a hex SHA-256 digest.
func CheckDigest(sum string) error {
	if len(sum) != 2*sha256.Size {
		return fmt.Errorf("%w %q: want 64 hex digits", ErrBadDigest, sum)
	}
	for _, r := range sum {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
			return fmt.Errorf("%w %q: want lower-case hex digits", ErrBadDigest, sum)
		}
	}
	return nil
}

func (s *Store) root(create bool) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dir != "" && !create {
		return s.dir, nil
	}
	switch {
	case s.temp && s.dir == "":
		if !create {
			return "", nil
		}
		d, err := os.MkdirTemp("", "circuit-bin-")
		if err != nil {
			return "", fmt.Errorf("binary store: %w", err)
		}
		s.dir = d
	case create:
		if err := os.MkdirAll(s.dir, 0o700); err != nil {
			return "", fmt.Errorf("binary store: %w", err)
		}
	}
	return s.dir, nil
}

// Stat returns the path and size of the stored binary with the digest, and
// whether it is stored.
func (s *Store) Stat(sum string) (path string, size int64, ok bool, err error) {
	if err := CheckDigest(sum); err != nil {
		return "", 0, false, err
	}
	dir, err := s.root(false)
	if err != nil || dir == "" {
		return "", 0, false, err
	}
	path = filepath.Join(dir, sum)
	fi, err := os.Stat(path)
	if err != nil {
		return path, 0, false, nil
	}
	return path, fi.Size(), fi.Mode().IsRegular(), nil
}

// Put stores the binary read from r, which must be exactly size bytes
// hashing to sum, and returns its path.
func (s *Store) Put(sum string, size int64, r io.Reader) (string, error) {
	if err := CheckDigest(sum); err != nil {
		return "", err
	}
	if size <= 0 || size > MaxSize {
		return "", fmt.Errorf("binary %s: size %d, want 1 to %d bytes", sum[:12], size, int64(MaxSize))
	}
	dir, err := s.root(true)
	if err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, ".upload-*")
	if err != nil {
		return "", fmt.Errorf("binary store: %w", err)
	}
	kept := false
	defer func() {
		if !kept {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(r, size+1))
	switch {
	case n > size:
		return "", fmt.Errorf("binary %s: %w: more than the declared %d bytes", sum[:12], ErrMismatch, size)
	case n < size && err != nil:
		return "", fmt.Errorf("binary %s: %w: %d of %d bytes arrived: %w", sum[:12], ErrCutShort, n, size, err)
	case n < size:
		return "", fmt.Errorf("binary %s: %w: %d of %d bytes arrived", sum[:12], ErrCutShort, n, size)
	case err != nil:
		return "", fmt.Errorf("binary %s: %w", sum[:12], err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return "", fmt.Errorf("binary %s: %w: the bytes hash to %s", sum[:12], ErrMismatch, got)
	}
	if err := tmp.Chmod(0o755); err != nil {
		return "", fmt.Errorf("binary store: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("binary store: %w", err)
	}
	path := filepath.Join(dir, sum)
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("binary store: %w", err)
	}
	kept = true
	return path, nil
}

// Close removes a temporary store.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.temp && s.dir != "" {
		err := os.RemoveAll(s.dir)
		s.dir = ""
		return err
	}
	return nil
}
