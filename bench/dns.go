package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/circuit-project/circuit/client"
)

// dnsLoad asks addr for bench.example. A from 4 concurrent clients for d
// and returns the answered queries per second.
func dnsLoad(addr string, d time.Duration) (float64, error) {
	var answered atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	for range 4 {
		wg.Go(func() {
			c := &dns.Client{Timeout: time.Second}
			conn, err := c.Dial(addr)
			if err != nil {
				failed.Add(1)
				return
			}
			defer conn.Close()
			m := new(dns.Msg)
			m.SetQuestion("bench.example.", dns.TypeA)
			for time.Now().Before(deadline) {
				r, _, err := c.ExchangeWithConn(m, conn)
				if err != nil || len(r.Answer) != 1 {
					failed.Add(1)
					continue
				}
				answered.Add(1)
			}
		})
	}
	wg.Wait()
	if failed.Load() > answered.Load()/100 {
		return 0, fmt.Errorf("%d of %d queries failed", failed.Load(), failed.Load()+answered.Load())
	}
	return float64(answered.Load()) / d.Seconds(), nil
}

func benchDNS(b *bench) error {
	_, url, err := b.server()
	if err != nil {
		return err
	}
	c, err := client.Connect(context.Background(), client.Options{Addr: url})
	if err != nil {
		return err
	}
	defer c.Close()
	ctx := context.Background()
	h, err := c.MakeNameserverAt(ctx, "/"+idOf(url)+"/bench", "")
	if err != nil {
		return err
	}
	if err := h.Set(ctx, "bench.example. 60 IN A 127.0.0.1"); err != nil {
		return err
	}
	st, err := h.Peek(ctx)
	if err != nil {
		return err
	}
	floorBin := filepath.Join(b.dir, "dnsfloor")
	if err := build(floorBin, "./bench/dnsfloor"); err != nil {
		return err
	}
	_, floorAddr, err := b.start(floorBin)
	if err != nil {
		return err
	}
	var got, floor float64
	for range 2 {
		f, err := dnsLoad(floorAddr, 2*time.Second)
		if err != nil {
			return err
		}
		g, err := dnsLoad(st.Address, 2*time.Second)
		if err != nil {
			return err
		}
		floor, got = floor+f/2, got+g/2
	}
	report("dns", fmt.Sprintf("DNS element: %.0f queries/s (UDP, 4 clients)", got),
		fmt.Sprintf("minimal miekg/dns server %.0f/s", floor), got/floor, "measured (issue 5)")
	return nil
}
