package cluster

import (
	"slices"
	"testing"
	"time"

	"github.com/circuit-project/circuit/internal/ident"
)

func TestEventRule(t *testing.T) {
	for _, tc := range []struct {
		name                                 string
		t                                    EventType
		rejoined, had, hidden, self, stopped bool
		want                                 eventOutcome
	}{
		{name: "a new member joins", t: Join, rejoined: true,
			want: eventOutcome{change: enter, report: true, check: true}},
		{name: "a new member joins while stopping: not checked", t: Join, rejoined: true, stopped: true,
			want: eventOutcome{change: enter, report: true}},
		{name: "this server joins its own view: not checked", t: Join, rejoined: true, self: true,
			want: eventOutcome{change: enter, report: true}},
		{name: "an update of a member in view", t: Join, had: true,
			want: eventOutcome{change: enter}},
		{name: "a member in view seen alive again", t: Join, rejoined: true, had: true,
			want: eventOutcome{change: enter}},
		{name: "an update of a hidden member", t: Join, hidden: true,
			want: eventOutcome{change: updateHidden}},
		{name: "a hidden member back alive", t: Join, rejoined: true, hidden: true,
			want: eventOutcome{change: enter, report: true, check: true}},
		{name: "a member in view leaves: tried again", t: Leave, had: true,
			want: eventOutcome{change: exit, report: true, failed: true}},
		{name: "a member in view leaves while stopping: still tried", t: Leave, had: true, stopped: true,
			want: eventOutcome{change: exit, report: true, failed: true}},
		{name: "this server leaves: not tried", t: Leave, had: true, self: true,
			want: eventOutcome{change: exit, report: true}},
		{name: "a hidden member leaves: already reported", t: Leave, hidden: true,
			want: eventOutcome{change: exit}},
		{name: "a leave of a member never seen", t: Leave,
			want: eventOutcome{change: exit}},
		{name: "a leave is never an update, whatever rejoined says", t: Leave, rejoined: true, hidden: true,
			want: eventOutcome{change: exit}},
	} {
		got := eventRule(tc.t, tc.rejoined, tc.had, tc.hidden, tc.self, tc.stopped)
		if got != tc.want {
			t.Errorf("%s: eventRule(%v, rejoined %v, had %v, hidden %v, self %v, stopped %v) = %+v, want %+v",
				tc.name, tc.t, tc.rejoined, tc.had, tc.hidden, tc.self, tc.stopped, got, tc.want)
		}
	}
}

// TestEventRuleInvariants checks every input against what the stateful
// code relies on: a check is only made of a reported join (else its
// goroutine would never start), subscribers hear of a change of the view
// only, and nothing is retried that did not leave it.
func TestEventRuleInvariants(t *testing.T) {
	bools := []bool{false, true}
	for _, typ := range []EventType{Join, Leave} {
		for _, rejoined := range bools {
			for _, had := range bools {
				for _, hidden := range bools {
					for _, self := range bools {
						for _, stopped := range bools {
							o := eventRule(typ, rejoined, had, hidden, self, stopped)
							in := []any{typ, rejoined, had, hidden, self, stopped, o}
							if o.check && (!o.report || typ != Join || self || stopped) {
								t.Errorf("%v rejoined %v had %v hidden %v self %v stopped %v: %+v checks what it should not", in...)
							}
							// In view before, in view after: reported when they
							// differ. An update of a hidden member leaves the
							// view as it was.
							inAfter := o.change == enter || (o.change == updateHidden && had)
							if o.report != (had != inAfter) {
								t.Errorf("%v rejoined %v had %v hidden %v self %v stopped %v: %+v reports a non-change or misses a change", in...)
							}
							if o.failed && (o.change != exit || !had || self) {
								t.Errorf("%v rejoined %v had %v hidden %v self %v stopped %v: %+v retries what did not leave", in...)
							}
							if (typ == Leave) != (o.change == exit) {
								t.Errorf("%v rejoined %v had %v hidden %v self %v stopped %v: %+v", in...)
							}
						}
					}
				}
			}
		}
	}
}

func members(ids ...ident.ID) []Member {
	var out []Member
	for _, id := range ids {
		out = append(out, Member{ID: id})
	}
	return out
}

func ids(ms []Member) []ident.ID {
	var out []ident.ID
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

func TestSuccessors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		self    ident.ID
		members []Member
		k       int
		want    []ident.ID
	}{
		{"alone", 5, members(5), 2, nil},
		{"no members at all", 5, nil, 2, nil},
		{"fewer others than k: all, in ID order", 5, members(9, 5, 1), 3, []ident.ID{1, 9}},
		{"exactly k others", 5, members(9, 5, 1), 2, []ident.ID{1, 9}},
		{"the next k after self", 5, members(1, 3, 5, 7, 9), 2, []ident.ID{7, 9}},
		{"wrapping past the end", 7, members(1, 3, 5, 7, 9), 3, []ident.ID{9, 1, 3}},
		{"self the last: from the start", 9, members(1, 3, 5, 7, 9), 2, []ident.ID{1, 3}},
		{"self the first", 1, members(9, 7, 5, 3, 1), 2, []ident.ID{3, 5}},
		{"self not listed: those after its place", 4, members(1, 3, 5, 7, 9), 2, []ident.ID{5, 7}},
		{"self not listed, after them all", 10, members(1, 3, 5, 7, 9), 2, []ident.ID{1, 3}},
		{"k of 0", 5, members(1, 5, 9), 0, nil},
		// IDs compare as their strings: X and 16 hex digits, so as numbers.
		{"order is numeric", 0x10, members(0xff, 0x10, 0x2, 0x100), 2, []ident.ID{0xff, 0x100}},
	} {
		in := slices.Clone(tc.members)
		got := ids(successors(tc.self, tc.members, tc.k))
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: successors(%v, %v, %d) = %v, want %v", tc.name, tc.self, ids(tc.members), tc.k, got, tc.want)
		}
		if !slices.Equal(ids(in), ids(tc.members)) {
			t.Errorf("%s: successors reordered its argument: %v", tc.name, ids(tc.members))
		}
	}
}

// TestSuccessorsRing checks that with each server watching its k successors,
// every server is watched by exactly k others.
func TestSuccessorsRing(t *testing.T) {
	all := members(0x31, 0x12, 0xa0, 0x07, 0x55, 0x99, 0x40)
	for k := 1; k < len(all); k++ {
		watchers := map[ident.ID]int{}
		for _, m := range all {
			for _, s := range successors(m.ID, all, k) {
				watchers[s.ID]++
			}
		}
		for _, m := range all {
			if watchers[m.ID] != k {
				t.Errorf("k=%d: %v is watched by %d servers, want %d", k, m.ID, watchers[m.ID], k)
			}
		}
	}
}

func TestPickReconnect(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	const keep = time.Hour
	failed := map[ident.ID]failedMember{
		1: {addr: "a:1", since: now.Add(-keep - time.Nanosecond)}, // just over: forgotten
		2: {addr: "a:2", since: now.Add(-keep)},                   // exactly keep: kept
		3: {addr: "a:3", since: now},
		4: {addr: "a:4", since: now.Add(-time.Minute)},
		5: {addr: "a:5", since: now.Add(-2 * keep)},   // hidden, but forgotten
		6: {addr: "a:6", since: now.Add(time.Minute)}, // a clock step back: kept
	}
	hidden := map[ident.ID]Member{4: {ID: 4}, 5: {ID: 5}, 9: {ID: 9}}

	for _, tc := range []struct {
		n           int
		wantTargets int
	}{{32, 4}, {4, 4}, {2, 2}, {1, 1}, {0, 0}} {
		targets, expired := pickReconnect(failed, hidden, now, keep, tc.n)
		slices.Sort(expired)
		if !slices.Equal(expired, []ident.ID{1, 5}) {
			t.Errorf("n=%d: expired %v, want [1 5]", tc.n, expired)
		}
		if len(targets) != tc.wantTargets {
			t.Fatalf("n=%d: %d targets %v, want %d", tc.n, len(targets), targets, tc.wantTargets)
		}
		if tc.n > 0 && targets[0].ID != 4 {
			t.Errorf("n=%d: targets %v do not start with the hidden member 4", tc.n, ids(targets))
		}
		seen := map[ident.ID]bool{}
		for _, m := range targets {
			f, ok := failed[m.ID]
			if !ok || m.ID == 1 || m.ID == 5 || seen[m.ID] || m.Addr != f.addr {
				t.Errorf("n=%d: target %+v: not a kept failed member once, at its address", tc.n, m)
			}
			seen[m.ID] = true
		}
	}
	if len(failed) != 6 || len(hidden) != 3 {
		t.Errorf("pickReconnect changed its arguments: %d failed, %d hidden", len(failed), len(hidden))
	}
}

func TestPickReconnectNothing(t *testing.T) {
	targets, expired := pickReconnect(nil, nil, time.Now(), time.Hour, 32)
	if len(targets) != 0 || len(expired) != 0 {
		t.Errorf("pickReconnect of nothing = %v, %v", targets, expired)
	}
}

// TestPickReconnectHiddenFirst checks, with more hidden members than fit,
// that only hidden members are picked, whatever the map order.
func TestPickReconnectHiddenFirst(t *testing.T) {
	now := time.Now()
	failed := map[ident.ID]failedMember{}
	hidden := map[ident.ID]Member{}
	for id := ident.ID(1); id <= 20; id++ {
		failed[id] = failedMember{addr: "h", since: now}
		if id%2 == 0 {
			hidden[id] = Member{ID: id}
		}
	}
	for range 20 {
		targets, _ := pickReconnect(failed, hidden, now, time.Hour, 10)
		for _, m := range targets {
			if _, ok := hidden[m.ID]; !ok {
				t.Fatalf("picked %v, not hidden, with 10 hidden members to pick: %v", m.ID, ids(targets))
			}
		}
	}
}
