package circuit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/anchorfs"
	"github.com/circuit-project/circuit/internal/ident"
)

// Spawn runs fn(args...) in a new worker process of this program on the
// server host ("X..." or "/X...", or "" for a server chosen at random),
// listed in the anchor-file-system directories dirs while it runs. It
// returns once the worker has started; Worker.Wait returns fn's results.
//
// Errors name what went wrong: fn not registered (ErrNotRegistered), an
// argument of the wrong type or one JSON cannot encode, a bad directory,
// the host lost (a *client.HostLostError), an upload cut short. A failed
// Spawn leaves no process or directory entry behind.
//
// A worker never receives the cluster key. On a keyed cluster its server
// gives it a credential of its own (client.Cmd.Cred), named "worker R…"
// after its ID and recording who spawned it: enough to use the cluster as
// a client (spawn, channels, processes), but not to mint credentials, act
// as a server, read gossip or open the console. The server renews it while
// the worker runs and removes its file when the worker ends; it expires a
// day after its last renewal.
func Spawn(host string, dirs []string, fn any, args ...any) (*Worker, error) {
	return SpawnContext(context.Background(), host, dirs, fn, args...)
}

// SpawnContext is Spawn with a context bounding the spawn itself (not the
// worker, which runs on).
func SpawnContext(ctx context.Context, host string, dirs []string, fn any, args ...any) (w *Worker, err error) {
	info, err := lookup(fn)
	if err != nil {
		return nil, fmt.Errorf("spawn: %w", err)
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("spawn %s: %w", info.name, err)
		}
	}()
	if id := os.Getenv(envWorker); id != "" {
		return nil, fmt.Errorf("this process was started as worker %s but its main did not call circuit.Main first", id)
	}
	raw, err := info.encodeArgs(args)
	if err != nil {
		return nil, err
	}
	for _, d := range dirs {
		if _, err := anchorfs.ParseDir(d); err != nil {
			return nil, err
		}
	}
	c, err := Client()
	if err != nil {
		return nil, err
	}
	target, err := chooseServer(ctx, c, host)
	if err != nil {
		return nil, err
	}
	server := target.ID
	bin, err := ensureBinary(ctx, c, server)
	if err != nil {
		return nil, err
	}
	id := anchorfs.NewWorkerID()
	req := request{Server: target.URL, Func: info.name, Args: raw, Dirs: dirs}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	anchor := "/" + server + "/" + id
	cmd := client.Cmd{
		Path: bin, Args: []string{info.name},
		Env:  []string{envWorker + "=" + id, "PATH=/usr/local/bin:/usr/bin:/bin"},
		Dirs: dirs, Result: true, Scrub: true, Cred: true,
	}
	// The request goes with the command, and the server keeps it for a
	// respawn; one too large for that goes on stdin's stream.
	streamed := len(body) > client.MaxStdin
	if !streamed {
		cmd.Stdin = body
	}
	h, err := c.MakeProcAt(ctx, anchor, cmd)
	if err != nil {
		return nil, err
	}
	// The dial-in server keeps the worker's record if its host is lost.
	// Without it, only the record of a loss is lost: the worker runs all
	// the same.
	expected := make(chan error, 1)
	go func() {
		rec := client.GraveRecord{ID: id, Func: info.name, Binary: filepath.Base(bin), Server: server, Anchor: anchor, Dirs: dirs, Start: time.Now()}
		expected <- c.ExpectWorker(ctx, rec, h.Serial())
	}()
	defer func() {
		if err := <-expected; err != nil && !errors.Is(err, client.ErrDenied) {
			fmt.Fprintf(os.Stderr, "circuit: spawn %s: the dial-in server will not record worker %s if its host is lost: %v\n", info.name, id, err)
		}
	}()
	if streamed {
		if err := sendRequest(ctx, h, body); err != nil {
			// Leave nothing behind: the worker would wait for its request.
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c.ScrubAt(sctx, anchor)
			return nil, fmt.Errorf("sending the request to worker %s: %w", id, err)
		}
	}
	return &Worker{id: id, server: server, fn: info.name, serial: h.Serial(), dirs: dirs, c: c}, nil
}

func sendRequest(ctx context.Context, h *client.ProcHandle, body []byte) error {
	stdin, err := h.OpenStream(ctx, "stdin")
	if err != nil {
		return err
	}
	defer stdin.Close()
	if _, err := stdin.Write(body); err != nil {
		return err
	}
	if cw, ok := stdin.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return stdin.Close()
}

// chooseServer resolves the host argument of Spawn ("X...", "/X...", or ""
// for one at random) to a member of the cluster.
func chooseServer(ctx context.Context, c *client.Client, host string) (client.Member, error) {
	host = strings.TrimPrefix(host, "/")
	var want string
	if host != "" {
		id, err := ident.ParseID(host)
		if err != nil {
			return client.Member{}, fmt.Errorf("host %q: %w", host, err)
		}
		want = id.String()
	}
	members, err := c.Members(ctx)
	if err != nil {
		return client.Member{}, err
	}
	if want == "" {
		if len(members) == 0 {
			return client.Member{}, errors.New("the cluster has no servers")
		}
		return members[rand.IntN(len(members))], nil
	}
	for _, m := range members {
		if m.ID == want {
			return m, nil
		}
	}
	return client.Member{}, &client.HostLostError{Server: want, NotMember: true, Err: errors.New("not a member of the cluster")}
}

func parseServer(url string) (string, error) {
	u, err := ident.ParseURL(url)
	if err != nil {
		return "", err
	}
	return u.ID.String(), nil
}

// self is this program's binary, hashed once.
var self struct {
	once sync.Once
	sum  string
	size int64
	err  error
}

// selfPath is the running program's image: on Linux, the file it was
// started from even if that was replaced or removed since.
func selfPath() (string, error) {
	if _, err := os.Stat("/proc/self/exe"); err == nil {
		return "/proc/self/exe", nil
	}
	return os.Executable()
}

func selfDigest() (string, int64, error) {
	self.once.Do(func() {
		path, err := selfPath()
		if err != nil {
			self.err = err
			return
		}
		f, err := os.Open(path)
		if err != nil {
			self.err = err
			return
		}
		defer f.Close()
		self.sum, self.size, self.err = client.FileDigest(f)
	})
	return self.sum, self.size, self.err
}

// uploads remembers, per server, where this program's binary is stored;
// a server's entry is filled by one upload while others wait for it.
var uploads struct {
	sync.Mutex
	at map[string]*upload
}

type upload struct {
	done chan struct{}
	path string
	err  error
}

// testHookUpload, when set, wraps the binary's reader during an upload.
var testHookUpload func(server string, r io.Reader) io.Reader

// ensureBinary makes sure the server stores this program's binary and
// returns its path there, uploading it at most once per server.
func ensureBinary(ctx context.Context, c *client.Client, server string) (string, error) {
	sum, size, err := selfDigest()
	if err != nil {
		return "", fmt.Errorf("reading this program's binary: %w", err)
	}
	uploads.Lock()
	if uploads.at == nil {
		uploads.at = map[string]*upload{}
	}
	u, ok := uploads.at[server]
	if ok {
		uploads.Unlock()
		select {
		case <-u.done:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		if u.err == nil {
			return u.path, nil
		}
		return ensureBinary(ctx, c, server) // the failed attempt removed itself
	}
	u = &upload{done: make(chan struct{})}
	uploads.at[server] = u
	uploads.Unlock()
	defer close(u.done)
	u.path, u.err = storeBinary(ctx, c, server, sum, size)
	if u.err != nil {
		uploads.Lock()
		delete(uploads.at, server)
		uploads.Unlock()
	}
	return u.path, u.err
}

func storeBinary(ctx context.Context, c *client.Client, server, sum string, size int64) (string, error) {
	st, err := c.StatBinary(ctx, server, sum)
	if err != nil {
		return "", err
	}
	if st.Present {
		return st.Path, nil
	}
	path, err := selfPath()
	if err != nil {
		return "", err
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("reading this program's binary: %w", err)
	}
	defer f.Close()
	var r io.Reader = f
	if testHookUpload != nil {
		r = testHookUpload(server, r)
	}
	st, err = c.UploadBinary(ctx, server, sum, size, r)
	if err != nil {
		return "", err
	}
	return st.Path, nil
}

// Respawn replaces the live workers listed in an anchor-file-system
// directory (below it with a trailing /...) with new ones, one at a time,
// as circuit respawn does: the same function, arguments and directories on
// the same server, from opts.Binary (a local file, uploaded once per server)
// or each worker's own binary. Each old worker's Context ends once its
// replacement runs; it has opts.Grace to return. See client.Respawn.
//
// A worker replaced without interruption is one that returns once its
// Context ends, and holds no request it has taken and not answered then.
func Respawn(ctx context.Context, dir string, opts client.RespawnOpts) ([]client.Replacement, error) {
	c, err := Client()
	if err != nil {
		return nil, fmt.Errorf("respawn: %w", err)
	}
	return c.Respawn(ctx, dir, opts)
}
