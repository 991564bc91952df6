package packaging

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/circuit-project/circuit/internal/testsupport"
)

// unitFile reads contrib/systemd/circuit.service.
func unitFile(t *testing.T, root string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "contrib", "systemd", "circuit.service"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// unitSetting returns the values of a setting of the unit, in order.
func unitSetting(unit, key string) []string {
	var vals []string
	for _, line := range strings.Split(unit, "\n") {
		if v, ok := strings.CutPrefix(line, key+"="); ok {
			vals = append(vals, v)
		}
	}
	return vals
}

// envFile reads VAR=value lines, as systemd's EnvironmentFile= does for the
// plain lines our example has (no quotes, no continuations).
func envFile(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.ContainsAny(v, `"'\`) {
			t.Fatalf("%s:%d: %q is not a plain VAR=value line", path, i+1, line)
		}
		vars[k] = v
	}
	return vars
}

var varRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandExec expands a command line as systemd.service(5) says: a word that
// is exactly $VAR becomes the value split at white space (zero or more
// words); ${VAR} within a word is replaced by the value, keeping one word.
func expandExec(line string, vars map[string]string) []string {
	var args []string
	for _, w := range strings.Fields(line) {
		if name, ok := strings.CutPrefix(w, "$"); ok && !strings.HasPrefix(name, "{") {
			args = append(args, strings.Fields(vars[name])...)
			continue
		}
		args = append(args, varRef.ReplaceAllStringFunc(w, func(ref string) string {
			return vars[varRef.FindStringSubmatch(ref)[1]]
		}))
	}
	return args
}

// TestSystemdUnitVerifies checks the unit with systemd-analyze verify,
// pointed at a binary that exists; any complaint fails the test.
func TestSystemdUnitVerifies(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("no systemd-analyze (Debian package systemd)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	root := repoRoot(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "circuit")
	must(t, ctx, root, nil, "", "go", "build", "-o", bin, "./cmd/circuit")
	unit := strings.ReplaceAll(unitFile(t, root), "/usr/local/bin/circuit", bin)
	path := filepath.Join(dir, "circuit.service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "systemd-analyze", "verify", path)
	out, err := cmd.CombinedOutput()
	if err != nil || len(out) != 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestSystemdExecStart runs the unit's command line as systemd would
// expand it with the example environment file, with the address, state
// directory and discovery group changed to fit this machine, and checks that
// the server comes up with them and stops cleanly on SIGTERM.
func TestSystemdExecStart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	root := repoRoot(t)
	unit := unitFile(t, root)
	vars := map[string]string{}
	for _, e := range unitSetting(unit, "Environment") {
		k, v, _ := strings.Cut(e, "=")
		vars[k] = v
	}
	for k, v := range envFile(t, filepath.Join(root, "contrib", "systemd", "circuit.env")) {
		vars[k] = v // EnvironmentFile= overrides Environment=
	}
	if vars["CIRCUIT_IF"] == "" || vars["CIRCUIT_DISCOVER"] == "" || vars["CIRCUIT_VAR"] != "/var/lib/circuit" {
		t.Fatalf("the example configuration is not what this test expects: %q", vars)
	}
	state := filepath.Join(t.TempDir(), "state")
	vars["CIRCUIT_IF"] = "lo"
	vars["CIRCUIT_ADDR"] = ":0"
	vars["CIRCUIT_VAR"] = state
	vars["CIRCUIT_DISCOVER"] = "" // no multicast from a test on a shared machine
	vars["CIRCUIT_FLAGS"] = "-label role=db  -label zone=a"

	execStart := unitSetting(unit, "ExecStart")
	if len(execStart) != 1 {
		t.Fatalf("ExecStart: %q, want one", execStart)
	}
	args := expandExec(execStart[0], vars)
	wantTail := []string{"start", "-a", ":0", "-if", "lo", "-var", state, "-label", "role=db", "-label", "zone=a"}
	if args[0] != "/usr/local/bin/circuit" || !slices.Equal(args[1:], wantTail) {
		t.Fatalf("ExecStart expands to %q", args)
	}

	bin := filepath.Join(t.TempDir(), "circuit")
	must(t, ctx, root, nil, "", "go", "build", "-o", bin, "./cmd/circuit")
	if vars["CIRCUIT_REQUIRE_KEY"] != "1" {
		t.Fatalf("the unit does not require a key: %q", vars)
	}
	// The key comes as the systemd credential circuit.key, so its path is
	// in no environment.
	if got := unitSetting(unit, "LoadCredential"); !slices.Equal(got, []string{"circuit.key:/etc/circuit/hmac"}) {
		t.Fatalf("LoadCredential: %q, want the key file as circuit.key", got)
	}
	if vars["CIRCUIT_HMAC"] != "" {
		t.Fatalf("the example environment names the key file (CIRCUIT_HMAC=%s): it is the unit's credential", vars["CIRCUIT_HMAC"])
	}
	creds := t.TempDir() // what systemd makes $CREDENTIALS_DIRECTORY
	env := append(os.Environ(), "CIRCUIT_HMAC=", "CREDENTIALS_DIRECTORY="+creds)
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	// With no key, the unit's command refuses to start, saying how to make
	// one.
	noKey := exec.CommandContext(ctx, bin, args[1:]...)
	noKey.Env = env
	if out, err := noKey.CombinedOutput(); err == nil || !strings.Contains(string(out), "circuit keygen") {
		t.Fatalf("the unit's command without a key: %v %s", err, out)
	}
	key := must(t, ctx, "", nil, "", bin, "keygen")
	keyFile := filepath.Join(creds, "circuit.key")
	if err := os.WriteFile(keyFile, []byte(key), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, bin, args[1:]...)
	cmd.Env = env
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			cmd.Process.Kill()
			<-done
		}
	})
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- strings.TrimSpace(line)
		io.Copy(io.Discard, stdout)
	}()
	var url string
	select {
	case url = <-lines:
	case err := <-done:
		stopped = true
		t.Fatalf("the server exited: %v\n%s", err, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("no URL within 30 s\n%s", stderr.String())
	}
	if !strings.HasPrefix(url, "circuit://127.0.0.1:") {
		t.Fatalf("the server printed %q", url)
	}
	out := must(t, ctx, "", []string{"CIRCUIT_DISCOVER=", "CIRCUIT_HMAC=" + keyFile}, "", bin, "ls", "-l", "-d", url, "/")
	id := url[strings.LastIndex(url, "/")+1:]
	if want := fmt.Sprintf("server  /%s  role=db,zone=a\n", id); out != want {
		t.Errorf("ls -l / printed %q, want %q", out, want)
	}
	for _, f := range []string{"circuit.lock", "circuit.log"} {
		if _, err := os.Stat(filepath.Join(state, f)); err != nil {
			t.Errorf("the state directory: %v", err)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		stopped = true
		if err != nil {
			t.Errorf("after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second): // the unit's TimeoutStopSec
		t.Fatalf("still running 15 s after SIGTERM")
	}
}

// systemdRoot lays out a root file system in which this host's systemd
// boots, with the static circuit binary, the unit and its environment file
// installed as README.md says, the unit enabled, and the service user.
func systemdRoot(t *testing.T, ctx context.Context, root, systemd string, env []string) string {
	t.Helper()
	fs := t.TempDir()
	for _, d := range []string{"usr/bin", "usr/sbin", "usr/lib", "usr/lib64", "usr/local/bin", "etc/systemd/system/multi-user.target.wants", "etc/circuit", "run", "var", "tmp", "proc", "sys", "dev", "root"} {
		if err := os.MkdirAll(filepath.Join(fs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(fs, "tmp"), 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"bin", "sbin", "lib", "lib64"} { // merged /usr
		if err := os.Symlink("usr/"+l, filepath.Join(fs, l)); err != nil {
			t.Fatal(err)
		}
	}
	progs := []string{systemd, "/lib/systemd/systemd-journald", "/bin/systemctl", "/bin/journalctl"}
	out := must(t, ctx, "", nil, "", "ldd", progs...)
	libs := regexp.MustCompile(`(/\S+\.so[.0-9]*)\s`).FindAllStringSubmatch(out, -1)
	if len(libs) == 0 {
		t.Fatalf("ldd found no libraries:\n%s", out)
	}
	copyFile := func(src, dst string, mode os.FileMode) {
		t.Helper()
		b, err := os.ReadFile(src) // follows symbolic links
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, mode); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range libs {
		copyFile(m[1], filepath.Join(fs, "usr", strings.TrimPrefix(m[1], "/usr")), 0o755)
	}
	must(t, ctx, "", nil, "", "cp", "-a", "/usr/lib/systemd", filepath.Join(fs, "usr", "lib"))
	copyFile("/bin/systemctl", filepath.Join(fs, "usr", "bin", "systemctl"), 0o755)
	copyFile("/bin/journalctl", filepath.Join(fs, "usr", "bin", "journalctl"), 0o755)
	copyFile("/etc/os-release", filepath.Join(fs, "etc", "os-release"), 0o644)
	must(t, ctx, root, []string{"CGO_ENABLED=0"}, "", "go", "build", "-o", filepath.Join(fs, "usr", "local", "bin", "circuit"), "./cmd/circuit")

	write := func(name, content string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(fs, name), []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("etc/passwd", "root:x:0:0:root:/root:/bin/sh\ncircuit:x:999:999:circuit:/var/lib/circuit:/usr/sbin/nologin\n", 0o644)
	write("etc/group", "root:x:0:\ncircuit:x:999:\n", 0o644)
	write("etc/machine-id", "", 0o444)
	write("etc/systemd/system/circuit.service", unitFile(t, root), 0o644)
	example, err := os.ReadFile(filepath.Join(root, "contrib", "systemd", "circuit.env"))
	if err != nil {
		t.Fatal(err)
	}
	write("etc/circuit/circuit.env", string(example)+strings.Join(env, "\n")+"\n", 0o644)
	key := must(t, ctx, "", nil, "", filepath.Join(fs, "usr", "local", "bin", "circuit"), "keygen")
	write("etc/circuit/hmac", key, 0o600)
	if err := os.Chown(filepath.Join(fs, "etc/circuit/hmac"), 999, 999); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"etc/systemd/system/multi-user.target.wants/circuit.service": "/etc/systemd/system/circuit.service",
		"etc/systemd/system/default.target":                          "/usr/lib/systemd/system/multi-user.target",
	} {
		if err := os.Symlink(target, filepath.Join(fs, link)); err != nil {
			t.Fatal(err)
		}
	}
	return fs
}

// TestSystemdBoot boots this host's systemd in two containers on a network
// of their own, with the unit installed and enabled and the example
// environment file plus a key and labels, and checks what the unit
// promises: the servers start at boot as the user circuit, find each other,
// are restarted after a crash, and are not after circuit suicide.
func TestSystemdBoot(t *testing.T) {
	const systemd = "/lib/systemd/systemd"
	if _, err := os.Stat(systemd); err != nil {
		t.Skipf("no systemd on this host to boot in a container: %v", err)
	}
	for _, p := range []string{"ldd", "tar"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("no %s: %v", p, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dockerWorks(t, ctx)
	root := repoRoot(t)
	suffix := randomHex(t, 4)
	fs := systemdRoot(t, ctx, root, systemd, []string{"CIRCUIT_FLAGS=-label role=db"}) // the unit loads /etc/circuit/hmac

	image := "circuit-packaging-systemd:" + suffix
	t.Cleanup(func() {
		if _, err := run(context.Background(), "", nil, "", "docker", "rmi", "-f", image); err != nil {
			t.Errorf("removing the image: %v", err)
		}
	})
	importImage := func() {
		must(t, ctx, "", nil, "", "sh", "-c", `tar -C "$1" -c . | docker import -c 'ENTRYPOINT ["/lib/systemd/systemd"]' - "$2"`, "sh", fs, image)
	}
	importImage()
	network := "circuit-packaging-systemd-" + suffix
	must(t, ctx, "", nil, "", "docker", "network", "create", network)
	t.Cleanup(func() {
		if _, err := run(context.Background(), "", nil, "", "docker", "network", "rm", network); err != nil {
			t.Errorf("removing the network: %v", err)
		}
	})
	boot := func(h string) {
		t.Helper()
		t.Cleanup(func() {
			if _, err := run(context.Background(), "", nil, "", "docker", "rm", "-f", h); err != nil {
				t.Errorf("removing container %s: %v", h, err)
			}
		})
		must(t, ctx, "", nil, "", "docker", "run", "-d", "--name", h, "--network", network,
			"--cap-add", "SYS_ADMIN", "--tmpfs", "/run", "--tmpfs", "/run/lock", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", image)
		// Whether systemd boots in a container depends on the host
		// (cgroups, capabilities), not on circuit; only the unit's own
		// behaviour fails the test, unless CIRCUIT_REQUIRE_SYSTEMD=1.
		err := testsupport.Wait(60*time.Second, func() error {
			out, err := run(ctx, "", nil, "", "docker", "exec", h, "systemctl", "show", "-p", "Version", "--value")
			if err == nil && strings.TrimSpace(out) == "" {
				err = errors.New("systemctl show -p Version printed nothing")
			}
			return err // nil: the manager answers: it is PID 1 and booting
		})
		if err != nil {
			logs, _ := run(ctx, "", nil, "", "docker", "logs", "--tail", "20", h)
			if os.Getenv("CIRCUIT_REQUIRE_SYSTEMD") == "1" {
				t.Fatalf("systemd did not boot in container %s: %v\n%s", h, err, logs)
			}
			t.Skipf("systemd does not boot in a container here (CIRCUIT_REQUIRE_SYSTEMD=1 fails instead): %v\n%s", err, logs)
		}
	}
	journal := func(h string) string {
		out, _ := run(ctx, "", nil, "", "docker", "exec", h, "systemctl", "status", "--no-pager", "-l", "-n", "0", "circuit")
		log, _ := run(ctx, "", nil, "", "docker", "exec", h, "journalctl", "--no-pager", "-u", "circuit", "-n", "20")
		return out + log
	}

	// A probe: can this host's containers give a service user its systemd
	// credential? Nested in another container, systemd may fail to mount
	// the credentials' file system and leave their directory to root. The
	// server's side of the credential is then checked by
	// TestSystemdExecStart alone, and here a drop-in gives the key.
	probe := "circuit-packaging-systemd-probe-" + suffix
	boot(probe)
	credentials := true
	poll(t, 30*time.Second, "the probe's server started, or was refused its credential", func() error {
		j := journal(probe)
		switch {
		case strings.Contains(j, "msg=serving"):
		case strings.Contains(j, "(the systemd credential circuit.key): open") && strings.Contains(j, "permission denied"):
			credentials = false
		default:
			return fmt.Errorf("neither in the journal:\n%s", j)
		}
		return nil
	})
	run(ctx, "", nil, "", "docker", "rm", "-f", probe)
	if !credentials {
		t.Logf("systemd in a container here does not give the service user its credential (the directory stays root's): a drop-in sets CIRCUIT_HMAC instead")
		dropin := filepath.Join(fs, "etc/systemd/system/circuit.service.d")
		if err := os.MkdirAll(dropin, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dropin, "key.conf"), []byte("[Service]\nEnvironment=CIRCUIT_HMAC=/etc/circuit/hmac\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		importImage()
	}

	hosts := []string{"circuit-packaging-systemd-a-" + suffix, "circuit-packaging-systemd-b-" + suffix}
	for _, h := range hosts {
		boot(h)
	}
	show := func(h string) map[string]string {
		out := must(t, ctx, "", nil, "", "docker", "exec", h, "systemctl", "show", "-p", "ActiveState,SubState,Result,NRestarts,MainPID,ExecMainStatus", "circuit")
		props := map[string]string{}
		for _, line := range strings.Fields(out) {
			k, v, _ := strings.Cut(line, "=")
			props[k] = v
		}
		return props
	}
	ls := []string{"exec", "-e", "CIRCUIT_DISCOVER=228.8.8.8:7711", "-e", "CIRCUIT_HMAC=/etc/circuit/hmac", hosts[0], "/usr/local/bin/circuit", "ls", "-l", "/"}
	servers := func() ([]string, error) {
		out, err := run(ctx, "", nil, "", "docker", ls...)
		if err != nil {
			return nil, err
		}
		var ids []string
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Fields(line)
			if len(f) != 3 || f[0] != "server" || f[2] != "role=db" {
				return nil, fmt.Errorf("ls -l / printed %q", out)
			}
			ids = append(ids, f[1])
		}
		return ids, nil
	}
	var ids []string
	poll(t, 30*time.Second, "both servers up and in one cluster", func() error {
		var err error
		if ids, err = servers(); err == nil && len(ids) != 2 {
			err = fmt.Errorf("servers %q", ids)
		}
		if err != nil {
			err = fmt.Errorf("%w\njournal of %s:\n%s", err, hosts[0], journal(hosts[0]))
		}
		return err
	})
	for _, h := range hosts {
		p := show(h)
		if p["ActiveState"] != "active" || p["NRestarts"] != "0" {
			t.Fatalf("%s: circuit.service %v\n%s", h, p, journal(h))
		}
		// docker top shows the host's process IDs, not the container's.
		top := must(t, ctx, "", nil, "", "docker", "top", h, "-eo", "pid,uid,args")
		if !regexp.MustCompile(`(?m)^\s*\d+\s+999\s+/usr/local/bin/circuit start -a\s+-if eth0 -var /var/lib/circuit -label role=db$`).MatchString(top) {
			t.Errorf("%s: the server is not running as the user circuit (uid 999) with the expected command line:\n%s", h, top)
		}
	}

	// A crash: systemd starts it again, with a new ID, which rejoins.
	b := hosts[1]
	before := show(b)
	must(t, ctx, "", nil, "", "docker", "exec", b, "systemctl", "kill", "-s", "KILL", "circuit")
	poll(t, 30*time.Second, "the killed server restarted", func() error {
		if p := show(b); p["NRestarts"] != "1" || p["ActiveState"] != "active" || p["MainPID"] == before["MainPID"] {
			return fmt.Errorf("circuit.service %v", p)
		}
		return nil
	})
	var restarted string
	poll(t, 30*time.Second, "the restarted server back in the cluster", func() error {
		now, err := servers()
		if err != nil {
			return err
		}
		fresh := slices.DeleteFunc(slices.Clone(now), func(id string) bool { return slices.Contains(ids, id) })
		if len(now) != 2 || len(fresh) != 1 {
			return fmt.Errorf("servers %q, before the crash %q", now, ids)
		}
		restarted = fresh[0]
		return nil
	})

	// circuit suicide is a clean exit: not restarted.
	must(t, ctx, "", nil, "", "docker", append(slices.Clone(ls[:len(ls)-3]), "suicide", restarted)...)
	poll(t, 15*time.Second, "the server stopped by suicide", func() error {
		if p := show(b); p["ActiveState"] != "inactive" {
			return fmt.Errorf("circuit.service %v", p)
		}
		return nil
	})
	if p := show(b); p["SubState"] != "dead" || p["Result"] != "success" || p["NRestarts"] != "1" || p["ExecMainStatus"] != "0" {
		t.Errorf("after suicide: circuit.service %v, want dead, success, no new restart\n%s", p, journal(b))
	}
}
