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
	msg := bytes.Repeat([]byte("m"), 100)
	pingPong := func() (time.Duration, error) {
		errs := make(chan error, 1)
		go func() {
			for range n {
				r, err := rh.Recv(ctx)
				if err == nil {
					_, err = io.Copy(io.Discard, r)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
		start := time.Now()
		for range n {
			if err := h.Send(ctx, bytes.NewReader(msg)); err != nil {
				return 0, err
			}
		}
		if err := <-errs; err != nil {
			return 0, err
		}
		return time.Since(start), nil
	}
	floor, err := tcpPingPong(n, 100)
	if err != nil {
		return err
	}
	got, err := pingPong()
	if err != nil {
		return err
	}
	rate := func(d time.Duration) float64 { return float64(n) / d.Seconds() }
	report("chan", fmt.Sprintf("100 B messages, unbuffered, other server: %.0f/s", rate(got)),
		fmt.Sprintf("TCP ping-pong %.0f/s", rate(floor)), rate(got)/rate(floor), "measured (issue 4); ≥ 0.2 (project)")

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
