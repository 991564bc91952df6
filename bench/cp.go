package main

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// benchCp copies a 1 GiB file with circuit cp to a server other than the
// dial-in one (its stream goes straight to that server, see client/direct.go), against a raw loopback TCP copy of
// the same size, and against scp through the run benchmark's throwaway
// sshd, in one run. Every copy reads the file from the page cache and
// writes a new file; the TCP floor touches no file at all.
func benchCp(b *bench) error {
	const size = 1 << 30
	_, first, err := b.server()
	if err != nil {
		return err
	}
	_, second, err := b.server("-j", first)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "circuit-bench-cp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o777); err != nil { // scp's user writes here too
		return err
	}
	src := filepath.Join(dir, "src")
	if err := writeRandom(src, size); err != nil {
		return err
	}
	dst := filepath.Join(dir, "dst")
	target := "/" + idOf(second) + ":" + dst
	// Wait until the dial-in server sees the second.
	deadline := time.Now().Add(20 * time.Second)
	for exec.Command(b.circuit, "cp", "-d", first, src, target).Run() != nil {
		if time.Now().After(deadline) {
			return fmt.Errorf("circuit cp never succeeded")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Floors: a raw TCP copy (no file), and a local cp of the same file
	// (the same file reading and writing, no network). Figures: circuit
	// cp to the server, and from it as a tar stream to /dev/null (the
	// transport alone, no file written).
	var floor, local, cp, stream time.Duration
	const rounds = 3
	timed := func(name string, args ...string) (time.Duration, error) {
		os.Remove(dst)
		start := time.Now()
		cmd := exec.Command(name, args...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("%s: %v: %.200s", name, err, out)
		}
		return time.Since(start), nil
	}
	for range rounds {
		d, err := tcpCopy(size)
		if err != nil {
			return err
		}
		floor += d
		if d, err = timed("cp", src, dst); err != nil {
			return err
		}
		local += d
		if d, err = timed(b.circuit, "cp", "-d", first, src, target); err != nil {
			return err
		}
		cp += d
		if d, err = timed("sh", "-c", b.circuit+" cp -d "+first+" /"+idOf(second)+":"+src+" - >/dev/null"); err != nil {
			return err
		}
		stream += d
	}
	mbs := func(d time.Duration) float64 { return rounds * size / d.Seconds() / (1 << 20) }
	report("cp", fmt.Sprintf("circuit cp 1 GiB to another server: %.0f MiB/s", mbs(cp)),
		fmt.Sprintf("raw TCP copy %.0f MiB/s", mbs(floor)), float64(floor)/float64(cp), "≥ 0.5 (issue 10)")
	report("cp", "(the same, against a local cp of the file)",
		fmt.Sprintf("local cp %.0f MiB/s", mbs(local)), float64(local)/float64(cp), "for reference: the file write alone")
	report("cp", fmt.Sprintf("circuit cp 1 GiB from, to - : %.0f MiB/s", mbs(stream)),
		fmt.Sprintf("raw TCP copy %.0f MiB/s", mbs(floor)), float64(floor)/float64(stream), "≥ 0.5 (transport, no file)")

	_, cleanup, err := b.pdshSetup(1)
	if err != nil {
		fmt.Printf("cp       scp skipped: %v\n", err)
		return nil
	}
	defer cleanup()
	var scp time.Duration
	for range rounds {
		os.Remove(dst)
		start := time.Now()
		args := append(append([]string{"-P", fmt.Sprint(sshPort)}, sshArgs()...), src, sshUser+"@127.0.0.1:"+dst)
		if out, err := exec.Command("scp", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("scp: %v: %s", err, out)
		}
		scp += time.Since(start)
	}
	report("cp", fmt.Sprintf("scp 1 GiB: %.0f MiB/s", mbs(scp)),
		fmt.Sprintf("circuit cp %.0f MiB/s", mbs(cp)), float64(scp)/float64(cp), "> 1: circuit cp faster (issue 10)")
	return nil
}

// writeRandom writes size random bytes to name.
func writeRandom(name string, size int64) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	buf := make([]byte, 4<<20)
	rand.Read(buf)
	for n := int64(0); n < size; n += int64(len(buf)) {
		if _, err := f.Write(buf[:min(int64(len(buf)), size-n)]); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}
