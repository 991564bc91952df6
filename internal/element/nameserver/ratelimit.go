package nameserver

import (
	"container/list"
	"net/netip"
	"sync"
	"time"
)

// verdict is what the rate limit does with one UDP answer.
type verdict int

const (
	answer verdict = iota // send it
	slip                  // send it empty with the TC bit, so that the client asks over TCP
	drop                  // send nothing
)

func (v verdict) String() string {
	switch v {
	case answer:
		return "answer"
	case slip:
		return "slip"
	case drop:
		return "drop"
	}
	return "verdict(?)"
}

// limits configure the rate limit of UDP answers.
type limits struct {
	rate    float64          // answers a second per source address
	burst   int              // answers a source can get at once
	sources int              // sources tracked; the least recently seen goes first
	now     func() time.Time // the clock
	// judged, when not nil, is told each verdict (for the tests).
	judged func(netip.Addr, verdict)
}

// defaultLimits: 100 answers a second per source, 200 at once, 4096
// sources tracked.
func defaultLimits() limits {
	return limits{rate: 100, burst: 200, sources: 4096, now: time.Now}
}

// limiter is a token bucket per source address in a table of bounded
// size. Over its rate a source gets every second answer as an empty
// truncated one (BIND's RRL "slip 2") and nothing for the others: a
// victim whose address is spoofed gets at most its rate in answers, and
// a real client over the rate is told to use TCP, which cannot be spoofed.
type limiter struct {
	limits
	mu      sync.Mutex
	buckets map[netip.Addr]*list.Element // of *bucket
	seen    *list.List                   // of *bucket, the most recently seen first
}

type bucket struct {
	addr   netip.Addr
	tokens float64
	at     time.Time // when tokens was counted
	over   uint64    // answers over the rate so far
}

func newLimiter(l limits) *limiter {
	return &limiter{limits: l, buckets: make(map[netip.Addr]*list.Element), seen: list.New()}
}

// judge takes one answer to addr from its bucket and says what to do.
func (l *limiter) judge(addr netip.Addr) verdict {
	v := l.take(addr)
	if l.judged != nil {
		l.judged(addr, v)
	}
	return v
}

func (l *limiter) take(addr netip.Addr) verdict {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.buckets[addr]
	if ok {
		l.seen.MoveToFront(e)
	} else {
		for l.seen.Len() >= max(l.sources, 1) {
			oldest := l.seen.Back()
			l.seen.Remove(oldest)
			delete(l.buckets, oldest.Value.(*bucket).addr)
		}
		e = l.seen.PushFront(&bucket{addr: addr, tokens: float64(l.burst), at: now})
		l.buckets[addr] = e
	}
	b := e.Value.(*bucket)
	if elapsed := now.Sub(b.at); elapsed > 0 {
		b.tokens = min(float64(l.burst), b.tokens+elapsed.Seconds()*l.rate)
		b.at = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return answer
	}
	b.over++
	if b.over%2 == 0 {
		return slip
	}
	return drop
}

// len is the number of sources tracked.
func (l *limiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen.Len()
}
