package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/circuit-project/circuit/client"
)

// tcpPingPong measures n round trips of a size-byte message over one
// loopback TCP connection.
func tcpPingPong(n, size int) (time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, size)
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				return
			}
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return 0, err
	}
	defer c.Close()
	r := bufio.NewReader(c)
	msg := make([]byte, size)
	start := time.Now()
	for range n {
		if _, err := c.Write(msg); err != nil {
			return 0, err
		}
		if _, err := io.ReadFull(r, msg); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

func benchChan(b *bench) error {
	c, id, err := b.twoServers()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx := context.Background()
	h, err := c.MakeChanAt(ctx, "/"+id+"/bench", 0)
	if err != nil {
		return err
	}
	// A second client for the receiving side, as two programs would be.
	c2, err := client.Connect(ctx, client.Options{Addr: c.DialinAddr()})
	if err != nil {
		return err
	}
	defer c2.Close()
	rh := c2.ChanAt(h.Path())
	n := *runs * 5
	floor, err := tcpPingPong(n, 100)
	if err != nil {
		return err
	}
	rate := func(d time.Duration) float64 { return float64(n) / d.Seconds() }
	got, err := exchange(ctx, c.DialinAddr(), h, rh, n, 1, 1)
	if err != nil {
		return err
	}
	report("chan", fmt.Sprintf("100 B messages, unbuffered, other server: %.0f/s", rate(got)),
		fmt.Sprintf("TCP ping-pong %.0f/s", rate(floor)), rate(got)/rate(floor), "measured (issue 4); ≥ 0.2 (issue 24)")

	// Buffered: one sender and one receiver, then 8 of each, each with a
	// client of its own.
	bh, err := c.MakeChanAt(ctx, "/"+id+"/bench1000", 1000)
	if err != nil {
		return err
	}
	if got, err = exchange(ctx, c.DialinAddr(), bh, c2.ChanAt(bh.Path()), n, 1, 1); err != nil {
		return err
	}
	report("chan1000", fmt.Sprintf("100 B messages, capacity 1000, 1 sender, 1 receiver: %.0f/s", rate(got)),
		fmt.Sprintf("TCP ping-pong %.0f/s", rate(floor)), rate(got)/rate(floor), "≥ 0.35 (issue 24)")
	if got, err = exchange(ctx, c.DialinAddr(), bh, c2.ChanAt(bh.Path()), n, 8, 8); err != nil {
		return err
	}
	report("chan8x8", fmt.Sprintf("100 B messages, capacity 1000, 8 senders, 8 receivers: %.0f/s", rate(got)),
		fmt.Sprintf("TCP ping-pong %.0f/s", rate(floor)), rate(got)/rate(floor), "recorded (issue 24)")

	// One 64 MiB message, streamed sender to receiver.
	const size = 64 << 20
	big := make([]byte, size)
	tcp, err := tcpCopy(size)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		r, err := rh.Recv(ctx)
		if err == nil {
			var n int64
			n, err = io.Copy(io.Discard, r)
			if err == nil && n != size {
				err = fmt.Errorf("received %d bytes", n)
			}
		}
		done <- err
	}()
	if err := h.Send(ctx, bytes.NewReader(big)); err != nil {
		return err
	}
	if err := <-done; err != nil {
		return err
	}
	d := time.Since(start)
	mbs := func(d time.Duration) float64 { return size / d.Seconds() / (1 << 20) }
	report("chan64M", fmt.Sprintf("one 64 MiB message: %.0f MiB/s", mbs(d)),
		fmt.Sprintf("Go TCP copy %.0f MiB/s", mbs(tcp)), float64(tcp)/float64(d), "measured (issue 4)")
	return nil
}

// exchange sends n messages of 100 bytes on a channel from senders
// goroutines, each with a client of its own dialled into addr (the first
// uses h), while
// receivers goroutines receive them (the first through rh, the rest with
// clients of their own), and returns how long it took.
func exchange(ctx context.Context, addr string, h, rh *client.ChanHandle, n, senders, receivers int) (time.Duration, error) {
	handles := func(first *client.ChanHandle, k int) ([]*client.ChanHandle, func(), error) {
		out := []*client.ChanHandle{first}
		var clients []*client.Client
		closeAll := func() {
			for _, c := range clients {
				c.Close()
			}
		}
		for range k - 1 {
			c, err := client.Connect(ctx, client.Options{Addr: addr})
			if err != nil {
				closeAll()
				return nil, nil, err
			}
			clients = append(clients, c)
			out = append(out, c.ChanAt(h.Path()))
		}
		return out, closeAll, nil
	}
	sh, closeS, err := handles(h, senders)
	if err != nil {
		return 0, err
	}
	defer closeS()
	rhs, closeR, err := handles(rh, receivers)
	if err != nil {
		return 0, err
	}
	defer closeR()
	msg := bytes.Repeat([]byte("m"), 100)
	errs := make(chan error, senders+receivers)
	start := time.Now()
	for i, r := range rhs {
		share := n/receivers + btoi(i < n%receivers)
		go func() {
			for range share {
				m, err := r.Recv(ctx)
				if err == nil {
					_, err = io.Copy(io.Discard, m)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for i, s := range sh {
		share := n/senders + btoi(i < n%senders)
		go func() {
			for range share {
				if err := s.Send(ctx, bytes.NewReader(msg)); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range senders + receivers {
		if err := <-errs; err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
