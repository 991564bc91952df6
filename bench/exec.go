package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"

	"github.com/creack/pty"
	"golang.org/x/term"
)

// benchExec times one keystroke echoed through a fresh `circuit exec -t`
// to a remote `cat`, from starting the command to reading the echo back,
// against a fresh `ssh -t` to `cat` and a multiplexed one (ControlMaster),
// all through the run benchmark's throwaway sshd. The local terminal is a
// pty in raw mode, so the only echo is the remote terminal's.
func benchExec(b *bench) error {
	_, url, err := b.server()
	if err != nil {
		return err
	}
	id := idOf(url)
	const n = 20
	circuit, err := keystrokes(n, b.circuit, "exec", "-t", "-d", url, "/"+id, "--", "/bin/cat")
	if err != nil {
		return fmt.Errorf("circuit exec -t: %w", err)
	}
	_, cleanup, err := b.pdshSetup(1)
	if err != nil {
		report("exec", fmt.Sprintf("keystroke via fresh circuit exec -t: %v", circuit.Round(time.Microsecond)), "-", 0, "(ssh skipped: "+err.Error()+")")
		return nil
	}
	defer cleanup()
	base := append(append([]string{"-p", fmt.Sprint(sshPort)}, sshArgs()...), "-t", "-l", sshUser)
	ssh, err := keystrokes(n, "ssh", append(base, "127.0.0.1", "cat")...)
	if err != nil {
		return fmt.Errorf("ssh -t: %w", err)
	}
	ctl := filepath.Join(b.dir, "ssh-ctl")
	mux := append(base, "-o", "ControlMaster=auto", "-o", "ControlPath="+ctl, "-o", "ControlPersist=60")
	defer exec.Command("ssh", "-o", "ControlPath="+ctl, "-O", "exit", "127.0.0.1").Run()
	if _, err := keystrokes(1, "ssh", append(mux, "127.0.0.1", "cat")...); err != nil { // starts the master
		return fmt.Errorf("ssh master: %w", err)
	}
	muxed, err := keystrokes(n, "ssh", append(mux, "127.0.0.1", "cat")...)
	if err != nil {
		return fmt.Errorf("multiplexed ssh -t: %w", err)
	}
	report("exec", fmt.Sprintf("keystroke via fresh circuit exec -t: %v", circuit.Round(time.Microsecond)),
		fmt.Sprintf("fresh ssh -t %v", ssh.Round(time.Microsecond)), float64(ssh)/float64(circuit), "> 1: circuit faster (issue 10)")
	report("exec", "(the same)", fmt.Sprintf("multiplexed ssh -t %v", muxed.Round(time.Microsecond)), float64(muxed)/float64(circuit), "for reference")
	return nil
}

// keystrokes starts name with args on a raw pty n times, types one key at
// once, and returns the median time from the start to the key's echo.
func keystrokes(n int, name string, args ...string) (time.Duration, error) {
	var ds []time.Duration
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = append(os.Environ(), "TERM=xterm")
		master, tty, err := pty.Open()
		if err != nil {
			cancel()
			return 0, err
		}
		if _, err := term.MakeRaw(int(tty.Fd())); err != nil { // no local echo
			cancel()
			return 0, err
		}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
		start := time.Now()
		err = cmd.Start()
		tty.Close()
		if err != nil {
			master.Close()
			cancel()
			return 0, err
		}
		master.Write([]byte("q"))
		var seen bytes.Buffer
		buf := make([]byte, 4096)
		for !bytes.Contains(seen.Bytes(), []byte("q")) {
			k, err := master.Read(buf)
			if err != nil {
				cmd.Process.Kill()
				cmd.Wait()
				master.Close()
				cancel()
				return 0, fmt.Errorf("no echo; got %q: %v", seen.String(), err)
			}
			seen.Write(buf[:k])
		}
		ds = append(ds, time.Since(start))
		master.Write([]byte{4, 4}) // Ctrl-D twice: cat ends, the session with it
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		master.Close()
		cancel()
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2], nil
}
