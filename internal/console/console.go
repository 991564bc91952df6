package console

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
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

// cookieName holds the session ID once the user gave the token; never the
// token itself.
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
	// Ring is the server's keyring, against which credentials' console
	// tokens are checked (credtoken.go); nil accepts only the key's token.
	Ring *security.Ring
	// Admit, when set, refuses a credential the server would refuse
	// (revoked).
	Admit func(security.Claims) error
	// Write allows mkproc, signal and scrub.
	Write bool
	// Members reads the server's member list in-process.
	Members func() []cluster.Member
	// Ops is the server's operation log; nil shows none.
	Ops *oplog.Log
	// FailedFor is how long a vanished member is shown as failed;
	// DefaultFailedFor when zero.
	FailedFor time.Duration
	// Hosts are more names the console answers to (-http-host), besides
	// loopback, localhost and, bound beyond loopback, the bound IP and the
	// machine's host name.
	Hosts []string
	// TLSCert and TLSKey are PEM files (-http-tls CERT,KEY): the console is
	// then served over HTTPS only. Both or neither.
	TLSCert, TLSKey string
	Logger          *slog.Logger
}

// Console is a running web console.
type Console struct {
	cfg    Config
	cl     *client.Client
	token  string // "" without a key
	ln     net.Listener
	tls    bool
	hosts  *hostPolicy
	sess   *sessions
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

// tokenLabel is what the token is the HMAC of, under the console's subkey.
const tokenLabel = "token"

// Token derives the console token from the cluster key (the contents of
// the key file): the HMAC-SHA256 of "token" under the key's console subkey
// (security.Key.ConsoleKey, itself derived by HKDF), in hex. It is given
// only to log in, and exchanged then for a session.
func Token(key []byte) (string, error) {
	k, err := security.Parse(key)
	if err != nil {
		return "", fmt.Errorf("cluster key: %w", err)
	}
	return TokenOf(k), nil
}

// TokenOf is Token of a parsed key.
func TokenOf(k *security.Key) string {
	m := hmac.New(sha256.New, k.ConsoleKey())
	m.Write([]byte(tokenLabel))
	return hex.EncodeToString(m.Sum(nil))
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
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return nil, errors.New("console: TLS needs both a certificate and a key file")
	}
	c := &Console{cfg: cfg, served: make(chan struct{}), sess: newSessions()}
	var tlsCfg *tls.Config
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("console: loading the TLS certificate %s and key %s: %w", cfg.TLSCert, cfg.TLSKey, err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		c.tls = true
	}
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
	tcp, _ := c.ln.Addr().(*net.TCPAddr)
	if tcp == nil {
		tcp = &net.TCPAddr{}
	}
	if c.hosts, err = newHostPolicy(tcp, cfg.Hosts); err != nil {
		c.ln.Close()
		c.cl.Close()
		return nil, fmt.Errorf("console %s: %w", addr, err)
	}
	if tlsCfg != nil {
		c.ln = tls.NewListener(c.ln, tlsCfg)
	} else if !c.Loopback() {
		cfg.Logger.Warn("the web console listens beyond loopback over plain HTTP: the token, the session cookie and everything shown travel in the clear; give -http-tls CERT,KEY to serve it over HTTPS", "addr", c.ln.Addr().String())
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
// Bound to every address (0.0.0.0 or ::), it names loopback.
func (c *Console) URL() string {
	addr := c.ln.Addr().String()
	if a, ok := c.ln.Addr().(*net.TCPAddr); ok && a.IP.IsUnspecified() {
		addr = net.JoinHostPort("127.0.0.1", fmt.Sprint(a.Port))
	}
	if c.tls {
		return "https://" + addr + "/"
	}
	return "http://" + addr + "/"
}

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

// guard checks the Host and Origin of every request, refuses every request
// without a session when there is a key, and sets headers every answer
// carries.
func (c *Console) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
		h.Set("Cache-Control", "no-store")
		h.Set("Referrer-Policy", "same-origin") // no-referrer would make the form's Origin "null"
		if c.tls {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		if !c.hosts.allowed(r.Host) {
			http.Error(w, fmt.Sprintf("refused: this console does not answer to host %q (it answers to loopback, localhost, its own address and host name, and the names given with -http-host)", r.Host), http.StatusForbidden)
			return
		}
		if origin := r.Header.Get("Origin"); origin != "" || r.Method == http.MethodPost {
			if origin == "" {
				http.Error(w, "refused: a POST to the console needs an Origin header (browsers send it)", http.StatusForbidden)
				return
			}
			if err := sameOrigin(origin, r.Host, c.tls); err != nil {
				http.Error(w, "refused: "+err.Error(), http.StatusForbidden)
				return
			}
		}
		if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && strings.HasPrefix(r.URL.Path, "/api/") {
			// An <img> or a link of another site; the page's own
			// requests are same-origin.
			http.Error(w, fmt.Sprintf("refused: a %s request to the console's interface", site), http.StatusForbidden)
			return
		}
		if c.token == "" || (r.Method == http.MethodPost && r.URL.Path == "/login") {
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), grantKey{}, grant{who: "anyone", write: true})))
			return
		}
		q := r.URL.Query()
		if q.Has("token") {
			g, err := c.grantFor(q.Get("token"))
			if r.Method != http.MethodGet || err != nil {
				http.Error(w, "unauthorized: that token was refused (circuit console-token prints the right one): "+errText(err), http.StatusUnauthorized)
				return
			}
			if err := c.startSession(w, r, g); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			// The token leaves the address bar (and the history) at once.
			http.Redirect(w, r, withoutToken(r.URL), http.StatusSeeOther)
			return
		}
		if ck, err := r.Cookie(cookieName); err == nil {
			if g, ok := c.sess.valid(ck.Value); ok {
				next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), grantKey{}, g)))
				return
			}
		}
		if r.Method == http.MethodGet && r.URL.Path == "/" {
			h.Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(loginPage(false)))
			return
		}
		http.Error(w, "unauthorized: this cluster has a key; log in with the console token (circuit console-token) on the console's page", http.StatusUnauthorized)
	})
}

// withoutToken is u's path and query without its token parameters, the
// other parameters kept in their order.
func withoutToken(u *url.URL) string {
	var kept []string
	for _, kv := range strings.Split(u.RawQuery, "&") {
		k, _, _ := strings.Cut(kv, "=")
		if name, err := url.QueryUnescape(k); kv == "" || (err == nil && name == "token") {
			continue
		}
		kept = append(kept, kv)
	}
	out := url.URL{Path: u.Path, RawPath: u.RawPath, RawQuery: strings.Join(kept, "&")}
	return out.RequestURI()
}

// grantFor checks a token, the key's or a credential's, and returns what a
// session of it may do.
func (c *Console) grantFor(t string) (grant, error) {
	if strings.HasPrefix(t, credTokenPrefix) {
		g, err := c.credGrant(t)
		if err != nil {
			c.cfg.Logger.Warn("console: a credential's token refused", "err", err)
		}
		return g, err
	}
	if subtle.ConstantTimeCompare([]byte(t), []byte(c.token)) != 1 {
		return grant{}, errors.New("it is neither the key's token nor a credential's")
	}
	return grant{who: "key", write: true}, nil
}

// errText is err's text, or "" for nil.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// startSession makes a session for a browser that gave a token, and sets
// its cookie.
func (c *Console) startSession(w http.ResponseWriter, r *http.Request, g grant) error {
	c.cfg.Logger.Info("console: session opened", "who", g.who, "write", c.cfg.Write && g.write, "from", r.RemoteAddr)
	id, err := c.sess.create(g)
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: id, Path: "/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	return nil
}

// login takes the token from the login page's form.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if c.token == "" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 8192)
	g, err := c.grantFor(r.PostFormValue("token"))
	if err != nil {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(loginPage(true)))
		return
	}
	if err := c.startSession(w, r, g); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
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
<p>This cluster has a key. Enter a console token: <code>circuit console-token</code> prints the key's, and <code>circuit console-token -cred FILE</code> a credential's, whose role the console applies.</p>
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
