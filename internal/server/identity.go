package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/circuit-project/circuit/internal/anchorfs"
	"github.com/circuit-project/circuit/internal/op"
	"github.com/circuit-project/circuit/internal/safefile"
	"github.com/circuit-project/circuit/internal/security"
)

// caller is who asked for an operation: a holder of the cluster key, of a
// credential (claims), or, on a server without a key, anyone.
type caller struct {
	keyed  bool
	claims *security.Claims
	// from is the address the request came from: the original client's,
	// which a relay passes on (wire.Preamble.Origin); via is the relay's.
	from, via string
}

// String names the caller as records and credentials do: "key", "anyone",
// or the credential's name and ID.
func (c caller) String() string {
	switch {
	case c.claims != nil:
		return c.claims.Name + " (credential " + c.claims.ID + ")"
	case c.keyed:
		return "key"
	}
	return "anyone"
}

// name is the caller's name alone, as a credential made for it records its
// parent.
func (c caller) name() string {
	if c.claims != nil {
		return c.claims.Name
	}
	return c.String()
}

// callerInfo carries the caller of an RPC connection to gRPC's handlers.
type callerInfo struct {
	credentials.CommonAuthInfo
	who caller
}

func (callerInfo) AuthType() string { return "circuit" }

// identityCreds hands gRPC the caller that the accept loop authenticated
// (the preamble and TLS are done before gRPC sees a connection).
type identityCreds struct{}

func (identityCreds) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	info := callerInfo{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}}
	if u, ok := c.(*untrackOnClose); ok {
		info.who = u.who
		if u.who.keyed {
			info.SecurityLevel = credentials.PrivacyAndIntegrity
		}
	}
	return c, info, nil
}

func (identityCreds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("circuit servers dial with package wire, not gRPC credentials")
}

func (identityCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "circuit"}
}
func (identityCreds) Clone() credentials.TransportCredentials { return identityCreds{} }
func (identityCreds) OverrideServerName(string) error         { return nil }

// callerOf is the caller of the RPC whose context ctx is.
func callerOf(ctx context.Context) caller {
	if pr, ok := peer.FromContext(ctx); ok {
		if info, ok := pr.AuthInfo.(callerInfo); ok {
			return info.who
		}
	}
	return caller{}
}

// credLife is how long a process's credential (Cmd.Cred) is valid unless
// Config.CredLife says otherwise. The server writes a new one when a third
// of it has passed, for as long as the process runs.
const credLife = 24 * time.Hour

// credLife is the life of the credentials of this server's processes.
func (s *Server) credLife() time.Duration {
	if s.cfg.CredLife > 0 {
		return s.cfg.CredLife
	}
	return credLife
}

// procCred is a credential the server made for one of its processes.
type procCred struct {
	path string
	make func() ([]byte, error)
	mu   sync.Mutex // one write at a time: renewal, or a new key in use
}

// newProcCred makes a credential for the process to be started at the
// anchor path (its name, elems' last, a worker ID for Spawn's workers) on
// behalf of who, and writes it to a private file. It returns the file's
// environment entry for the process.
func (s *Server) newProcCred(path, name string, who caller) (*procCred, string, error) {
	// The process may do what its starter may, no more, and no longer:
	// the key's holder passes on everything, a credential its role,
	// selector and subtree, and its expiry bounds every renewal.
	claims := security.Claims{Name: "proc " + path, Parent: who.name(), Server: s.id.String(), Role: op.Admin.String()}
	var until time.Time
	if c := who.claims; c != nil {
		claims.Role, claims.Selector, claims.Path, until = c.Role, c.Selector, c.Path, c.NotAfter
		claims.Chain = c.Under()
	}
	if anchorfs.IsWorkerID(name) {
		claims.Name, claims.Worker = "worker "+name, name
	}
	life := s.credLife()
	dir, err := s.credDir()
	if err != nil {
		return nil, "", err
	}
	pc := &procCred{
		path: filepath.Join(dir, rand.Text()+".cred"),
		make: func() ([]byte, error) {
			l := life
			if e, ok := s.revoked.Revoked(claims.Chain); ok {
				return nil, fmt.Errorf("the credential of %s, which started the process, is revoked: %s", who.name(), revokedReason(e))
			}
			if !until.IsZero() {
				if l = min(l, time.Until(until)); l <= 0 {
					return nil, fmt.Errorf("the credential of %s, which started the process, has expired", who.name())
				}
			}
			return s.ring.Use().Mint(claims, l)
		},
	}
	// Known before its first write, so that a key coming into use
	// meanwhile makes it again (write takes one key at a time, the last
	// one in use).
	s.credMu.Lock()
	s.creds[pc] = struct{}{}
	s.credMu.Unlock()
	if err := pc.write(); err != nil {
		s.forgetCred(pc)
		return nil, "", err
	}
	return pc, "CIRCUIT_CRED=" + pc.path, nil
}

// forgetCred stops renewing a process's credential and removes its file.
func (s *Server) forgetCred(pc *procCred) {
	s.credMu.Lock()
	delete(s.creds, pc)
	s.credMu.Unlock()
	os.Remove(pc.path)
}

// write makes a new credential and replaces the file with it whole.
func (pc *procCred) write() error {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	b, err := pc.make()
	if err != nil {
		return err
	}
	if err := safefile.Write(pc.path, b, 0o600); err != nil {
		return fmt.Errorf("writing a process's credential: %w", err)
	}
	return nil
}

// renew rewrites the credential every third of its life until done is
// closed, then removes its file.
func (s *Server) renewProcCred(pc *procCred, done <-chan struct{}) {
	defer s.forgetCred(pc)
	life := s.credLife()
	t := time.NewTicker(life / 3)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-s.ctx.Done():
			return
		case <-t.C:
			if err := pc.write(); err != nil {
				s.log.Error("renewing a process's credential", "file", pc.path, "err", err)
			}
		}
	}
}

// credDir is the private directory of the credentials of this server's
// processes, made on first use and removed when the server stops.
func (s *Server) credDir() (string, error) {
	s.credMu.Lock()
	defer s.credMu.Unlock()
	if s.credPath != "" {
		return s.credPath, nil
	}
	dir, err := os.MkdirTemp("", "circuit-cred-"+s.id.String()+"-")
	if err != nil {
		return "", fmt.Errorf("making the directory of process credentials: %w", err)
	}
	s.credPath = dir
	return dir, nil
}

// removeCredDir removes the credentials' directory at stop.
func (s *Server) removeCredDir() {
	s.credMu.Lock()
	defer s.credMu.Unlock()
	if s.credPath != "" {
		os.RemoveAll(s.credPath)
	}
}
