package docker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path"
	"strings"
	"sync"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"

	"github.com/circuit-project/circuit/internal/element/proc"
	"github.com/circuit-project/circuit/internal/element/stdio"
	"github.com/circuit-project/circuit/internal/kind"
)

// Config is the container to run.
type Config struct {
	Image     string
	Memory    int64    // memory limit in bytes; 0 for none
	CpuShares int64    // relative CPU weight; 0 for Docker's default
	Lxc       []string // obsolete: accepted, ignored, reported by a warning
	Volume    []string // "/webapp" (anonymous volume) or "/src/webapp:/opt/webapp:ro" (bind mount)
	Dir       string   // working directory; "" keeps the image's
	Entry     string   // entrypoint override; "" keeps the image's
	Env       []string // added to the image's environment
	Path      string   // the command: Cmd = [Path] + Args; "" keeps the image's
	Args      []string
	Scrub     bool // the server removes the element when the container exits
}

// Phase of a container.
const (
	Running = "running"
	Exited  = "exited"
)

// Stat is the state of a container, as the circuit keeps it.
type Stat struct {
	ID       string // the Docker container ID
	Name     string // the Docker container name
	Image    string
	Phase    string
	ExitCode int    // -1 while running, or when the exit status could not be learned
	Exit     string // "" for success or while running, else why it failed
	Started  time.Time
	Exited   time.Time // zero while running
}

// ErrImageNotFound is wrapped by the error of Start when the image is not on
// the host.
var ErrImageNotFound = errors.New("image not found")

// missingImageError is Start's error for an image that is not on the host:
// its message is the whole explanation, and it matches ErrImageNotFound.
type missingImageError struct{ image string }

func missingImage(image string) error { return &missingImageError{image} }

func (e *missingImageError) Error() string {
	return fmt.Sprintf("image %q not found on this host, and no registry is reachable to pull it (load it with docker load or docker import)", e.image)
}

func (e *missingImageError) Is(target error) bool { return target == ErrImageNotFound }

// Label is the Docker label that holds the anchor path of a container made
// by Start.
const Label = "circuit.anchor"

// Timeouts of engine calls made without a context from the caller.
const (
	callTimeout  = 30 * time.Second // Signal, Scrub, cleanups
	retryBackoff = time.Second      // between attempts to learn an exit status
)

// Engine is a connection to the Docker engine of this host.
type Engine struct {
	cli  *client.Client
	host string

	ctx    context.Context // ends at Close; bounds every goroutine below
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	live   map[*Container]struct{}
}

// NewEngine connects to the Docker engine named by the environment
// (DOCKER_HOST and friends; the local socket by default) and checks that it
// answers.
func NewEngine(ctx context.Context) (*Engine, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	host := cli.DaemonHost()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, callTimeout)
		defer cancel()
	}
	ping, err := cli.Ping(ctx)
	if err != nil {
		cli.Close()
		return nil, fmt.Errorf("docker engine not reachable at %s: %w", host, err)
	}
	cli.NegotiateAPIVersionPing(ping)
	ectx, cancel := context.WithCancel(context.Background())
	return &Engine{cli: cli, host: host, ctx: ectx, cancel: cancel, live: map[*Container]struct{}{}}, nil
}

// Host is the address of the engine.
func (e *Engine) Host() string { return e.host }

// Close lets go of the engine. It does not stop containers (Stop or Scrub
// them first): their streams are cut, and those still running are reported
// as exited with an unknown status. Every goroutine of the package has ended
// when Close returns.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	live := make([]*Container, 0, len(e.live))
	for c := range e.live {
		live = append(live, c)
	}
	e.mu.Unlock()
	e.cancel()
	for _, c := range live {
		c.cut()
		c.discardOutputs()
	}
	e.wg.Wait()
	return e.cli.Close()
}

// goFunc runs f in a goroutine that Close waits for, unless the engine is
// closed.
func (e *Engine) goFunc(f func()) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return false
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		f()
	}()
	return true
}

// Container is a container made by Start.
type Container struct {
	e    *Engine
	cfg  Config
	id   string
	name string
	hj   types.HijackedResponse // the attach connection: stdin in, stdout and stderr multiplexed out

	ctx    context.Context // ends when the container is scrubbed or the engine closed
	cancel context.CancelFunc

	outW, errW *os.File // the demultiplexer's ends of the output pipes
	cutOnce    sync.Once
	scrubOnce  sync.Once
	done       chan struct{}

	*stdio.Streams // set once attached
	outR, errR     *os.File

	mu   sync.Mutex
	stat Stat
}

// Start creates and starts a container for the element at anchor path name.
// The image must be on the host already: it is never pulled. Warnings are
// the engine's, and one about Lxc if given. On error no container is left.
func (e *Engine) Start(ctx context.Context, name string, cfg Config) (c *Container, warnings []string, err error) {
	e.mu.Lock()
	closed := e.closed
	e.mu.Unlock()
	if closed {
		return nil, nil, errors.New("docker engine closed")
	}
	if cfg.Image == "" {
		return nil, nil, errors.New("container has no Image")
	}
	var cmd []string
	switch {
	case cfg.Path != "":
		cmd = append([]string{cfg.Path}, cfg.Args...)
	case len(cfg.Args) > 0:
		cmd = cfg.Args // arguments to the entrypoint
	}
	cc := &container.Config{
		Image:        cfg.Image,
		Cmd:          cmd,
		Env:          cfg.Env,
		WorkingDir:   cfg.Dir,
		Labels:       map[string]string{Label: name},
		OpenStdin:    true,
		StdinOnce:    true,
		AttachStdin:  true,
		AttachStdout: true,
		AttachStderr: true,
	}
	if cfg.Entry != "" {
		cc.Entrypoint = []string{cfg.Entry}
	}
	init := true
	hc := &container.HostConfig{
		Init:      &init,
		Resources: container.Resources{Memory: cfg.Memory, CPUShares: cfg.CpuShares},
	}
	for _, v := range cfg.Volume {
		switch {
		case strings.Contains(v, ":"):
			hc.Binds = append(hc.Binds, v)
		case strings.HasPrefix(v, "/"):
			if cc.Volumes == nil {
				cc.Volumes = map[string]struct{}{}
			}
			cc.Volumes[v] = struct{}{}
		default:
			return nil, nil, fmt.Errorf("volume %q: want an absolute path in the container, or host:container[:options]", v)
		}
	}
	if len(cfg.Lxc) > 0 {
		warnings = append(warnings, fmt.Sprintf("Lxc ignored: Docker has no LXC driver any more (%s)", strings.Join(cfg.Lxc, "; ")))
	}

	img, err := e.cli.ImageInspect(ctx, cfg.Image)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return nil, nil, missingImage(cfg.Image)
		}
		return nil, nil, fmt.Errorf("inspecting image %q: %w", cfg.Image, err)
	}
	if cmd == nil && cfg.Entry == "" && (img.Config == nil || len(img.Config.Cmd) == 0 && len(img.Config.Entrypoint) == 0) {
		return nil, nil, fmt.Errorf("no command: Path is empty and image %q has no default command", cfg.Image)
	}

	cname, err := containerName(name)
	if err != nil {
		return nil, nil, err
	}
	created, err := e.cli.ContainerCreate(ctx, cc, hc, nil, nil, cname)
	if err != nil {
		return nil, nil, fmt.Errorf("creating container: %w", err)
	}
	warnings = append(warnings, created.Warnings...)
	c = &Container{
		e: e, cfg: cfg, id: created.ID, name: cname,
		done: make(chan struct{}),
	}
	c.ctx, c.cancel = context.WithCancel(e.ctx)
	demuxing := false
	fail := func(err error) (*Container, []string, error) {
		c.cancel()
		c.cut()
		if !demuxing { // else the demultiplexer closes them as it ends
			for _, w := range []*os.File{c.outW, c.errW} {
				if w != nil {
					w.Close()
				}
			}
		}
		for _, r := range []*os.File{c.outR, c.errR} {
			if r != nil {
				r.Close()
			}
		}
		rctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		e.cli.ContainerRemove(rctx, c.id, container.RemoveOptions{Force: true, RemoveVolumes: true})
		e.mu.Lock()
		delete(e.live, c)
		e.mu.Unlock()
		return nil, nil, err
	}

	if err := c.checkCommand(ctx, img.Config); err != nil {
		return fail(err)
	}

	// Attach before starting, so that no output is missed.
	c.hj, err = e.cli.ContainerAttach(ctx, c.id, container.AttachOptions{Stream: true, Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		return fail(fmt.Errorf("attaching to container: %w", err))
	}
	if c.outR, c.outW, err = outputPipe("stdout"); err != nil {
		return fail(err)
	}
	if c.errR, c.errW, err = outputPipe("stderr"); err != nil {
		return fail(err)
	}
	c.Streams = stdio.New(halfCloser{c.hj.Conn, c.hj.CloseWrite}, c.outR, c.errR)

	e.mu.Lock()
	if !e.closed {
		e.live[c] = struct{}{}
	}
	e.mu.Unlock()
	if demuxing = e.goFunc(c.demux); !demuxing {
		return fail(errors.New("docker engine closed"))
	}
	started := time.Now()
	if err := e.cli.ContainerStart(ctx, c.id, container.StartOptions{}); err != nil {
		return fail(fmt.Errorf("starting container: %w", err))
	}
	c.stat = Stat{ID: c.id, Name: cname, Image: cfg.Image, Phase: Running, ExitCode: -1, Started: started}
	if !e.goFunc(c.watch) {
		return fail(errors.New("docker engine closed"))
	}
	return c, warnings, nil
}

// checkCommand makes sure, as far as it can tell, that the program the
// container would run is in its file system, so that a wrong Path is an
// error from Start, as for a process, rather than an exit status 127 from
// the init process. Programs in volumes, and entrypoints of the image, are
// not checked.
func (c *Container) checkCommand(ctx context.Context, img *dockerspec.DockerOCIImageConfig) error {
	prog := c.cfg.Entry
	if prog == "" {
		if img != nil && len(img.Entrypoint) > 0 {
			return nil
		}
		prog = c.cfg.Path
	}
	if prog == "" {
		return nil
	}
	var candidates []string
	if strings.Contains(prog, "/") {
		if !path.IsAbs(prog) {
			return nil // relative to the working directory
		}
		candidates = []string{prog}
	} else {
		search := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
		var env []string
		if img != nil {
			env = img.Env
		}
		for _, kv := range append(env, c.cfg.Env...) {
			if v, ok := strings.CutPrefix(kv, "PATH="); ok {
				search = v
			}
		}
		for _, dir := range strings.Split(search, ":") {
			if path.IsAbs(dir) {
				candidates = append(candidates, path.Join(dir, prog))
			}
		}
	}
	for _, cand := range candidates {
		for _, v := range c.cfg.Volume {
			dst := v
			if parts := strings.Split(v, ":"); len(parts) > 1 {
				dst = parts[1]
			}
			if dst = path.Clean(dst); cand == dst || strings.HasPrefix(cand, dst+"/") || dst == "/" {
				return nil // in a volume, mounted only at start
			}
		}
	}
	for _, cand := range candidates {
		_, err := c.e.cli.ContainerStatPath(ctx, c.id, cand)
		switch {
		case err == nil:
			return nil
		case !cerrdefs.IsNotFound(err):
			return nil // cannot tell: let the start decide
		}
	}
	return fmt.Errorf("command %q not found in image %q", prog, c.cfg.Image)
}

// containerName makes a Docker container name for the element at anchor
// path name: readable, and unique by a random suffix.
func containerName(name string) (string, error) {
	var b strings.Builder
	dash := false
	for _, r := range strings.Trim(name, "/") {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.'
		switch {
		case ok:
			b.WriteRune(r)
			dash = false
		case !dash:
			b.WriteByte('-')
			dash = true
		}
		if b.Len() >= 100 {
			break
		}
	}
	var suffix [4]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return "", fmt.Errorf("naming container: %w", err)
	}
	base := strings.Trim(b.String(), "-")
	if base == "" {
		return "circuit-" + hex.EncodeToString(suffix[:]), nil
	}
	return "circuit-" + base + "-" + hex.EncodeToString(suffix[:]), nil
}

// outputPipe makes the pipe of an output stream, with a 1 MiB buffer as far
// as the system allows, so that short stalls of a reader do not hold up the
// container.
func outputPipe(name string) (r, w *os.File, err error) {
	r, w, err = os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("making %s pipe: %w", name, err)
	}
	if rc, err := w.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_SETPIPE_SZ, 1<<20) // best effort
		})
	}
	return r, w, nil
}

// demux splits the attach stream into the stdout and stderr pipes until the
// engine ends it (the container's output ended) or it is cut.
func (c *Container) demux() {
	stdcopy.StdCopy(c.outW, c.errW, c.hj.Reader)
	c.outW.Close()
	c.errW.Close()
	c.hj.Close() // the attach is over: stdin goes nowhere any more
}

// cut ends the attach stream at once: the demultiplexer stops, even if
// blocked on a full pipe. Readers get what is in the pipes, then EOF.
func (c *Container) cut() {
	c.cutOnce.Do(func() {
		if c.hj.Conn != nil {
			c.hj.Close()
		}
		now := time.Now()
		for _, w := range []*os.File{c.outW, c.errW} {
			if w != nil {
				w.SetWriteDeadline(now)
			}
		}
	})
}

// watch waits for the container to exit and records how.
func (c *Container) watch() {
	code, msg := c.waitExit()
	st := Stat{Phase: Exited, ExitCode: code, Exit: msg, Exited: time.Now()}
	if code >= 0 {
		ictx, cancel := context.WithTimeout(c.ctx, callTimeout)
		if in, err := c.e.cli.ContainerInspect(ictx, c.id); err == nil && in.State != nil {
			if t, err := time.Parse(time.RFC3339Nano, in.State.FinishedAt); err == nil && !t.IsZero() && t.Year() > 1 {
				st.Exited = t
			}
			if in.State.OOMKilled && code != 0 {
				st.Exit = fmt.Sprintf("out of memory (exit status %d)", code)
			}
		}
		cancel()
	}
	c.mu.Lock()
	c.stat.Phase, c.stat.ExitCode, c.stat.Exit, c.stat.Exited = st.Phase, st.ExitCode, st.Exit, st.Exited
	c.mu.Unlock()
	close(c.done)
}

// waitExit blocks until the container is not running, and returns its exit
// code (-1 if unknown) and what went wrong ("" for success).
func (c *Container) waitExit() (int, string) {
	for {
		resC, errC := c.e.cli.ContainerWait(c.ctx, c.id, container.WaitConditionNotRunning)
		select { // one of them always answers, also when c.ctx ends
		case res := <-resC:
			code := int(res.StatusCode)
			switch {
			case res.Error != nil && res.Error.Message != "":
				return code, res.Error.Message
			case code != 0:
				return code, fmt.Sprintf("exit status %d", code)
			}
			return 0, ""
		case <-errC:
		}
		if c.ctx.Err() != nil {
			return -1, "status unknown: the element was scrubbed or the engine closed while waiting"
		}
		// The wait broke (the engine restarted?): look at the container.
		ictx, cancel := context.WithTimeout(c.ctx, callTimeout)
		in, err := c.e.cli.ContainerInspect(ictx, c.id)
		cancel()
		switch {
		case cerrdefs.IsNotFound(err):
			return -1, "status unknown: the container was removed outside the circuit"
		case err == nil && in.State != nil && !in.State.Running && !in.State.Restarting && in.State.Status != "created":
			if in.State.ExitCode != 0 {
				return in.State.ExitCode, fmt.Sprintf("exit status %d", in.State.ExitCode)
			}
			return 0, ""
		}
		t := time.NewTimer(retryBackoff)
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
		}
	}
}

// Kind is kind.Docker.
func (c *Container) Kind() kind.Kind { return kind.Docker }

// ID is the Docker container ID.
func (c *Container) ID() string { return c.id }

// Name is the Docker container name.
func (c *Container) Name() string { return c.name }

// Config is what the container was started with.
func (c *Container) Config() Config { return c.cfg }

// Stat returns the state as the circuit knows it, without asking the
// engine.
func (c *Container) Stat() Stat {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stat
}

// Peek returns the engine's description of the container (what docker
// inspect shows), as indented JSON.
func (c *Container) Peek(ctx context.Context) ([]byte, error) {
	_, raw, err := c.e.cli.ContainerInspectWithRaw(ctx, c.id, false)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return nil, fmt.Errorf("container %s no longer exists", c.name)
		}
		return nil, fmt.Errorf("inspecting container %s: %w", c.name, err)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, raw, "", "\t"); err != nil {
		return nil, fmt.Errorf("inspecting container %s: %w", c.name, err)
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// Done is closed when the container has exited.
func (c *Container) Done() <-chan struct{} { return c.done }

// Wait blocks until the container exits or ctx ends.
func (c *Container) Wait(ctx context.Context) (Stat, error) {
	select {
	case <-c.done:
		return c.Stat(), nil
	case <-ctx.Done():
		return Stat{}, ctx.Err()
	}
}

// Signal sends the named signal (see proc.ParseSignal) to the container's
// command.
func (c *Container) Signal(name string) error {
	if _, err := proc.ParseSignal(name); err != nil {
		return err
	}
	select {
	case <-c.done:
		return fmt.Errorf("container %s has exited", c.name)
	default:
	}
	ctx, cancel := context.WithTimeout(c.ctx, callTimeout)
	defer cancel()
	sig := strings.TrimPrefix(strings.ToUpper(name), "SIG")
	if err := c.e.cli.ContainerKill(ctx, c.id, sig); err != nil {
		select {
		case <-c.done:
			return fmt.Errorf("container %s has exited", c.name)
		default:
		}
		return fmt.Errorf("signal %s: %w", sig, err)
	}
	return nil
}

// Scrub aborts the container: it is killed and removed, with its anonymous
// volumes. Output nobody reads is discarded. Scrub returns once the engine
// has answered (within a bound), and the container is then reported exited.
func (c *Container) Scrub() {
	c.scrubOnce.Do(func() {
		// Cut the streams first: the engine does not finish killing a
		// container while it is blocked on output nobody reads.
		c.cut()
		c.discardOutputs()
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		c.e.cli.ContainerRemove(ctx, c.id, container.RemoveOptions{Force: true, RemoveVolumes: true})
		// The removal kills the container, which the wait sees; without
		// an answer from the engine, stop waiting.
		select {
		case <-c.done:
		case <-ctx.Done():
		}
		c.cancel()
		<-c.done
		c.e.mu.Lock()
		delete(c.e.live, c)
		c.e.mu.Unlock()
	})
}

// Stop ends the container for a stopping server: SIGTERM, SIGKILL after
// grace, then removal as by Scrub.
func (c *Container) Stop(grace time.Duration) {
	secs := int(math.Ceil(grace.Seconds()))
	ctx, cancel := context.WithTimeout(c.ctx, grace+callTimeout)
	defer cancel()
	select {
	case <-c.done:
	default:
		// Output nobody reads would hold the container up: discard it.
		c.e.goFunc(c.discardOutputs)
		c.e.cli.ContainerStop(ctx, c.id, container.StopOptions{Timeout: &secs})
	}
	c.Scrub()
}

// discardOutputs makes sure nobody waits on unread output, and closes an
// unclaimed stdin. It returns when the output streams it claimed end:
// promptly after cut, since the pipes then hold at most their buffers.
func (c *Container) discardOutputs() {
	if c.Streams != nil {
		c.Discard(true)
	}
}

// halfCloser is the attach connection as the container's stdin: closing it
// sends EOF and leaves the output flowing.
type halfCloser struct {
	net.Conn
	closeWrite func() error
}

func (h halfCloser) Close() error { return h.closeWrite() }
