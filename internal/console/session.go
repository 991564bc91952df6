package console

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"sync"
	"time"
)

// Sessions: the token is given once (POST /login, or a first GET with
// ?token=) and exchanged for a random session ID, which the cookie holds.
const (
	// maxSessions bounds the session table; the least recently used
	// session is evicted to make room.
	maxSessions = 1024
	// sessionIdle is how long a session lives without a request.
	sessionIdle = 12 * time.Hour
	// sessionIDLen is the number of random bytes of a session ID.
	sessionIDLen = 32
)

// sessions is the console's table of logged-in browsers, in memory only:
// a restarted console asks for the token again. It is keyed by the SHA-256
// of the ID, so that a lookup's timing says nothing about the IDs held.
type sessions struct {
	mu   sync.Mutex
	max  int
	idle time.Duration
	now  func() time.Time
	last map[[sha256.Size]byte]session
}

// session is one logged-in browser: when it was last used, and what it may do.
type session struct {
	at time.Time
	g  grant
}

func newSessions() *sessions {
	return &sessions{max: maxSessions, idle: sessionIdle, now: time.Now, last: map[[sha256.Size]byte]session{}}
}

// create makes a new session with grant g and returns its ID.
func (s *sessions) create(g grant) (string, error) {
	b := make([]byte, sessionIDLen)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("making a session ID: %w", err)
	}
	id := base64.RawURLEncoding.EncodeToString(b)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for h, e := range s.last {
		if now.Sub(e.at) > s.idle {
			delete(s.last, h)
		}
	}
	for len(s.last) >= s.max {
		var oldest [sha256.Size]byte
		var at time.Time
		first := true
		for h, e := range s.last {
			if first || e.at.Before(at) {
				oldest, at, first = h, e.at, false
			}
		}
		delete(s.last, oldest)
	}
	s.last[sha256.Sum256([]byte(id))] = session{at: now, g: g}
	return id, nil
}

// valid returns the grant of the live session id, and marks it used.
func (s *sessions) valid(id string) (grant, bool) {
	if id == "" {
		return grant{}, false
	}
	h := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.last[h]
	if !ok {
		return grant{}, false
	}
	now := s.now()
	if now.Sub(e.at) > s.idle {
		delete(s.last, h)
		return grant{}, false
	}
	e.at = now
	s.last[h] = e
	return e.g, true
}

// len is the number of sessions held (expired ones included until pruned).
func (s *sessions) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.last)
}
