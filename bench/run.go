package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/circuit-project/circuit/client"
)

// benchRun times `circuit run -- uname -n` on 10 servers against the floor
// of a local loop of the same 10 commands, and against pdsh over ssh to 10
// loopback addresses, all in one run. pdsh is set up here: an sshd on a
// loopback port with throwaway keys, logging in a throwaway user whose
// shell is /bin/sh, so no shell rc file runs. Without sshd or pdsh
// (Debian's openssh-server, pdsh) the pdsh column is skipped.
func benchRun(b *bench) error {
	const n = 10
	_, first, err := b.server()
	if err != nil {
		return err
	}
	for range n - 1 {
		if _, _, err := b.server("-j", first); err != nil {
			return err
		}
	}
	c, err := client.Connect(context.Background(), client.Options{Addr: first})
	if err != nil {
		return err
	}
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ms, err := c.Members(context.Background())
		if err == nil && len(ms) == n {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d servers never saw each other", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	loop := "for i in 1 2 3 4 5 6 7 8 9 10; do uname -n; done"
	rounds, per := 4, max(*runs/20, 5)
	var local, run time.Duration
	for range rounds {
		l, err := timeRuns(per, "sh", "-c", loop+" >/dev/null")
		if err != nil {
			return err
		}
		r, err := timeRuns(per, b.circuit, "run", "-d", first, "-n", "--", "uname", "-n")
		if err != nil {
			return err
		}
		local += l / time.Duration(rounds)
		run += r / time.Duration(rounds)
	}
	report("run", fmt.Sprintf("circuit run -- uname -n, 10 servers %v", run.Round(time.Microsecond)),
		fmt.Sprintf("local loop of 10 %v", local.Round(time.Microsecond)), float64(run)/float64(local), "≤ 3 (issue 10)")

	pdsh, cleanup, err := b.pdshSetup(n)
	if err != nil {
		fmt.Printf("run      pdsh skipped: %v\n", err)
		return nil
	}
	defer cleanup()
	p, err := timeRuns(max(per/2, 3), pdsh[0], pdsh[1:]...)
	if err != nil {
		return err
	}
	report("run", fmt.Sprintf("pdsh -R ssh uname -n, 10 hosts %v", p.Round(time.Microsecond)),
		fmt.Sprintf("circuit run %v", run.Round(time.Microsecond)), float64(p)/float64(run), "≥ 10 (issue 10)")
	report("run", fmt.Sprintf("pdsh %v", p.Round(time.Microsecond)),
		fmt.Sprintf("local loop of 10 %v", local.Round(time.Microsecond)), float64(p)/float64(local), "(pdsh against the floor)")
	return nil
}

// sshPort is where pdshSetup's sshd listens.
const sshPort = 22022

// The throwaway login of pdshSetup, for ssh and scp.
var sshUser, sshKey string

// sshArgs are the ssh options of the throwaway login (scp takes the port
// as -P, so it is not among them).
func sshArgs() []string {
	return []string{"-i", sshKey, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"}
}

// pdshSetup starts an sshd listening on 127.0.0.1 to 127.0.0.n and returns
// the pdsh command line for those n hosts, and a cleanup.
func (b *bench) pdshSetup(n int) ([]string, func(), error) {
	sshd, err := exec.LookPath("sshd")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/sshd"); serr != nil {
			return nil, nil, fmt.Errorf("no sshd")
		}
		sshd = "/usr/sbin/sshd"
	}
	if _, err := exec.LookPath("pdsh"); err != nil {
		return nil, nil, fmt.Errorf("no pdsh")
	}
	// Its own directory, readable by all: sshd reads authorized_keys as
	// the user logging in.
	dir, err := os.MkdirTemp("", "circuit-bench-ssh-")
	if err != nil {
		return nil, nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, nil, err
	}
	user := fmt.Sprintf("cbench%d", os.Getpid()%100000)
	home := filepath.Join(dir, "home")
	if err := os.Mkdir(home, 0o755); err != nil {
		return nil, nil, err
	}
	if out, err := exec.Command("useradd", "-M", "-p", "*", "-d", home, "-s", "/bin/sh", user).CombinedOutput(); err != nil {
		return nil, nil, fmt.Errorf("useradd: %v: %s", err, out)
	}
	var undo []func()
	cleanup := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	undo = append(undo, func() { exec.Command("userdel", user).Run(); os.RemoveAll(dir) })
	for _, args := range [][]string{
		{"-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "host")},
		{"-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "user")},
	} {
		if out, err := exec.Command("ssh-keygen", args...).CombinedOutput(); err != nil {
			cleanup()
			return nil, nil, fmt.Errorf("ssh-keygen: %v: %s", err, out)
		}
	}
	pub, err := os.ReadFile(filepath.Join(dir, "user.pub"))
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	auth := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(auth, pub, 0o644); err != nil {
		cleanup()
		return nil, nil, err
	}
	var conf strings.Builder
	fmt.Fprintf(&conf, "Port %d\nHostKey %s\nAuthorizedKeysFile %s\nPidFile none\nUsePAM no\nStrictModes no\n", sshPort, filepath.Join(dir, "host"), auth)
	conf.WriteString("Subsystem sftp internal-sftp\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPrintMotd no\nUseDNS no\nLogLevel ERROR\nMaxStartups 100\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&conf, "ListenAddress 127.0.0.%d\n", i)
	}
	cf := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(cf, []byte(conf.String()), 0o600); err != nil {
		cleanup()
		return nil, nil, err
	}
	os.MkdirAll("/run/sshd", 0o755) // sshd's privilege-separation directory
	cmd := exec.Command(sshd, "-D", "-e", "-f", cf)
	if err := cmd.Start(); err != nil {
		cleanup()
		return nil, nil, err
	}
	undo = append(undo, func() { cmd.Process.Kill(); cmd.Wait() })
	key := filepath.Join(dir, "user")
	sshUser, sshKey = user, key
	os.Setenv("PDSH_SSH_ARGS", strings.Join(append([]string{"-p", fmt.Sprint(sshPort)}, append(sshArgs(), "-l", user, "%h")...), " "))
	line := []string{"pdsh", "-R", "ssh", "-f", "64", "-w", fmt.Sprintf("127.0.0.[1-%d]", n), "uname", "-n"}
	// Wait for sshd to answer on every address.
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := exec.Command(line[0], line[1:]...).CombinedOutput()
		if err == nil && strings.Count(string(out), "\n") == n {
			break
		}
		if time.Now().After(deadline) {
			cleanup()
			return nil, nil, fmt.Errorf("pdsh through the bench's sshd: %v: %s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return line, cleanup, nil
}
