// Package metrics owns a server's Prometheus metrics (`circuit start
// -metrics ADDR`): the registry, the metrics circuit defines, the hooks the
// server calls on its data paths, and the HTTP endpoint that serves them at
// /metrics in the Prometheus text format.
//
// Metrics are off unless asked for. The server then holds a nil *Set, and
// every method of Set is safe on nil and does nothing, so with metrics off
// nothing is allocated, registered or run.
//
// What is measured where:
//
//   - circuit_members{state} and circuit_elements{kind} are computed when
//     scraped, from functions the server passes in (Sources); nothing polls.
//   - circuit_operations_total{op,result} and
//     circuit_operation_duration_seconds{op} count and time every gRPC
//     operation, from the server's interceptors; op is the method's short
//     name ("Proc.Make"), a bounded set.
//   - circuit_stream_bytes_total{direction,stream} counts the bytes of
//     every stream connection served here (process and container stdio,
//     circuit cp, run streams), through a counting net.Conn.
//   - circuit_forwarded_connections_total{kind,result} counts connections
//     this server relayed to another member.
//   - The Go runtime's collector (goroutines, memory, GC) and the process
//     collector (resident memory, CPU, file descriptors).
//
// The registry is the Set's own, never the client library's global one.
package metrics

import (
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/circuit-project/circuit/internal/kind"
)

// Member states, the values of circuit_members' state label.
const (
	StateAlive   = "alive"
	StateSuspect = "suspect"
	StateFailed  = "failed"
)

// Directions of a stream's bytes, the values of the direction label: in
// is from the client to this server, out from this server to the client.
const (
	In  = "in"
	Out = "out"
)

// Kinds of relayed connections, the values of the kind label of
// circuit_forwarded_connections_total.
const (
	ForwardRPC    = "rpc"
	ForwardStream = "stream"
)

// streamNames are the stream names a stream header may carry. Any other
// name, which a client may send and the server refuses, is counted as
// "other", so that a client cannot grow the label set.
var streamNames = map[string]bool{
	"stdin": true, "stdout": true, "stderr": true,
	"run": true, "put": true, "puttar": true, "get": true,
}

// Sources are what the scrape-time metrics are computed from. Each is
// called once per scrape, from the scraping goroutine.
type Sources struct {
	// Members returns how many members are alive, suspect and failed.
	Members func() (alive, suspect, failed int)
	// Elements returns the number of elements of each kind.
	Elements func() map[string]int
}

// Set is one server's metrics. A nil *Set is metrics off: every method
// does nothing.
type Set struct {
	reg         *prometheus.Registry
	ops         *prometheus.CounterVec
	opSeconds   *prometheus.HistogramVec
	streamBytes *prometheus.CounterVec
	forwarded   *prometheus.CounterVec
}

// New makes a Set with its own registry, holding the Go runtime and
// process collectors and circuit's metrics.
func New(src Sources) (*Set, error) {
	s := &Set{
		reg: prometheus.NewRegistry(),
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "circuit_operations_total",
			Help: "Operations (gRPC calls) served by this server, by method and result.",
		}, []string{"op", "result"}),
		opSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "circuit_operation_duration_seconds",
			Help: "Time to serve an operation (gRPC call), by method; a streaming call counts until its stream ends.",
			// 0.5 ms to about 2 minutes, by fours.
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"op"}),
		streamBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "circuit_stream_bytes_total",
			Help: "Bytes carried by stream connections served here (process stdio, file copies, run streams), by direction (in: from the client) and stream.",
		}, []string{"direction", "stream"}),
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "circuit_forwarded_connections_total",
			Help: "Connections relayed to another member for a client, by kind (rpc, stream) and result; a relayed rpc connection carries many calls.",
		}, []string{"kind", "result"}),
	}
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		s.ops, s.opSeconds, s.streamBytes, s.forwarded,
		&scrapeCollector{src: src,
			members:  prometheus.NewDesc("circuit_members", "Members this server knows, by state: alive (in view), suspect (in view, its watch silent and being checked), failed (crashed, not yet forgotten).", []string{"state"}, nil),
			elements: prometheus.NewDesc("circuit_elements", "Elements held by this server's anchors, by kind.", []string{"kind"}, nil),
		},
	} {
		if err := s.reg.Register(c); err != nil {
			return nil, err
		}
	}
	// The forwarded series exist from the start, so that a rate over them
	// is defined before the first relay.
	for _, k := range []string{ForwardRPC, ForwardStream} {
		s.forwarded.WithLabelValues(k, "ok")
		s.forwarded.WithLabelValues(k, "error")
	}
	return s, nil
}

// Registry is the Set's registry (nil for a nil Set).
func (s *Set) Registry() *prometheus.Registry {
	if s == nil {
		return nil
	}
	return s.reg
}

// Now is the start of an operation: the time, or the zero time when
// metrics are off (so that an idle server does not even read the clock).
func (s *Set) Now() time.Time {
	if s == nil {
		return time.Time{}
	}
	return time.Now()
}

// Operation counts an operation that began at start and ended with err.
func (s *Set) Operation(op string, start time.Time, err error) {
	if s == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	s.ops.WithLabelValues(op, result).Inc()
	s.opSeconds.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

// Forwarded counts a connection relayed to another member: reached if the
// target accepted it, so that the two are spliced, false if the relay
// failed (no such member, unreachable, or refused by the target).
func (s *Set) Forwarded(kind string, reached bool) {
	if s == nil {
		return
	}
	result := "ok"
	if !reached {
		result = "error"
	}
	s.forwarded.WithLabelValues(kind, result).Inc()
}

// CountStream returns conn wrapped so that the bytes read from it and
// written to it are counted under stream; with metrics off, conn itself.
func (s *Set) CountStream(conn net.Conn, stream string) net.Conn {
	if s == nil {
		return conn
	}
	if !streamNames[stream] {
		stream = "other"
	}
	return &countingConn{Conn: conn,
		in:  s.streamBytes.WithLabelValues(In, stream),
		out: s.streamBytes.WithLabelValues(Out, stream),
	}
}

// countingConn counts the bytes through a connection, as they pass.
type countingConn struct {
	net.Conn
	in, out prometheus.Counter
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.in.Add(float64(n))
	}
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.out.Add(float64(n))
	}
	return n, err
}

// scrapeCollector computes the members and elements gauges when scraped.
type scrapeCollector struct {
	src      Sources
	members  *prometheus.Desc
	elements *prometheus.Desc
}

func (c *scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.members
	ch <- c.elements
}

func (c *scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	if c.src.Members != nil {
		alive, suspect, failed := c.src.Members()
		for _, st := range []struct {
			state string
			n     int
		}{{StateAlive, alive}, {StateSuspect, suspect}, {StateFailed, failed}} {
			ch <- prometheus.MustNewConstMetric(c.members, prometheus.GaugeValue, float64(st.n), st.state)
		}
	}
	if c.src.Elements != nil {
		counts := c.src.Elements()
		// Every kind is reported, 0 when there are none, so that its
		// series exists from the first scrape.
		for _, k := range kind.Elements() {
			if _, ok := counts[string(k)]; !ok {
				ch <- prometheus.MustNewConstMetric(c.elements, prometheus.GaugeValue, 0, string(k))
			}
		}
		for k, n := range counts {
			ch <- prometheus.MustNewConstMetric(c.elements, prometheus.GaugeValue, float64(n), k)
		}
	}
}
