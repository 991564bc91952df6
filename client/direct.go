package client

import (
	"context"
	"net"
	"time"

	"github.com/circuit-project/circuit/internal/ident"
	"github.com/circuit-project/circuit/internal/wire"
)

// Stream connections (process output and input, channel messages, file
// copies) carry the bulk of the bytes, and through the dial-in server's
// relay every byte crosses the network, and that server, twice. So a
// stream goes straight to its server's advertised address when this client
// can reach it, and through the relay otherwise: the direct dial gets a
// head start, and if it has not answered by then, or fails, the relay is
// dialled too and the first to answer is used. The preamble names the
// target server either way, so a direct dial that reaches another server
// (a restart on the same address) is refused, and with a key both ways are
// the same end-to-end TLS. A client still needs to reach only its dial-in
// server; the direct way is a shortcut, never a requirement.

// directHeadStart is how long a direct stream dial may take before the
// relay is dialled as well: a few round trips on a LAN, so a server that
// cannot be reached directly (behind NAT, a firewall) costs a stream this
// much at most.
const directHeadStart = 150 * time.Millisecond

// addrOf returns the advertised address of server id, from the last member
// list this client fetched, fetching one if id is not in it; "" if the
// client should not dial it directly.
func (c *Client) addrOf(ctx context.Context, id ident.ID) string {
	c.mu.Lock()
	addr, ok := c.addrs[id]
	c.mu.Unlock()
	if ok {
		return addr
	}
	if _, err := c.members(ctx); err != nil {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addrs[id]
}

// learn records the members' addresses for direct dials; a server already
// found unreachable directly stays so.
func (c *Client) learn(ms []Member) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range ms {
		id, err := ident.ParseID(m.ID)
		if err != nil {
			continue
		}
		if _, known := c.addrs[id]; !known {
			c.addrs[id] = m.Addr
		}
	}
}

// noDirect stops direct dials to server id for the life of this client.
func (c *Client) noDirect(id ident.ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addrs[id] = ""
}

// dialServer opens a connection of kind to server id (the preamble
// answered, TLS done when keyed): directly when it can, else through the
// dial-in server. A failure is the relay's, which says best what is wrong.
func (c *Client) dialServer(ctx context.Context, kind wire.Kind, id ident.ID) (net.Conn, error) {
	addr := ""
	if !c.relay {
		addr = c.addrOf(ctx, id)
	}
	if addr == "" || addr == c.dialin {
		return wire.Dial(ctx, c.dialin, kind, id, c.auth)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // the loser's dial, if still going
	type result struct {
		conn   net.Conn
		err    error
		direct bool
	}
	results := make(chan result, 2) // both dials can report without a reader
	try := func(addr string, direct bool) {
		conn, err := wire.Dial(ctx, addr, kind, id, c.auth)
		results <- result{conn, err, direct}
	}
	go try(addr, true)
	headStart := time.NewTimer(directHeadStart)
	defer headStart.Stop()
	pending, relaying := 1, false
	relay := func() {
		if !relaying {
			relaying = true
			pending++
			go try(c.dialin, false)
		}
	}
	var relayErr error
	for pending > 0 {
		select {
		case <-headStart.C:
			relay()
		case r := <-results:
			pending--
			if r.err == nil {
				if pending > 0 {
					// The other dial ends once ctx is cancelled; a
					// connection it made before that is closed.
					go func() {
						if o := <-results; o.conn != nil {
							o.conn.Close()
						}
					}()
				}
				return r.conn, nil
			}
			if r.direct {
				if ctx.Err() == nil {
					c.noDirect(id)
				}
				relay()
			} else {
				relayErr = r.err
			}
		}
	}
	return nil, relayErr
}
