package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// CheckAddr tells what is wrong with addr as the address of the metrics
// endpoint: it must be HOST:PORT with a numeric port, HOST an IP address,
// a name, or empty for every address of the host.
func CheckAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want HOST:PORT (:PORT for every address): %w", err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	if host != "" && net.ParseIP(host) == nil {
		for _, r := range host {
			if !(r == '.' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
				return fmt.Errorf("host %q is neither an IP address nor a host name", host)
			}
		}
	}
	return nil
}

// Endpoint serves a Set's registry over HTTP at /metrics.
type Endpoint struct {
	ln  net.Listener
	srv *http.Server
}

// scrapeTimeout bounds one scrape, and how long Close waits for those in
// flight.
const scrapeTimeout = 10 * time.Second

// Listen binds addr (checked with CheckAddr) for s's metrics; Serve then
// serves them. Errors are logged to log.
func Listen(ctx context.Context, addr string, s *Set, log *slog.Logger) (*Endpoint, error) {
	if err := CheckAddr(addr); err != nil {
		return nil, fmt.Errorf("metrics %s: %w", addr, err)
	}
	if s == nil {
		return nil, fmt.Errorf("metrics %s: no metrics to serve", addr)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{
		ErrorLog:            errorLog{log},
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             scrapeTimeout,
	}))
	return &Endpoint{ln: ln, srv: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: scrapeTimeout,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}}, nil
}

// Addr is the address the endpoint is bound to.
func (e *Endpoint) Addr() net.Addr { return e.ln.Addr() }

// Serve serves scrapes until Close; its goroutine belongs to whoever
// calls Close.
func (e *Endpoint) Serve() error {
	err := e.srv.Serve(e.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("metrics %s: %w", e.ln.Addr(), err)
}

// Close stops the endpoint: it stops listening, lets scrapes in flight
// finish for up to scrapeTimeout, then closes their connections. Serve
// returns once it has. Close before Serve only frees the listener.
func (e *Endpoint) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	err := e.srv.Shutdown(ctx)
	e.ln.Close() // Shutdown closes it only if Serve was called
	if err != nil {
		e.srv.Close()
		return fmt.Errorf("metrics %s: %w", e.ln.Addr(), err)
	}
	return nil
}

// errorLog is the scrape handler's logger.
type errorLog struct{ log *slog.Logger }

func (l errorLog) Println(v ...any) { l.log.Warn("metrics: " + fmt.Sprint(v...)) }
