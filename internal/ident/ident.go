// Package ident owns the identity of a circuit server: its ID (X followed by
// 16 hex digits, random at each start) and its URL
// (circuit://HOST:PORT/PID/ID), with their parsing and formatting.
package ident

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// ID identifies one run of one circuit server. The zero ID means "whichever
// server receives this" on the wire and is never a real server's ID.
type ID uint64

// NewID returns a random, non-zero ID.
func NewID() ID {
	for {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			panic(fmt.Sprintf("ident: reading random bytes: %v", err))
		}
		if id := ID(binary.BigEndian.Uint64(b[:])); id != 0 {
			return id
		}
	}
}

// String formats the ID as it appears in anchor paths: X and 16 hex digits.
func (id ID) String() string { return fmt.Sprintf("X%016x", uint64(id)) }

// ErrBadID is wrapped by every ID parsing error.
var ErrBadID = errors.New("malformed server ID")

// ParseID accepts X (or, as in the seed's URLs, Q) followed by exactly 16 hex
// digits, in either case.
func ParseID(s string) (ID, error) {
	if len(s) != 17 || (s[0] != 'X' && s[0] != 'Q' && s[0] != 'x' && s[0] != 'q') {
		return 0, fmt.Errorf("%w %q: want X and 16 hex digits", ErrBadID, s)
	}
	v, err := strconv.ParseUint(s[1:], 16, 64)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("%w %q: want X and 16 hex digits, not all zero", ErrBadID, s)
	}
	return ID(v), nil
}

// URL is the address by which clients and servers reach a server.
type URL struct {
	Addr string // host:port, as advertised
	PID  int    // process ID of the server, informative
	ID   ID     // 0 when the user gave a plain host:port
}

// String formats the URL as circuit://HOST:PORT/PID/ID, or plain host:port
// when the ID is unknown.
func (u URL) String() string {
	if u.ID == 0 {
		return u.Addr
	}
	return fmt.Sprintf("circuit://%s/%d/%s", u.Addr, u.PID, u.ID)
}

// ErrBadURL is wrapped by every URL parsing error.
var ErrBadURL = errors.New("malformed circuit URL")

// ParseURL accepts circuit://HOST:PORT/PID/ID and plain HOST:PORT. Surrounding
// white space is ignored, so a URL read from a file parses as is.
func ParseURL(s string) (URL, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return URL{}, fmt.Errorf("%w: empty", ErrBadURL)
	}
	if !strings.Contains(s, "://") {
		if err := checkHostPort(s); err != nil {
			return URL{}, fmt.Errorf("%w %q: %v", ErrBadURL, s, err)
		}
		return URL{Addr: s}, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return URL{}, fmt.Errorf("%w %q: %v", ErrBadURL, s, err)
	}
	if u.Scheme != "circuit" {
		return URL{}, fmt.Errorf("%w %q: scheme must be circuit://", ErrBadURL, s)
	}
	if err := checkHostPort(u.Host); err != nil {
		return URL{}, fmt.Errorf("%w %q: %v", ErrBadURL, s, err)
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) != 2 || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return URL{}, fmt.Errorf("%w %q: want circuit://HOST:PORT/PID/ID", ErrBadURL, s)
	}
	pid, err := strconv.Atoi(parts[0])
	if err != nil || pid < 0 {
		return URL{}, fmt.Errorf("%w %q: PID %q is not a number", ErrBadURL, s, parts[0])
	}
	id, err := ParseID(parts[1])
	if err != nil {
		return URL{}, fmt.Errorf("%w %q: %v", ErrBadURL, s, err)
	}
	return URL{Addr: u.Host, PID: pid, ID: id}, nil
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return err
	}
	if host == "" {
		return errors.New("missing host")
	}
	p, err := strconv.Atoi(port)
	if err != nil || p <= 0 || p > 65535 {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
}
