package console

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/circuit-project/circuit/internal/cluster"
	"github.com/circuit-project/circuit/internal/oplog"
)

// Health of a member, as the page shows it.
const (
	Alive  = "alive"
	Failed = "failed"
)

// MemberView is a member as the page shows it.
type MemberView struct {
	ID     string
	Addr   string
	URL    string
	PID    int
	Labels map[string]string `json:",omitempty"`
	DC     string            `json:",omitempty"`
	Health string            // Alive or Failed
	Since  time.Time         // when it took this health
	// Until is, for a failed member, when it leaves the page.
	Until *time.Time `json:",omitempty"`
}

// tracker remembers members that left the view, to show them as failed
// for a while. It belongs to one poller goroutine.
type tracker struct {
	failedFor time.Duration
	known     map[string]*MemberView
}

func newTracker(failedFor time.Duration) *tracker {
	return &tracker{failedFor: failedFor, known: map[string]*MemberView{}}
}

// update takes the current member list and returns the page's view of it,
// sorted by ID: the listed members alive, the ones that left within
// failedFor failed.
func (t *tracker) update(now time.Time, members []cluster.Member) []MemberView {
	seen := make(map[string]bool, len(members))
	for _, m := range members {
		id := m.ID.String()
		seen[id] = true
		v := t.known[id]
		if v == nil || v.Health != Alive {
			v = &MemberView{ID: id, Health: Alive, Since: now}
			t.known[id] = v
		}
		v.Addr, v.URL, v.PID, v.Labels, v.DC = m.Addr, m.URL().String(), m.PID, m.Labels, m.DC
	}
	for id, v := range t.known {
		if seen[id] {
			continue
		}
		switch {
		case v.Health == Alive:
			until := now.Add(t.failedFor)
			v.Health, v.Since, v.Until = Failed, now, &until
		case !now.Before(*v.Until):
			delete(t.known, id)
		}
	}
	out := make([]MemberView, 0, len(t.known))
	for _, v := range t.known {
		out = append(out, *v)
	}
	slices.SortFunc(out, func(a, b MemberView) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// opsShown is how many of the latest operations the page shows.
const opsShown = 100

// hub fans the member list and the log tail out to the connected pages.
// Its poller goroutine runs only while at least one page is subscribed.
type hub struct {
	c *Console

	mu      sync.Mutex
	subs    map[*sub]struct{}
	stop    context.CancelFunc // the running poller's, nil when none
	pollers sync.WaitGroup     // the running poller, and any still ending
	members []byte             // the latest event data, for new subscribers
	ops     []byte
}

// sub is one connected page. The poller leaves the latest data in it and
// pokes; the page's handler writes whatever is newest when it gets to it,
// so a slow page skips states instead of queueing them.
type sub struct {
	mu      sync.Mutex
	members []byte
	ops     []byte
	poke    chan struct{} // capacity 1
}

func newHub(c *Console) *hub {
	return &hub{c: c, subs: map[*sub]struct{}{}}
}

// subscribe adds a page, starting the poller if it is the first.
func (h *hub) subscribe() *sub {
	s := &sub{poke: make(chan struct{}, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.subs[s] = struct{}{}
	if h.stop == nil {
		// A poller that is still ending writes nothing more: its context
		// is done, and it checks under h.mu.
		ctx, cancel := context.WithCancel(h.c.ctx)
		h.stop = cancel
		h.members, h.ops = nil, nil
		h.pollers.Go(func() { h.poll(ctx) })
	} else {
		s.set(h.members, h.ops)
	}
	return s
}

// unsubscribe removes a page, stopping the poller if it was the last.
func (h *hub) unsubscribe(s *sub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs, s)
	if len(h.subs) == 0 && h.stop != nil {
		h.stop()
		h.stop = nil
	}
}

// wait waits for the pollers to end; the console's context must be done
// and no page may subscribe any more.
func (h *hub) wait() { h.pollers.Wait() }

func (s *sub) set(members, ops []byte) {
	s.mu.Lock()
	if members != nil {
		s.members = members
	}
	if ops != nil {
		s.ops = ops
	}
	s.mu.Unlock()
	select {
	case s.poke <- struct{}{}:
	default:
	}
}

// take returns what changed since the last take.
func (s *sub) take() (members, ops []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	members, ops = s.members, s.ops
	s.members, s.ops = nil, nil
	return members, ops
}

// poll reads the member list and the log tail every pollEvery until ctx
// ends, and hands each change to the subscribers.
func (h *hub) poll(ctx context.Context) {
	t := newTracker(h.c.cfg.FailedFor)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	var lastMembers []byte
	var lastSeq uint64
	first := true
	for {
		members, err := json.Marshal(t.update(time.Now(), h.c.cfg.Members()))
		if err != nil {
			h.c.cfg.Logger.Warn("console: encoding members", "err", err)
			return
		}
		if bytes.Equal(members, lastMembers) {
			members = nil
		} else {
			lastMembers = members
		}
		var ops []byte
		if l := h.c.cfg.Ops; l != nil && (first || l.Last() != lastSeq) {
			entries := l.Tail(0, opsShown)
			if entries == nil {
				entries = []oplog.Entry{}
			}
			if len(entries) > 0 {
				lastSeq = entries[len(entries)-1].Seq
			}
			if ops, err = json.Marshal(entries); err != nil {
				h.c.cfg.Logger.Warn("console: encoding the log tail", "err", err)
				return
			}
		}
		first = false
		if members != nil || ops != nil {
			h.mu.Lock()
			if ctx.Err() == nil {
				if members != nil {
					h.members = members
				}
				if ops != nil {
					h.ops = ops
				}
				for s := range h.subs {
					s.set(members, ops)
				}
			}
			h.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
