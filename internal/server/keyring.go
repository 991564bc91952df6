package server

import (
	"context"
	"errors"
	"net"
	"slices"
	"time"

	"github.com/circuit-project/circuit/internal/api"
	"github.com/circuit-project/circuit/internal/fault"
	"github.com/circuit-project/circuit/internal/security"
	"github.com/circuit-project/circuit/internal/wire"
)

// acceptor checks preambles against the ring's keys; nil without a key.
func (s *Server) acceptor() wire.Acceptor {
	if s.ring == nil {
		return nil
	}
	return s.ring
}

// gossipKeys are the pools' gossip keys from the ring, the key in use's
// first; none without a key.
func (s *Server) gossipKeys() (lan, wan [][]byte) {
	if s.ring == nil {
		return nil, nil
	}
	for _, k := range s.ring.Keys() {
		lan, wan = append(lan, k.GossipKey()), append(wan, k.WANGossipKey())
	}
	return lan, wan
}

// onRingChange follows a change of the keyring: gossip encrypts with the
// key in use and decrypts with every installed one, and the credentials of
// running processes are made again under the key in use, so that they
// outlive the removal of the old one (their holders read them again:
// security.CredentialFile).
func (s *Server) onRingChange() {
	lan, wan := s.gossipKeys()
	if err := s.cluster.SetGossipKeys(lan, wan); err != nil {
		s.log.Error("keyring: setting the gossip keys", "err", err)
	}
	s.credMu.Lock()
	live := make([]*procCred, 0, len(s.creds))
	for pc := range s.creds {
		live = append(live, pc)
	}
	s.credMu.Unlock()
	for _, pc := range live {
		if err := pc.write(); err != nil {
			s.log.Error("keyring: making a process's credential again", "file", pc.path, "err", err)
		}
	}
	installed := s.ring.Keys()
	s.log.Warn("keyring changed", "in use", s.ring.Use().ID(), "installed", len(installed))
	// The connections of clients that hold a removed key go too, once the
	// answer to the removal (perhaps on one of them) has had time to
	// leave: the key is refused from here on.
	s.goFunc(func() {
		select {
		case <-time.After(removedKeyGrace):
		case <-s.ctx.Done():
			return
		}
		var doomed []net.Conn
		s.mu.Lock()
		for c, a := range s.conns {
			if a.key != nil && !slices.Contains(installed, a.key) {
				doomed = append(doomed, c)
			}
		}
		s.mu.Unlock()
		for _, c := range doomed {
			c.Close()
		}
		if len(doomed) > 0 {
			s.log.Warn("keyring: closed the connections of a removed key", "connections", len(doomed))
		}
	})
}

// removedKeyGrace is how long after a key's removal the connections opened
// under it are closed.
const removedKeyGrace = time.Second

func (v *serverService) Keyring(_ context.Context, req *api.KeyringRequest) (*api.KeyringReply, error) {
	r := v.s.ring
	if r == nil {
		return nil, fault.New(fault.Precondition, "this server runs without a key: it has no keyring")
	}
	var changed bool
	var err error
	switch req.GetAction() {
	case "list":
	case "install":
		k, perr := security.Parse(req.GetKey())
		if perr != nil {
			return nil, fault.New(fault.BadRequest, "keyring -install: "+perr.Error())
		}
		changed, err = r.Install(k)
	case "use":
		changed, err = r.UseKey(req.GetId())
	case "remove":
		changed, err = r.Remove(req.GetId())
	default:
		return nil, fault.Errorf(fault.BadRequest, "keyring: no action %q: the actions are list, install, use and remove", req.GetAction())
	}
	switch {
	case errors.Is(err, security.ErrKeyring):
		return nil, fault.New(fault.Precondition, err.Error())
	case err != nil:
		// In force, but not kept: a restart would lose it.
		return nil, fault.Errorf(fault.Remote, "the keyring changed, but could not be kept in -var: %v", err)
	}
	rep := &api.KeyringReply{Changed: changed}
	for _, k := range r.List() {
		rep.Keys = append(rep.Keys, &api.KeyringKey{Id: k.ID, InUse: k.InUse})
	}
	return rep, nil
}
