package console

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/cluster"
	"github.com/circuit-project/circuit/internal/oplog"
	"github.com/circuit-project/circuit/internal/security"
)

//go:embed assets
var assets embed.FS

// DefaultFailedFor is how long a member that left the view stays on the page
// as failed.
const DefaultFailedFor = 15 * time.Second

// pollEvery is how often the member list and the log tail are read while a
// page is connected.
const pollEvery = 500 * time.Millisecond

// cookieName holds the token once the user gave it.
const cookieName = "circuit_console"

// csrfHeader must be on every POST: a cross-site form cannot set it, and a
// cross-site script cannot either without a CORS preflight, which the
// console never grants.
const csrfHeader = "X-Circuit-Console"

// Config configures a console.
type Config struct {
	// Addr is where to listen, HOST:PORT; see ListenAddr.
	Addr string
	// Server is the circuit URL of the console's own server, dialled as a
	// client.
	Server string
	// Key is the cluster key (the key file's contents), nil for none.
	Key []byte
	// Write allows mkproc, signal and scrub.
	Write bool
	// Members reads the server's member list in-process.
	Members func() []cluster.Member
	// Ops is the server's operation log; nil shows none.
	Ops *oplog.Log
	// FailedFor is how long a vanished member is shown as failed;
	// DefaultFailedFor when zero.
	FailedFor time.Duration
	Logger    *slog.Logger
}

// Console is a running web console.
type Console struct {
	cfg    Config
	cl     *client.Client
	token  string // "" without a key
	ln     net.Listener
	srv    *http.Server
	ctx    context.Context // ends when the console closes; every request's base
	cancel context.CancelFunc
	served chan struct{}
	hub    *hub
	// following counts the output streams open for pages.
	following atomic.Int64

	closeOnce sync.Once
	closeErr  error
}

// tokenLabel is what the token is the HMAC of.
const tokenLabel = "circuit web console token v1"

// Token derives the console token from the cluster key (the contents of
// the key file): the HMAC-SHA256 of a fixed label under the key, in hex.
func Token(key []byte) (string, error) {
	secret := bytes.TrimSpace(key)
	if _, err := security.New(secret); err != nil {
		return "", fmt.Errorf("cluster key: %w", err)
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(tokenLabel))
	return hex.EncodeToString(m.Sum(nil)), nil
}

// ListenAddr is the address the console binds for -http addr: a missing
// host (":8080") means loopback, 127.0.0.1; any other host only when given.
func ListenAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("console address %q: want HOST:PORT or :PORT: %w", addr, err)
	}
	if port == "" {
		return "", fmt.Errorf("console address %q: no port", addr)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// Start listens on cfg.Addr, dials the console's own server, and serves
// until Close.
func Start(ctx context.Context, cfg Config) (*Console, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.FailedFor == 0 {
		cfg.FailedFor = DefaultFailedFor
	}
	if cfg.Members == nil {
		return nil, errors.New("console: no member source")
	}
	addr, err := ListenAddr(cfg.Addr)
	if err != nil {
		return nil, err
	}
	c := &Console{cfg: cfg, served: make(chan struct{})}
	if cfg.Key != nil {
		if c.token, err = Token(cfg.Key); err != nil {
			return nil, fmt.Errorf("console: %w", err)
		}
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	c.cl, err = client.Connect(dctx, client.Options{Addr: cfg.Server, Key: cfg.Key})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("console: dialling its own server %s: %w", cfg.Server, err)
	}
	c.ln, err = net.Listen("tcp", addr)
	if err != nil {
		c.cl.Close()
		return nil, fmt.Errorf("console %s: %w", addr, err)
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.hub = newHub(c)
	c.srv = &http.Server{
		Handler:           c.routes(),
		BaseContext:       func(net.Listener) context.Context { return c.ctx },
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	go func() {
		defer close(c.served)
		if err := c.srv.Serve(c.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cfg.Logger.Warn("console stopped serving", "addr", addr, "err", err)
		}
	}()
	return c, nil
}

// URL is the console's address for a browser.
func (c *Console) URL() string { return "http://" + c.ln.Addr().String() + "/" }

// Close stops the console: open event streams end, the listener closes,
// and Close waits for the serving goroutine and the poller.
func (c *Console) Close() error {
	c.closeOnce.Do(func() {
		c.cancel() // ends every event stream and the poller
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := c.srv.Shutdown(sctx)
		if err != nil {
			err = errors.Join(err, c.srv.Close())
		}
		<-c.served
		c.hub.wait()
		c.closeErr = errors.Join(err, c.cl.Close())
	})
	return c.closeErr
}

// routes is the console's HTTP interface.
func (c *Console) routes() http.Handler {
	mux := http.NewServeMux()
	static, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServerFS(static)
	mux.Handle("GET /{$}", files)
	mux.Handle("GET /app.js", files)
	mux.Handle("GET /app.css", files)
	mux.HandleFunc("POST /login", c.login)
	mux.HandleFunc("GET /api/info", c.info)
	mux.HandleFunc("GET /api/events", c.events)
	mux.HandleFunc("GET /api/list", c.list)
	mux.HandleFunc("GET /api/peek", c.peek)
	mux.HandleFunc("GET /api/stream", c.stream)
	mux.HandleFunc("POST /api/mkproc", c.write(c.mkproc))
	mux.HandleFunc("POST /api/signal", c.write(c.signal))
	mux.HandleFunc("POST /api/scrub", c.write(c.scrub))
	return c.guard(mux)
}

// guard refuses every request without the token when there is a key, and
// sets headers every answer carries.
func (c *Console) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
		h.Set("Cache-Control", "no-store")
		if c.Loopback() && !loopbackHost(r.Host) {
			// A page of another site whose name was made to resolve to
			// 127.0.0.1 (DNS rebinding) would be same-origin otherwise.
			http.Error(w, fmt.Sprintf("refused: this console listens on loopback and answers only to a loopback address or localhost, not to host %q", r.Host), http.StatusForbidden)
			return
		}
		if c.token == "" || (r.Method == http.MethodPost && r.URL.Path == "/login") {
			next.ServeHTTP(w, r)
			return
		}
		if t := r.URL.Query().Get("token"); t != "" && c.validToken(t) {
			c.setCookie(w, r)
			next.ServeHTTP(w, r)
			return
		}
		if ck, err := r.Cookie(cookieName); err == nil && c.validToken(ck.Value) {
			next.ServeHTTP(w, r)
			return
		}
		if r.Method == http.MethodGet && r.URL.Path == "/" {
			h.Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(loginPage(false)))
			return
		}
		http.Error(w, "unauthorized: this cluster has a key; give the console token (circuit console-token)", http.StatusUnauthorized)
	})
}

func (c *Console) validToken(t string) bool {
	return subtle.ConstantTimeCompare([]byte(t), []byte(c.token)) == 1
}

func (c *Console) setCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: c.token, Path: "/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
}

// login takes the token from the login page's form.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if c.token == "" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if !c.validToken(r.PostFormValue("token")) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(loginPage(true)))
		return
	}
	c.setCookie(w, r)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// loginPage is all a browser without the token sees. It is inline (the
// stylesheet would need the token too). After a wrong token it says so,
// so that the person typing (and a test) can tell the refusal from the
// first visit.
func loginPage(refused bool) string {
	msg := ""
	if refused {
		msg = `<p id="refused" role="alert">That token was refused. Check it against <code>circuit console-token</code> on a host of this cluster.</p>
`
	}
	return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>circuit console: token</title></head>
<body>
<h1>circuit console</h1>
<p>This cluster has a key. Enter the console token (<code>circuit console-token</code> prints it).</p>
` + msg + `<form method="post" action="/login">
<input type="password" name="token" id="token" size="70" autofocus>
<button type="submit">Open</button>
</form>
</body></html>
`
}

// Loopback tells whether the console listens on a loopback address only.
func (c *Console) Loopback() bool {
	a, ok := c.ln.Addr().(*net.TCPAddr)
	return ok && a.IP.IsLoopback()
}

// loopbackHost tells whether a Host header names a loopback address or
// localhost.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
