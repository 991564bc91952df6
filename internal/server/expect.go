package server

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/anchorfs"
	"github.com/circuit-project/circuit/internal/api"
	"github.com/circuit-project/circuit/internal/fault"
	"github.com/circuit-project/circuit/internal/graveyard"
	"github.com/circuit-project/circuit/internal/ident"
)

// A worker lost with its host cannot leave a record there: the server it
// was spawned through (the spawner's dial-in server) keeps one for it. Spawn
// tells that server of each worker it started elsewhere (Dirs.Expect); the
// server waits for the worker's exit through its own client, and when the
// worker's host leaves the membership first, records "host lost".

// maxExpected bounds the workers a server watches for others.
const maxExpected = 10000

// expectation is one worker watched for its host.
type expectation struct {
	rec    graveyard.Record
	cancel context.CancelFunc
	lost   bool // its host left
}

// selfClient is the server's client of itself, made on first use and
// closed at stop: how it waits for workers on other servers.
func (s *Server) selfClient(ctx context.Context) (*client.Client, error) {
	s.expectMu.Lock()
	defer s.expectMu.Unlock()
	if s.self != nil {
		return s.self, nil
	}
	if s.ctx.Err() != nil {
		return nil, errors.New("the server is stopping")
	}
	opt := client.Options{Addr: s.url.String()}
	if k := s.ring.Use(); k != nil {
		opt.Key = []byte(k.Text())
	}
	c, err := client.Connect(ctx, opt)
	if err != nil {
		return nil, err
	}
	s.self = c
	return c, nil
}

func (v *dirsService) Expect(ctx context.Context, req *api.ExpectRequest) (*api.ExpectReply, error) {
	var r graveyard.Record
	if err := json.Unmarshal(req.GetRecord(), &r); err != nil {
		return nil, fault.Errorf(fault.BadRequest, "expect: the record: %v", err)
	}
	host, err := ident.ParseID(r.Server)
	switch {
	case err != nil:
		return nil, fault.Errorf(fault.BadRequest, "expect: the record's server: %v", err)
	case !anchorfs.IsWorkerID(r.ID) || r.Anchor != "/"+r.Server+"/"+r.ID:
		return nil, fault.Errorf(fault.BadRequest, "expect: %q at %q is no worker's anchor", r.ID, r.Anchor)
	case host == v.s.id:
		return &api.ExpectReply{}, nil // its host is this server, which records it
	}
	r.Parent = parentOf(callerOf(ctx))
	r.Stderr, r.Cause = "", ""
	if err := v.s.expect(host, r, req.GetSerial()); err != nil {
		return nil, err
	}
	return &api.ExpectReply{}, nil
}

// expect watches a worker on host until it exits, or host is lost.
func (s *Server) expect(host ident.ID, r graveyard.Record, serial uint64) error {
	ctx, cancel := context.WithCancel(s.ctx)
	e := &expectation{rec: r, cancel: cancel}
	s.expectMu.Lock()
	n := 0
	for _, es := range s.expected {
		n += len(es)
	}
	if n >= maxExpected {
		s.expectMu.Unlock()
		cancel()
		return fault.Errorf(fault.Precondition, "this server watches %d workers already, its limit", n)
	}
	s.expected[host] = append(s.expected[host], e)
	s.expectMu.Unlock()
	if _, ok := s.cluster.Lookup(host); !ok {
		s.hostLost(host) // gone already
	}
	if !s.goFunc(func() { s.watchWorker(ctx, host, e, serial) }) {
		cancel()
	}
	return nil
}

// watchWorker waits for the worker's exit; if its host left meanwhile, it
// records the worker as lost.
func (s *Server) watchWorker(ctx context.Context, host ident.ID, e *expectation, serial uint64) {
	defer e.cancel()
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		c, err := s.selfClient(ctx)
		if err == nil {
			_, err = c.ProcAtSerial(e.rec.Anchor, serial).Wait(ctx)
		}
		var hl *client.HostLostError
		_, member := s.cluster.Lookup(host)
		switch {
		case ctx.Err() != nil:
		case err == nil, errors.Is(err, client.ErrNotFound):
			s.forget(host, e) // it ended where its host records it
			return
		case errors.As(err, &hl) && !member:
			s.hostLost(host)
		default: // a passing failure: the host is still a member
			select {
			case <-ctx.Done():
			case <-time.After(wait):
				continue
			}
		}
		s.expectMu.Lock()
		lost := e.lost
		s.expectMu.Unlock()
		if lost {
			r := e.rec
			r.End, r.Cause = time.Now(), "host lost"
			if err := s.yard.Put(r); err != nil {
				s.log.Error("graveyard", "worker", r.ID, "err", err)
			}
			s.log.Warn("worker lost with its host", "worker", r.ID, "host", host.String())
		}
		return
	}
}

// hostLost marks every worker watched on host as lost, and ends the waits.
func (s *Server) hostLost(host ident.ID) {
	s.expectMu.Lock()
	defer s.expectMu.Unlock()
	for _, e := range s.expected[host] {
		e.lost = true
		e.cancel()
	}
	delete(s.expected, host)
}

func (s *Server) forget(host ident.ID, e *expectation) {
	s.expectMu.Lock()
	defer s.expectMu.Unlock()
	es := s.expected[host]
	for i, x := range es {
		if x == e {
			s.expected[host] = append(es[:i:i], es[i+1:]...)
			break
		}
	}
	if len(s.expected[host]) == 0 {
		delete(s.expected, host)
	}
}
