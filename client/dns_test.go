package client_test

import (
	"errors"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/circuit-project/circuit/client"
)

func TestNameserver(t *testing.T) {
	c, host := twoServers(t)
	ns, err := host.Walk([]string{"dns"}).MakeNameserver("")
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.Set("app.example. 60 IN A 127.0.0.42"); err != nil {
		t.Fatal(err)
	}
	if err := ns.Set("app.example. 60 IN A 999.0.0.1"); !errors.Is(err, client.ErrBadRequest) {
		t.Fatalf("malformed record: %v", err)
	}
	st := ns.Peek()
	if len(st.Records["app.example."]) != 1 {
		t.Fatalf("peek: %+v", st)
	}
	m := new(dns.Msg)
	m.SetQuestion("app.example.", dns.TypeA)
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, st.Address)
	if err != nil || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "127.0.0.42" {
		t.Fatalf("query: %v %v", r, err)
	}
	if _, ok := host.Walk([]string{"dns"}).Get().(client.Nameserver); !ok {
		t.Fatal("Get of a DNS element is not a Nameserver")
	}
	ns.Scrub()
	if len(host.View()) != 0 {
		t.Fatal("scrub left the element")
	}
	_ = c
}
