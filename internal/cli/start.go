package cli

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/circuit-project/circuit/internal/cluster"
	"github.com/circuit-project/circuit/internal/fault"
	"github.com/circuit-project/circuit/internal/footprint"
	"github.com/circuit-project/circuit/internal/graveyard"
	"github.com/circuit-project/circuit/internal/label"
	"github.com/circuit-project/circuit/internal/metrics"
	"github.com/circuit-project/circuit/internal/security"
	"github.com/circuit-project/circuit/internal/server"
	"golang.org/x/sys/unix"
)

// trimEvery is how often an idle server checks whether it grew and went
// quiet, to let go of memory it no longer uses (footprint.Keep). One wake
// every 5 s costs nothing measurable.
const trimEvery = 5 * time.Second

type startFlags struct {
	addr, iface, bind, discover, hmac, varDir, timing, logLevel, fsRoot, dc, audit string
	join, labels                                                                   multiFlag
	docker, requireKey, noExec                                                     bool
	graveMax                                                                       int
	graveAge                                                                       time.Duration

	// the web console (console.go)
	httpAddr  string
	httpWrite bool
	httpHost  string // -http-host NAME[,NAME...]
	httpTLS   string // -http-tls CERT,KEY

	metrics string // -metrics: Prometheus endpoint (package metrics)
}

// multiFlag is a flag that may be given several times.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func startCmd() *command {
	return &command{
		name:  "start",
		short: "run a circuit server on this host",
		long: `Prints the server's URL (circuit://HOST:PORT/PID/ID) on standard output, one
line, then serves until stopped (SIGTERM, SIGINT, or circuit suicide). Logs
go to standard error, and to DIR/circuit.log with -var DIR.

Examples:
  circuit start -a 10.0.0.1:11022
  circuit start -a 10.0.0.2:11088 -j circuit://10.0.0.1:11022/78517/X56e7a2a0d47a7b5d
  circuit start -if eth0 -discover 228.8.8.8:7711
  circuit start -a 10.0.0.3:11022 -label role=db -label zone=a
  circuit start -a 10.1.0.1:11022 -dc west -j circuit://10.0.0.1:11022/78517/X56e7a2a0d47a7b5d`,
		json: `The first line of standard output is one JSON object instead of the URL:
URL, ID, Addr (as advertised) and PID.`,
		flags: func(fs *flag.FlagSet) any {
			f := &startFlags{}
			fs.StringVar(&f.addr, "a", "", "address to bind and advertise, `HOST[:PORT]` (port 11022 if omitted; 0 picks a free one)")
			fs.StringVar(&f.iface, "if", "", "bind the address of this network `INTERFACE`")
			fs.StringVar(&f.bind, "bind", "", "bind this `HOST` instead (0.0.0.0: every address, loopback included) while advertising the -a or -if address")
			fs.Var(&f.labels, "label", "attach a `KEY=VALUE` label to this server, for selectors such as circuit run -l role=db (may repeat)")
			fs.StringVar(&f.dc, "dc", "", "place this server in datacenter `NAME`: LAN timers with its own datacenter, WAN timers with the others (-j may name a server of any datacenter)")
			fs.Var(&f.join, "j", "join the cluster of the server at this `URL` (retried until it answers; may repeat)")
			fs.StringVar(&f.discover, "discover", "", "find and be found by other servers by UDP multicast on `GROUP:PORT` (default $CIRCUIT_DISCOVER)")
			addKeyFlag(fs, &f.hmac)
			fs.BoolVar(&f.requireKey, "require-key", false, "refuse to start without a cluster key (also $CIRCUIT_REQUIRE_KEY=1, which the packaged unit and image set)")
			fs.BoolVar(&f.docker, "docker", false, "allow container elements (mkdkr), through the Docker engine of this host")
			fs.StringVar(&f.fsRoot, "fs-root", "", "confine circuit cp on this server to `DIR` (default: every path)")
			fs.IntVar(&f.graveMax, "graveyard-max", 0, "keep at most `N` records of ended workers (default 10000)")
			fs.DurationVar(&f.graveAge, "graveyard-age", 0, "keep records of ended workers for `DURATION` (default 168h)")
			fs.StringVar(&f.audit, "audit", "", "append every operation's records (who, from where, what, the outcome) to `FILE` as JSON lines; circuit log reads the recent ones")
			fs.BoolVar(&f.noExec, "no-exec", false, "refuse every operation that starts a command (mkproc, run, exec, mkdkr, Spawn) to everyone, the key's holder included")
			fs.StringVar(&f.varDir, "var", "", "state `DIR`: a lock against a second server, and circuit.log")
			fs.StringVar(&f.timing, "timing", string(cluster.LAN), "failure-detection timers, `PRESET`: lan, or local for clusters on one machine")
			fs.StringVar(&f.logLevel, "log", "info", "log `LEVEL`: debug, info, warn or error")
			fs.StringVar(&f.metrics, "metrics", "", "serve Prometheus metrics at http://`HOST:PORT`/metrics, bound exactly as given (:PORT binds every address; port 0 picks one, logged); off by default")
			fs.StringVar(&f.httpAddr, "http", "", "serve the web console on `HOST:PORT` (:PORT binds 127.0.0.1; with a key it asks for circuit console-token)")
			fs.BoolVar(&f.httpWrite, "http-write", false, "let the web console start processes, signal them and scrub elements")
			fs.StringVar(&f.httpHost, "http-host", "", "more host `NAME[,NAME...]` the web console answers to (it refuses other Host and Origin headers; loopback, localhost, its bound address and this machine's host name are always allowed)")
			fs.StringVar(&f.httpTLS, "http-tls", "", "serve the web console over HTTPS with the PEM certificate and key files `CERT,KEY`")
			return f
		},
		run: runStart,
	}
}

func runStart(env *Env, inv *invocation) error {
	f := inv.opts.(*startFlags)
	if len(inv.args) != 0 {
		return usagef("start takes no arguments, got %q", inv.args)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return usagef("-log %q: want debug, info, warn or error", f.logLevel)
	}
	if f.graveMax < 0 || f.graveAge < 0 {
		return usagef("-graveyard-max %d, -graveyard-age %v: want 0 (the default) or more", f.graveMax, f.graveAge)
	}
	timing := cluster.Timing(f.timing)
	if timing != cluster.LAN && timing != cluster.Local {
		return usagef("-timing %q: want lan or local", f.timing)
	}
	labels := label.Set{}
	for _, l := range f.labels {
		k, v, err := label.ParsePair(l)
		if err != nil {
			return usagef("-label: %v", err)
		}
		if _, dup := labels[k]; dup {
			return usagef("-label: %q given twice", k)
		}
		if k == label.DC {
			return usagef("-label %s: %q is the datacenter, which selectors read from -dc; use -dc %s", l, k, v)
		}
		labels[k] = v
	}
	if err := checkConsoleFlags(f); err != nil {
		return err
	}
	if f.metrics != "" {
		if err := metrics.CheckAddr(f.metrics); err != nil {
			return usagef("-metrics %q: %v", f.metrics, err)
		}
	}
	if f.dc != "" {
		if err := label.CheckValue(f.dc); err != nil {
			return usagef("-dc %q: %v", f.dc, err)
		}
	}
	handlers := []slog.Handler{slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: level})}
	if f.varDir != "" {
		if err := os.MkdirAll(f.varDir, 0o700); err != nil {
			return fmt.Errorf("-var: %w", err)
		}
	}
	cfg := server.Config{Addr: f.addr, Iface: f.iface, Bind: f.bind, Join: f.join, Discover: f.discover, VarDir: f.varDir, Timing: timing, Docker: f.docker, FSRoot: f.fsRoot, DC: f.dc, Metrics: f.metrics, NoExec: f.noExec, Audit: f.audit,
		Graveyard: graveyard.Limits{Max: f.graveMax, Age: f.graveAge}}
	if len(labels) > 0 {
		cfg.Labels = labels
	}
	if cfg.Discover == "" {
		cfg.Discover = env.Getenv("CIRCUIT_DISCOVER")
	}
	// -hmac, else $CIRCUIT_HMAC, else systemd's credential; read once, for
	// the server and its console.
	rawKey, err := readKey(env, f.hmac, true)
	if err != nil {
		return err
	}
	if rawKey != nil {
		if cfg.Key, err = security.Parse(rawKey); err != nil {
			return fault.Errorf(fault.BadRequest, "the cluster key: %v", err)
		}
		// Processes of the same user may no longer read this one's
		// memory, environment or descriptors (and the key in them)
		// through /proc or ptrace.
		if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
			fmt.Fprintf(env.Stderr, "circuit start: warning: could not make the server undumpable: %v\n", err)
		}
	} else if f.requireKey || env.Getenv("CIRCUIT_REQUIRE_KEY") == "1" {
		return usagef("no cluster key, and this server requires one (-require-key or CIRCUIT_REQUIRE_KEY=1): make one with\n  circuit keygen > /etc/circuit/hmac && chmod 600 /etc/circuit/hmac\nand give it with -hmac FILE, CIRCUIT_HMAC=FILE or the systemd credential %s (the same file on every host)", credentialName)
	}
	ctx, stop := signal.NotifyContext(env.Ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	if f.varDir != "" {
		// Opening (not writing) the log before the server takes the -var
		// lock is harmless: a refused second server writes nothing to it.
		logFile, err := os.OpenFile(filepath.Join(f.varDir, "circuit.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("-var: opening log: %w", err)
		}
		defer logFile.Close()
		handlers = append(handlers, slog.NewJSONHandler(logFile, &slog.HandlerOptions{Level: level}))
	}
	cfg.Logger = slog.New(slog.NewMultiHandler(handlers...))
	srv, err := server.Start(cfg)
	if err != nil {
		return err
	}
	con, err := startConsole(ctx, env, f, rawKey, srv, cfg.Logger)
	if err != nil {
		srv.Stop()
		return err
	}
	if u := srv.URL(); env.jsonOut {
		printJSON(env, struct {
			URL, ID, Addr string
			PID           int
		}{u.String(), u.ID.String(), u.Addr, u.PID})
	} else {
		fmt.Fprintln(env.Stdout, u.String())
	}
	footprint.Trim() // start-up is over: let go of the code it ran
	footprint.FixProcs()
	keepCtx, stopKeep := context.WithCancel(ctx)
	kept := make(chan struct{})
	go func() { defer close(kept); footprint.Keep(keepCtx, trimEvery) }()
	defer func() { stopKeep(); <-kept }()
	select {
	case <-ctx.Done():
	case <-srv.StopRequested():
	}
	if con != nil {
		con.Close()
	}
	srv.Stop()
	return nil
}
