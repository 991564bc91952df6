package binstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func digest(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// failingReader returns its bytes, then an error instead of EOF.
type failingReader struct{ r io.Reader }

func (f failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, errors.New("connection reset")
	}
	return n, err
}

func TestPut(t *testing.T) {
	bin := bytes.Repeat([]byte("\x7fELF binary "), 10000)
	sum := digest(bin)
	for _, tc := range []struct {
		name string
		sum  string
		size int64
		r    io.Reader
		want error
	}{
		{"whole", sum, int64(len(bin)), bytes.NewReader(bin), nil},
		{"cut short by EOF", sum, int64(len(bin)), bytes.NewReader(bin[:1000]), ErrCutShort},
		{"cut short by an error", sum, int64(len(bin)), failingReader{bytes.NewReader(bin[:1000])}, ErrCutShort},
		{"corrupt", sum, int64(len(bin)), bytes.NewReader(append([]byte("x"), bin[1:]...)), ErrMismatch},
		{"longer than declared", sum, int64(len(bin)) - 1, bytes.NewReader(bin), ErrMismatch},
		{"bad digest", "abc", int64(len(bin)), bytes.NewReader(bin), ErrBadDigest},
		{"upper-case digest", string(bytes.ToUpper([]byte(sum))), int64(len(bin)), bytes.NewReader(bin), ErrBadDigest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "bin")
			s := Open(dir)
			path, err := s.Put(tc.sum, tc.size, tc.r)
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("Put: %v, want %v", err, tc.want)
				}
				left, _ := os.ReadDir(dir)
				if len(left) != 0 {
					t.Fatalf("a failed upload left %d files", len(left))
				}
				if _, _, ok, _ := s.Stat(sum); ok {
					t.Fatal("a failed upload is stored")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(got, bin) {
				t.Fatalf("stored copy differs: %v", err)
			}
			if fi, _ := os.Stat(path); fi.Mode().Perm()&0o100 == 0 {
				t.Fatalf("stored binary is not executable: %v", fi.Mode())
			}
			if p, size, ok, err := s.Stat(sum); !ok || err != nil || p != path || size != int64(len(bin)) {
				t.Fatalf("Stat = %s, %d, %v, %v", p, size, ok, err)
			}
		})
	}
}

func TestTemporaryStore(t *testing.T) {
	s := Open("")
	if _, _, ok, err := s.Stat(digest(nil)); ok || err != nil {
		t.Fatalf("empty store: %v, %v", ok, err)
	}
	bin := []byte("#!/bin/sh\nexit 0\n")
	path, err := s.Put(digest(bin), int64(len(bin)), bytes.NewReader(bin))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(path)); !os.IsNotExist(err) {
		t.Fatalf("temporary store outlived Close: %v", err)
	}
}
