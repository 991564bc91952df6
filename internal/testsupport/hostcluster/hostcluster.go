// Package hostcluster runs circuit servers as separate hosts for tests: each
// server in its own Docker container, with its own IP address, on a private
// bridge network that the test creates and removes. The image is made here
// from a static circuit binary and a static busybox (package testimage), so
// no registry is needed.
//
// Tests drive the cluster as an operator would: through the CLI inside a
// host (Exec), through the client library from the test process (Client),
// and through the engine: Kill, Start, Stop, Pause, Unpause, Disconnect and
// Connect change one host the way a crash, a reboot, a hung machine or a cut
// cable would. Each host keeps its IP address across all of them.
package hostcluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	dockerclient "github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/security"
	"github.com/circuit-project/circuit/internal/testsupport"
	"github.com/circuit-project/circuit/internal/testsupport/build"
	"github.com/circuit-project/circuit/internal/testsupport/testimage"
)

// Port is the port every server listens on, inside its own container.
const Port = 11022

// opTimeout bounds every engine call.
const opTimeout = 60 * time.Second

// Options configure a cluster of hosts.
type Options struct {
	// Key gives every server, and every CLI and client call, one key.
	Key bool
	// Discover, when set (GROUP:PORT), makes servers find each other by
	// multicast instead of joining host 0 with -j.
	Discover string
	// Args are extra arguments for every server.
	Args []string
}

// Cluster is a set of hosts on one private network.
type Cluster struct {
	t       testing.TB
	cli     *dockerclient.Client
	run     string // a random name shared by the network and containers
	Network string // the Docker network's name
	Bridge  string // the host's bridge interface for that network
	Subnet  netip.Prefix
	Image   string
	KeyFile string // on the test host; "" without a key
	opts    Options
	Hosts   []*Host
}

// Host is one container running one circuit server.
type Host struct {
	c    *Cluster
	Name string
	IP   netip.Addr
	ID   string // the container's ID

	mu     sync.Mutex
	starts int // how many times the server was started: its stdout has one URL line per start
}

// Start creates a network and n hosts, starts their servers, and waits
// until every server lists all n. Everything is removed when the test ends.
func Start(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	c := New(t, opts)
	for i := 0; i < n; i++ {
		c.Add()
	}
	c.WaitMembers(c.Hosts, n, 2*time.Minute)
	return c
}

// New creates the image and the network, with no hosts yet.
func New(t testing.TB, opts Options) *Cluster {
	t.Helper()
	cli := testimage.Engine(t)
	t.Cleanup(func() { cli.Close() })
	// Static: no cgo, so it runs on a busybox root file system.
	data, err := os.ReadFile(build.Circuit(t, build.Static))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*opTimeout)
	defer cancel()
	ref, err := testimage.Ensure(ctx, cli, "circuit-host", testimage.File{Path: "bin/circuit", Data: data, Mode: 0o755})
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	rand.Read(b)
	c := &Cluster{t: t, cli: cli, run: "circuit-t" + hex.EncodeToString(b), Image: ref, opts: opts}
	c.Network = c.run
	if opts.Key {
		c.KeyFile = filepath.Join(t.TempDir(), "key")
		if err := os.WriteFile(c.KeyFile, []byte(security.Generate()+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c.createNetwork(ctx)
	t.Cleanup(c.remove)
	return c
}

// createNetwork makes the private network. A static address per host needs
// a subnet given at creation, so the network is made once to learn a subnet
// that the engine considers free, then made again with that subnet named.
func (c *Cluster) createNetwork(ctx context.Context) {
	c.t.Helper()
	probe, err := c.cli.NetworkCreate(ctx, c.run+"-probe", network.CreateOptions{Driver: "bridge"})
	if err != nil {
		c.t.Fatalf("creating network: %v", err)
	}
	info, err := c.cli.NetworkInspect(ctx, probe.ID, network.InspectOptions{})
	c.cli.NetworkRemove(ctx, probe.ID)
	if err != nil || len(info.IPAM.Config) == 0 {
		c.t.Fatalf("inspecting network: %v (%d subnets)", err, len(info.IPAM.Config))
	}
	c.Subnet, err = netip.ParsePrefix(info.IPAM.Config[0].Subnet)
	if err != nil {
		c.t.Fatalf("network subnet: %v", err)
	}
	gw := c.Subnet.Addr().Next()
	created, err := c.cli.NetworkCreate(ctx, c.Network, network.CreateOptions{
		Driver: "bridge",
		IPAM:   &network.IPAM{Config: []network.IPAMConfig{{Subnet: c.Subnet.String(), Gateway: gw.String()}}},
		Labels: map[string]string{"circuit.test": c.run},
	})
	if err != nil {
		c.t.Fatalf("creating network %s: %v", c.Network, err)
	}
	c.Bridge = "br-" + created.ID[:12]
}

// remove removes every host and the network, logging each server's log when
// the test failed.
func (c *Cluster) remove() {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	for _, h := range c.Hosts {
		if c.t.Failed() {
			c.t.Logf("=== log of %s (%s):\n%s", h.Name, h.IP, h.Log())
		}
		if err := c.cli.ContainerRemove(ctx, h.ID, container.RemoveOptions{Force: true}); err != nil {
			c.t.Logf("removing %s: %v", h.Name, err)
		}
	}
	if err := c.cli.NetworkRemove(ctx, c.Network); err != nil {
		c.t.Logf("removing network %s: %v", c.Network, err)
	}
}

// Add creates and starts one more host. Hosts after the first join the
// first by its address (unless the cluster uses discovery); the command is
// fixed at creation, so a restart runs the same command.
func (c *Cluster) Add() *Host {
	c.t.Helper()
	i := len(c.Hosts)
	ip := c.Subnet.Addr()
	for k := 0; k < 10+i; k++ { // .1 is the gateway; hosts from .10
		ip = ip.Next()
	}
	h := &Host{c: c, Name: fmt.Sprintf("%s-h%d", c.run, i), IP: ip}
	cmd := []string{"/bin/circuit", "start", "-if", "eth0", "-a", fmt.Sprintf(":%d", Port), "-bind", "0.0.0.0"}
	switch {
	case c.opts.Discover != "":
		cmd = append(cmd, "-discover", c.opts.Discover)
	case i == 0:
		// The first host names the second as its seed, so that it too
		// rejoins when restarted with the same command.
		cmd = append(cmd, "-j", netip.AddrPortFrom(ip.Next(), Port).String())
	default:
		cmd = append(cmd, "-j", c.Hosts[0].URL())
	}
	hc := &container.HostConfig{Init: boolPtr(true), NetworkMode: container.NetworkMode(c.Network)}
	if c.KeyFile != "" {
		cmd = append(cmd, "-hmac", "/etc/circuit.key")
		hc.Binds = []string{c.KeyFile + ":/etc/circuit.key:ro"}
	}
	cmd = append(cmd, c.opts.Args...)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	created, err := c.cli.ContainerCreate(ctx,
		&container.Config{Image: c.Image, Cmd: cmd, Hostname: fmt.Sprintf("h%d", i), Labels: map[string]string{"circuit.test": c.run}},
		hc,
		&network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			c.Network: {IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: ip.String()}},
		}},
		nil, h.Name)
	if err != nil {
		c.t.Fatalf("creating host %s: %v", h.Name, err)
	}
	h.ID = created.ID
	c.Hosts = append(c.Hosts, h)
	c.Start(h)
	return h
}

func boolPtr(b bool) *bool { return &b }

// Start starts h's container (again), with the same command, and waits for
// its server's URL.
func (c *Cluster) Start(h *Host) string {
	c.t.Helper()
	c.Launch(h)
	return h.URL()
}

// Launch starts h's container (again) without waiting for its server.
func (c *Cluster) Launch(h *Host) {
	c.t.Helper()
	c.do("starting", h, func(ctx context.Context) error { return c.cli.ContainerStart(ctx, h.ID, container.StartOptions{}) })
	h.mu.Lock()
	h.starts++
	h.mu.Unlock()
}

// Kill kills h with SIGKILL, its server and all, as a crash would, and waits
// until the container has stopped.
func (c *Cluster) Kill(h *Host) { c.signal(h, "KILL") }

// Stop stops h's server with SIGTERM, as a shutdown would.
func (c *Cluster) Stop(h *Host) { c.signal(h, "TERM") }

func (c *Cluster) signal(h *Host, sig string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	waitC, errC := c.cli.ContainerWait(ctx, h.ID, container.WaitConditionNotRunning)
	if err := c.cli.ContainerKill(ctx, h.ID, sig); err != nil {
		c.t.Fatalf("SIG%s to %s: %v", sig, h.Name, err)
	}
	select {
	case <-waitC:
	case err := <-errC:
		c.t.Fatalf("waiting for %s to stop: %v", h.Name, err)
	}
}

// Pause freezes every process of h: a hung host that answers nothing and
// resets nothing.
func (c *Cluster) Pause(h *Host) {
	c.t.Helper()
	c.do("pausing", h, func(ctx context.Context) error { return c.cli.ContainerPause(ctx, h.ID) })
}

// Unpause thaws h.
func (c *Cluster) Unpause(h *Host) {
	c.t.Helper()
	c.do("unpausing", h, func(ctx context.Context) error { return c.cli.ContainerUnpause(ctx, h.ID) })
}

// Disconnect cuts h from the network: its interface goes away, and nothing
// it sends or is sent arrives.
func (c *Cluster) Disconnect(h *Host) {
	c.t.Helper()
	c.do("disconnecting", h, func(ctx context.Context) error { return c.cli.NetworkDisconnect(ctx, c.Network, h.ID, false) })
}

// Connect reconnects h, with the same address.
func (c *Cluster) Connect(h *Host) {
	c.t.Helper()
	c.do("connecting", h, func(ctx context.Context) error {
		return c.cli.NetworkConnect(ctx, c.Network, h.ID, &network.EndpointSettings{IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: h.IP.String()}})
	})
}

// do runs one engine call on h within opTimeout, failing the test if it
// fails.
func (c *Cluster) do(what string, h *Host, call func(context.Context) error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := call(ctx); err != nil {
		c.t.Fatalf("%s %s: %v", what, h.Name, err)
	}
}

// Running tells whether h's container runs.
func (c *Cluster) Running(h *Host) bool {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	info, err := c.cli.ContainerInspect(ctx, h.ID)
	return err == nil && info.State != nil && info.State.Running
}

// output returns h's container output so far: stdout and stderr of every
// start, in order.
func (h *Host) output() (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	rc, err := h.c.cli.ContainerLogs(ctx, h.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return "", "", err
	}
	defer rc.Close()
	var o, e bytes.Buffer
	_, err = stdcopy.StdCopy(&o, &e, rc)
	return o.String(), e.String(), err
}

// Log returns the server's log (its stderr) across all starts.
func (h *Host) Log() string {
	_, e, err := h.output()
	if err != nil {
		return fmt.Sprintf("(reading the log: %v)", err)
	}
	return e
}

// URL waits for, and returns, the URL the server printed at its latest
// start.
func (h *Host) URL() string {
	h.c.t.Helper()
	u, err := h.LatestURL()
	if err != nil {
		h.c.t.Fatal(err)
	}
	return u
}

// LatestURL is URL for goroutines other than the test's: it returns an
// error rather than failing the test.
func (h *Host) LatestURL() (string, error) {
	h.mu.Lock()
	starts := h.starts
	h.mu.Unlock()
	deadline := time.Now().Add(opTimeout)
	for {
		out, errOut, err := h.output()
		if err != nil {
			return "", fmt.Errorf("reading the output of %s: %w", h.Name, err)
		}
		if lines := strings.Fields(out); len(lines) >= starts {
			return lines[starts-1], nil
		}
		if time.Now().After(deadline) || !h.c.Running(h) {
			return "", fmt.Errorf("%s printed no URL for start %d (running: %v); its log:\n%s", h.Name, starts, h.c.Running(h), errOut)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ServerID returns the ID (X...) of h's server at its latest start.
func (h *Host) ServerID() string {
	u := h.URL()
	return u[strings.LastIndex(u, "/")+1:]
}

// LoopbackURL is h's server URL with its address replaced by loopback: how a
// CLI inside the host reaches its own server even while the host is cut from
// the network.
func (h *Host) LoopbackURL() string {
	u := h.URL()
	return strings.Replace(u, h.IP.String(), "127.0.0.1", 1)
}

// Result is the outcome of one CLI run.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Exec runs the circuit CLI inside h, dialled into h's own server over
// loopback, with stdin and the cluster's key.
func (c *Cluster) Exec(h *Host, stdin string, args ...string) Result {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	var env []string
	if c.KeyFile != "" {
		env = append(env, "CIRCUIT_HMAC=/etc/circuit.key")
	}
	cmd := []string{"/bin/circuit"}
	if len(args) > 0 {
		cmd = append(cmd, args[0], "-d", h.LoopbackURL())
		cmd = append(cmd, args[1:]...)
	}
	r, err := c.exec(ctx, h, env, stdin, cmd)
	if err != nil {
		c.t.Fatalf("exec on %s: circuit %s: %v", h.Name, strings.Join(args, " "), err)
	}
	return r
}

// Shell runs a busybox shell command inside h.
func (c *Cluster) Shell(h *Host, script string) Result {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	r, err := c.exec(ctx, h, nil, "", []string{"/bin/sh", "-c", script})
	if err != nil {
		c.t.Fatalf("exec on %s: sh -c %q: %v", h.Name, script, err)
	}
	return r
}

func (c *Cluster) exec(ctx context.Context, h *Host, env []string, stdin string, cmd []string) (Result, error) {
	created, err := c.cli.ContainerExecCreate(ctx, h.ID, container.ExecOptions{
		Cmd: cmd, Env: env, AttachStdin: stdin != "", AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		return Result{}, err
	}
	att, err := c.cli.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return Result{}, err
	}
	defer att.Close()
	if stdin != "" {
		go func() {
			att.Conn.Write([]byte(stdin))
			att.CloseWrite()
		}()
	}
	var o, e bytes.Buffer
	if _, err := stdcopy.StdCopy(&o, &e, att.Reader); err != nil {
		return Result{}, err
	}
	info, err := c.cli.ContainerExecInspect(ctx, created.ID)
	if err != nil {
		return Result{}, err
	}
	return Result{Stdout: o.String(), Stderr: e.String(), Code: info.ExitCode}, nil
}

// Client connects the client library, from the test process, to h's server
// over the network, and closes it when the test ends.
func (c *Cluster) Client(h *Host) *client.Client {
	c.t.Helper()
	cl, err := client.Connect(context.Background(), client.Options{Addr: h.URL(), Key: c.key()})
	if err != nil {
		c.t.Fatalf("connecting to %s: %v", h.Name, err)
	}
	c.t.Cleanup(func() { cl.Close() })
	return cl
}

func (c *Cluster) key() []byte {
	if c.KeyFile == "" {
		return nil
	}
	k, err := os.ReadFile(c.KeyFile)
	if err != nil {
		c.t.Fatal(err)
	}
	return k
}

// Members returns the server IDs that h's server lists at the root, asked
// with the CLI inside h, or an error naming what failed.
func (c *Cluster) Members(h *Host) ([]string, error) {
	c.t.Helper()
	r := c.Exec(h, "", "ls", "/")
	if r.Code != 0 {
		return nil, fmt.Errorf("ls / on %s: exit %d: %s", h.Name, r.Code, strings.TrimSpace(r.Stderr))
	}
	var ids []string
	for _, l := range strings.Fields(r.Stdout) {
		ids = append(ids, strings.TrimPrefix(l, "/"))
	}
	return ids, nil
}

// WaitMembers waits until every host in on lists exactly n members.
func (c *Cluster) WaitMembers(on []*Host, n int, timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for _, h := range on {
		testsupport.Eventually(c.t, time.Until(deadline), func() error {
			ids, err := c.Members(h)
			if err == nil && len(ids) != n {
				err = fmt.Errorf("%s lists %v, want %d members", h.Name, ids, n)
			}
			return err
		})
	}
}

// Capture records every frame that crosses the cluster's bridge on the test
// host, as a packet sniffer would, until Stop. It needs CAP_NET_RAW.
type Capture struct {
	fd   int
	done chan struct{}
	stop func()
	mu   sync.Mutex
	buf  []byte
}

// maxCapture bounds what a capture keeps.
const maxCapture = 256 << 20

// Capture starts capturing on the bridge.
func (c *Cluster) Capture() *Capture {
	c.t.Helper()
	ifi, err := net.InterfaceByName(c.Bridge)
	if err != nil {
		c.t.Fatalf("bridge %s: %v", c.Bridge, err)
	}
	proto := int(htons(syscall.ETH_P_ALL))
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW, proto)
	if err != nil {
		c.t.Fatalf("packet socket (needs CAP_NET_RAW): %v", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: htons(syscall.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		syscall.Close(fd)
		c.t.Fatalf("binding the packet socket to %s: %v", c.Bridge, err)
	}
	tv := syscall.Timeval{Usec: 100_000} // reads return every 100 ms, to see Stop
	syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
	cp := &Capture{fd: fd, done: make(chan struct{})}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		frame := make([]byte, 1<<16)
		for {
			select {
			case <-cp.done:
				return
			default:
			}
			n, _, err := syscall.Recvfrom(fd, frame, 0)
			if err != nil || n <= 0 {
				continue
			}
			cp.mu.Lock()
			if len(cp.buf)+n <= maxCapture {
				cp.buf = append(cp.buf, frame[:n]...)
			}
			cp.mu.Unlock()
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			close(cp.done)
			<-stopped
			syscall.Close(fd)
		})
	}
	cp.stop = stop
	c.t.Cleanup(stop)
	return cp
}

// Stop ends the capture and returns the bytes of every frame seen.
func (cp *Capture) Stop() []byte {
	cp.stop()
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.buf
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
