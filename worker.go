package circuit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/profile"
)

// envWorker marks a process started by Spawn; its value is the worker ID.
const envWorker = "CIRCUIT_WORKER"

// envControl names the control socket a worker's server gave it.
const envControl = "CIRCUIT_CONTROL"

// envReady names the descriptor on which a worker tells its server that it
// runs its function.
const envReady = "CIRCUIT_READY"

// envCred names the file of a worker's credential, set by its server
// (client.Cmd.Cred) when the cluster has a key.
const envCred = "CIRCUIT_CRED"

// maxRequest bounds what a worker reads on its standard input.
const maxRequest = 256 << 20

// request is what a spawner sends a worker on its standard input. It does
// not name the worker, whose ID is in its environment: a respawn gives the
// same request to the worker that replaces it.
type request struct {
	Server string            // the circuit URL of the worker's server
	Func   string            // the registered function's name
	Args   []json.RawMessage // its arguments, without a context
	Dirs   []string          `json:",omitempty"`
}

// outcome is what a worker writes to file descriptor 3: its result.
type outcome struct {
	Results []json.RawMessage `json:",omitempty"`
	Error   string            `json:",omitempty"` // the function's error
	Panic   string            `json:",omitempty"` // a panic's value and stack
	Failed  string            `json:",omitempty"` // the worker could not run the function
}

// Exit codes of a worker process.
const (
	exitFuncError = 1 // the function returned an error
	exitPanic     = 2 // the function panicked
	exitBadSpawn  = 3 // the worker could not run the function
)

// state is the process's place in the cluster.
var state struct {
	sync.Mutex
	c      *client.Client
	opts   client.Options // how a worker connects, lazily
	worker string         // this process's worker ID, "" for a spawner
	self   *Worker        // this worker, nil for a spawner
	ctx    context.Context
}

// Context returns, in a worker, the context that ends when the worker is
// asked to stop: by SIGTERM, which circuit kill -grace sends (as a respawn
// will), giving the worker that long to return before it is killed. It is
// the context a spawned function that takes one receives. Outside a worker
// it never ends.
//
// To stop without interruption, a worker returns once its context ends,
// holding no request it has taken and not answered.
func Context() context.Context {
	state.Lock()
	defer state.Unlock()
	if state.ctx == nil {
		return context.Background()
	}
	return state.ctx
}

// Main is the entry hook: call it first thing in main. In a process that
// Spawn started, it runs the spawned function and exits; elsewhere it
// returns at once. A program that spawns must call it, or its workers
// would run its main instead.
func Main() {
	id := os.Getenv(envWorker)
	if id == "" {
		return
	}
	os.Unsetenv(envWorker)
	os.Exit(runWorker(id))
}

// runWorker runs the spawned function and returns the exit code.
func runWorker(id string) int {
	res := os.NewFile(3, "result")
	report := func(o outcome, code int) int {
		b, err := json.Marshal(o)
		if err == nil && res != nil {
			_, err = res.Write(b)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "circuit worker %s: reporting the result: %v\n", id, err)
		}
		if o.Failed != "" {
			fmt.Fprintf(os.Stderr, "circuit worker %s: %s\n", id, o.Failed)
		}
		return code
	}
	b, err := readRequest(requestWait)
	if err != nil {
		return report(outcome{Failed: "reading the spawn request: " + err.Error()}, exitBadSpawn)
	}
	var req request
	if err := json.Unmarshal(b, &req); err != nil {
		return report(outcome{Failed: fmt.Sprintf("decoding the spawn request (%d bytes): %v", len(b), err)}, exitBadSpawn)
	}
	fn, err := lookupName(req.Func)
	if err != nil {
		return report(outcome{Failed: err.Error()}, exitBadSpawn)
	}
	server, err := parseServer(req.Server)
	if err != nil {
		return report(outcome{Failed: "the spawn request names no server: " + err.Error()}, exitBadSpawn)
	}
	state.Lock()
	state.worker = id
	state.self = &Worker{id: id, server: server, fn: req.Func, dirs: req.Dirs}
	// Under a key, the server gave the worker a credential of its own
	// (client.Cmd.Cred): the cluster key never reaches a worker.
	state.opts = client.Options{Addr: req.Server, CredFile: os.Getenv(envCred)}
	state.Unlock()

	// The worker's server gave it a control socket, where it serves its
	// profiles (circuit pprof, circuit stk) while it runs.
	if path := os.Getenv(envControl); path != "" {
		os.Unsetenv(envControl)
		if ln, err := net.Listen("unix", path); err == nil {
			defer ln.Close()
			go profile.Serve(ln)
		} else {
			fmt.Fprintf(os.Stderr, "circuit worker %s: no control socket, so no profiles: %v\n", id, err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	state.Lock()
	state.ctx = ctx
	state.Unlock()
	signalReady(id)
	var o outcome
	code := func() (code int) {
		defer func() {
			if p := recover(); p != nil {
				o = outcome{Panic: fmt.Sprintf("%v\n%s", p, debug.Stack())}
				code = exitPanic
			}
		}()
		results, err := fn.call(ctx, req.Args)
		var de *decodeError
		switch {
		case errors.As(err, &de):
			o.Failed = err.Error()
			return exitBadSpawn
		case err != nil:
			o.Results, o.Error = results, err.Error()
			return exitFuncError
		}
		o.Results = results
		return 0
	}()
	code = report(o, code)
	closeClient()
	return code
}

// signalReady tells the worker's server that it runs its function (a
// respawn waits for it before it stops the worker replaced), on the
// descriptor the server named.
func signalReady(id string) {
	fd, err := strconv.Atoi(os.Getenv(envReady))
	os.Unsetenv(envReady)
	if err != nil || fd < 3 {
		return
	}
	f := os.NewFile(uintptr(fd), "ready")
	if f == nil {
		return
	}
	if _, err := f.Write([]byte{1}); err != nil {
		fmt.Fprintf(os.Stderr, "circuit worker %s: telling its server it runs: %v\n", id, err)
	}
	f.Close()
}

// requestWait bounds how long a worker waits for its request: a spawner
// that died between starting the worker and sending it must not leave the
// worker waiting, and listed, for ever.
const requestWait = time.Minute

// readRequest reads standard input to its end, within wait.
func readRequest(wait time.Duration) ([]byte, error) {
	type read struct {
		b   []byte
		err error
	}
	done := make(chan read, 1)
	go func() {
		b, err := io.ReadAll(io.LimitReader(os.Stdin, maxRequest))
		done <- read{b, err}
	}()
	select {
	case r := <-done:
		return r.b, r.err
	case <-time.After(wait):
		return nil, fmt.Errorf("none arrived within %v", wait)
	}
}

// closeClient closes the process's client, waiting briefly so that what
// the function sent is out.
func closeClient() {
	state.Lock()
	c := state.c
	state.c = nil
	state.Unlock()
	if c != nil {
		done := make(chan struct{})
		go func() { c.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
		}
	}
}

// Connect connects a spawning program to a cluster; Spawn and MakeChan
// use the connection from then on. A worker needs no call: it connects to
// its own server, with the credential that server made for it (a worker
// never has the cluster key: see Spawn).
func Connect(ctx context.Context, opts client.Options) (*client.Client, error) {
	c, err := client.Connect(ctx, opts)
	if err != nil {
		return nil, err
	}
	state.Lock()
	defer state.Unlock()
	if state.c != nil {
		state.c.Close()
	}
	state.c, state.opts = c, opts
	return c, nil
}

// Dial is Connect in the seeds' style: it panics if the server at addr (a
// circuit URL or host:port) cannot be reached with the cluster key authkey
// (nil for none).
func Dial(addr string, authkey []byte) *client.Client {
	c, err := Connect(context.Background(), client.Options{Addr: addr, Key: authkey})
	if err != nil {
		panic(err)
	}
	return c
}

// ErrNoCluster is wrapped when a spawning program used the package before
// Connect or Dial.
var ErrNoCluster = errors.New("no cluster: call circuit.Connect or circuit.Dial first")

// Client returns the client in use: the one Connect made or, in a worker,
// a connection to the worker's server, made on first use.
func Client() (*client.Client, error) {
	state.Lock()
	defer state.Unlock()
	if state.c != nil {
		return state.c, nil
	}
	if state.worker == "" {
		return nil, ErrNoCluster
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Connect(ctx, state.opts)
	if err != nil {
		return nil, fmt.Errorf("worker %s connecting to its server: %w", state.worker, err)
	}
	state.c = c
	return c, nil
}

// Self returns this worker, or nil outside a worker: its ID, server and
// directories. Pass it to another worker to let that one watch it.
func Self() *Worker {
	state.Lock()
	defer state.Unlock()
	return state.self
}

// ConnectEnv connects a spawning program as the circuit command does
// without flags: to addr (a circuit URL) or, when addr is "", to the URL in
// the file that $CIRCUIT names; with the key in the file that
// $CIRCUIT_HMAC names, if it is set.
func ConnectEnv(ctx context.Context, addr string) (*client.Client, error) {
	if addr == "" {
		file := os.Getenv("CIRCUIT")
		if file == "" {
			return nil, errors.New("no dial-in server: give a circuit URL, or set $CIRCUIT to a file holding one")
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("$CIRCUIT: %w", err)
		}
		addr = strings.TrimSpace(string(b))
	}
	var key []byte
	if file := os.Getenv("CIRCUIT_HMAC"); file != "" {
		var err error
		if key, err = os.ReadFile(file); err != nil {
			return nil, fmt.Errorf("$CIRCUIT_HMAC: %w", err)
		}
	}
	return Connect(ctx, client.Options{Addr: addr, Key: key})
}
