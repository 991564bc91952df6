package cluster

import "github.com/circuit-project/circuit/internal/ident"

// States counts the members this server knows, by state, at one moment.
// It is read for the metrics (package metrics), at scrape time.
type States struct {
	// Alive counts the members in view (Members), this server included,
	// less the suspects.
	Alive int
	// Suspect counts members in view whose watch connection (watch.go)
	// went silent and whose check is running. Memberlist does not expose
	// its own suspicions, so only circuit's are counted.
	Suspect int
	// Failed counts members out of view after a failure rather than a
	// leave: confirmed crashed while memberlist still lists them
	// (hidden), or still tried by the reconnect loop until they answer or
	// their port refuses.
	Failed int
}

// States counts the members by state. It takes the watches' lock and the
// cluster's one after the other, never both at once.
func (c *Cluster) States() States {
	var suspects []ident.ID
	c.watch.mu.Lock()
	for id, wt := range c.watch.active {
		if wt.busy {
			suspects = append(suspects, id)
		}
	}
	c.watch.mu.Unlock()

	c.mu.Lock()
	defer c.mu.Unlock()
	st := States{Alive: len(c.members) + len(c.remote), Failed: len(c.hidden)}
	for _, id := range suspects {
		_, lan := c.members[id]
		_, wan := c.remote[id]
		if lan || wan {
			st.Alive--
			st.Suspect++
		}
	}
	for id := range c.failed.m {
		if _, ok := c.hidden[id]; !ok {
			st.Failed++
		}
	}
	return st
}
