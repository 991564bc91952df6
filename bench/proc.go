package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/circuit-project/circuit/client"
)

// clientOptions dials addr as the CLI would from this environment: with the
// key in $CIRCUIT_HMAC (which the servers read too), or else the
// credential in $CIRCUIT_CRED (for servers keyed with -server-args "-hmac
// FILE"), or else with neither.
func clientOptions(addr string) (client.Options, error) {
	opt := client.Options{Addr: addr}
	if f := os.Getenv("CIRCUIT_HMAC"); f != "" {
		key, err := os.ReadFile(f)
		if err != nil {
			return opt, err
		}
		opt.Key = key
	} else {
		opt.CredFile = os.Getenv("CIRCUIT_CRED")
	}
	return opt, nil
}

// twoServers starts two joined servers and returns a client dialled into the
// first and the ID of the second, where the work runs.
func (b *bench) twoServers() (*client.Client, string, error) {
	return b.twoServersWith(func(addr string) (*client.Client, error) {
		opt, err := clientOptions(addr)
		if err != nil {
			return nil, err
		}
		return client.Connect(context.Background(), opt)
	})
}

// twoServersWith is twoServers with the client made by connect.
func (b *bench) twoServersWith(connect func(addr string) (*client.Client, error)) (*client.Client, string, error) {
	_, first, err := b.server()
	if err != nil {
		return nil, "", err
	}
	_, second, err := b.server("-j", first)
	if err != nil {
		return nil, "", err
	}
	c, err := connect(first)
	if err != nil {
		return nil, "", err
	}
	id := idOf(second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		ms, err := c.Members(context.Background())
		if err == nil && has(id)(ms) {
			return c, id, nil
		}
		if time.Now().After(deadline) {
			c.Close()
			return nil, "", fmt.Errorf("servers never met")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func benchLaunch(b *bench) error {
	c, id, err := b.twoServers()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx := context.Background()
	n := *runs
	local := func() (time.Duration, error) {
		start := time.Now()
		for range n {
			if err := exec.Command("/bin/true").Run(); err != nil {
				return 0, err
			}
		}
		return time.Since(start), nil
	}
	remote := func() (time.Duration, error) {
		start := time.Now()
		for i := range n {
			h, err := c.MakeProcAt(ctx, "/"+id+"/launch/"+strconv.Itoa(i), client.Cmd{Path: "/bin/true", Scrub: true})
			if err != nil {
				return 0, err
			}
			if _, err := h.Wait(ctx); err != nil {
				return 0, err
			}
		}
		return time.Since(start), nil
	}
	lr, rr, err := interleaved(n, local, remote)
	if err != nil {
		return err
	}
	report("launch", fmt.Sprintf("remote mkproc+wait /bin/true: %.0f/s", rr),
		fmt.Sprintf("local os/exec %.0f/s", lr), rr/lr, "≥ 0.3 (issue 3); ≥ 0.5 (project)")
	return nil
}

// interleaved runs two timed loops of n operations each twice, alternating
// so that both share the machine's state, and returns their rates per
// second.
func interleaved(n int, a, b func() (time.Duration, error)) (rateA, rateB float64, err error) {
	var ta, tb time.Duration
	for range 2 {
		da, err := a()
		if err != nil {
			return 0, 0, err
		}
		db, err := b()
		if err != nil {
			return 0, 0, err
		}
		ta, tb = ta+da, tb+db
	}
	return float64(2*n) / ta.Seconds(), float64(2*n) / tb.Seconds(), nil
}

// headTCP measures the floor of the stdout benchmark: the same head
// command piped into a raw loopback TCP copy (what `head ... | nc` does),
// drained as the circuit stream is.
func headTCP(size int64) (time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	got := make(chan error, 1)
	start := time.Now()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- err
			return
		}
		defer c.Close()
		n, err := drain(c)
		if err == nil && n != size {
			err = fmt.Errorf("raw TCP copy: %d bytes", n)
		}
		got <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return 0, err
	}
	cmd := exec.Command("/usr/bin/head", "-c", strconv.FormatInt(size, 10), "/dev/zero")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	_, err = io.Copy(c, out)
	c.Close()
	if werr := cmd.Wait(); err == nil {
		err = werr
	}
	if err != nil {
		return 0, err
	}
	if err := <-got; err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// tcpCopy measures a raw loopback TCP copy of size bytes between two Go
// goroutines, with large writes and reads.
func tcpCopy(size int64) (time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	sent := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			sent <- err
			return
		}
		defer c.Close()
		buf := make([]byte, 256<<10)
		var n int64
		for n < size {
			m, err := c.Write(buf[:min(int64(len(buf)), size-n)])
			if err != nil {
				sent <- err
				return
			}
			n += int64(m)
		}
		sent <- nil
	}()
	start := time.Now()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return 0, err
	}
	defer c.Close()
	got, err := drain(io.LimitReader(c, size))
	if err != nil || got != size {
		return 0, fmt.Errorf("tcp copy: %d bytes, %v", got, err)
	}
	d := time.Since(start)
	return d, <-sent
}

func benchStdout(b *bench) error {
	c, id, err := b.twoServers()
	if err != nil {
		return err
	}
	defer c.Close()
	const size = 1 << 30
	ctx := context.Background()
	var floor, goFloor, got time.Duration
	for i := range 2 {
		d, err := headTCP(size)
		if err != nil {
			return err
		}
		floor += d
		if d, err = tcpCopy(size); err != nil {
			return err
		}
		goFloor += d
		h, err := c.MakeProcAt(ctx, "/"+id+"/zero"+strconv.Itoa(i), client.Cmd{Path: "/usr/bin/head", Args: []string{"-c", strconv.Itoa(size), "/dev/zero"}, Scrub: true})
		if err != nil {
			return err
		}
		start := time.Now()
		out, err := h.OpenStream(ctx, "stdout")
		if err != nil {
			return err
		}
		n, err := drain(out)
		out.Close()
		if err != nil || n != size {
			return fmt.Errorf("stdout: %d bytes, %v", n, err)
		}
		got += time.Since(start)
		h.Wait(ctx)
	}
	mbs := func(d time.Duration) float64 { return 2 * size / d.Seconds() / (1 << 20) }
	report("stdout", fmt.Sprintf("remote 1 GiB stdout via relay: %.0f MiB/s", mbs(got)),
		fmt.Sprintf("head | raw TCP copy %.0f MiB/s", mbs(floor)), float64(floor)/float64(got), "≥ 0.5")
	report("stdout", "(the same, against a Go-to-Go TCP copy)",
		fmt.Sprintf("Go TCP copy %.0f MiB/s", mbs(goFloor)), float64(goFloor)/float64(got), "for reference")
	return nil
}

// drain reads r to the end through a 256 KiB buffer, as a program that
// consumes the bytes would; the floor and the figure read alike.
func drain(r io.Reader) (int64, error) {
	buf := make([]byte, 256<<10)
	var n int64
	for {
		m, err := r.Read(buf)
		n += int64(m)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
