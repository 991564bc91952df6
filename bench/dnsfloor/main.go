// Command dnsfloor is the floor of the DNS benchmark: a minimal miekg/dns
// server on UDP that answers every query with one A record. It prints its
// address and serves until killed.
package main

import (
	"fmt"
	"net"
	"os"

	"github.com/miekg/dns"
)

func main() {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	rr, _ := dns.NewRR("bench.example. 60 IN A 127.0.0.1")
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Authoritative = true
		m.Answer = []dns.RR{rr}
		w.WriteMsg(m)
	})}
	fmt.Println(pc.LocalAddr())
	if err := srv.ActivateAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
