package e2e

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/circuit-project/circuit/internal/security"
	"github.com/circuit-project/circuit/internal/testsupport"
	"github.com/circuit-project/circuit/internal/testsupport/testcluster"
)

// TestKeysRefusedAtStart: a server refuses to start with a key that is not
// keygen's, with a key file open to group or others, and, when it requires
// a key, with none; each says what to do and exits 2. A client with an open
// key file is warned and works.
func TestKeysRefusedAtStart(t *testing.T) {
	cl := testcluster.Start(t, 1, testcluster.Options{Key: true})
	dir := t.TempDir()
	write := func(name, contents string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(contents), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	password := write("password", "correct horse battery staple\n", 0o600)
	open := write("open", security.Generate()+"\n", 0o644)
	start := []string{"start", "-a", "127.0.0.1:0", "-timing", "local"}
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"a password", []string{"CIRCUIT_HMAC=" + password}, nil, "32 random bytes in base64"},
		{"an open key file", []string{"CIRCUIT_HMAC=" + open}, nil, "chmod 600 " + open},
		{"an open key file by -hmac", []string{"CIRCUIT_HMAC="}, []string{"-hmac", open}, "open to group or others (mode 0644)"},
		{"no key, required by flag", []string{"CIRCUIT_HMAC="}, []string{"-require-key"}, "circuit keygen"},
		{"no key, required by the environment", []string{"CIRCUIT_HMAC=", "CIRCUIT_REQUIRE_KEY=1"}, nil, "circuit keygen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := cl.RunEnv(tc.env, "", append(start, tc.args...)...)
			if r.Code != 2 || !strings.Contains(r.Stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit 2 and %q", r.Code, r.Stderr, tc.want)
			}
		})
	}
	// The systemd credential: a key found in $CREDENTIALS_DIRECTORY, with
	// no path on the command line.
	creds := t.TempDir()
	key, err := os.ReadFile(cl.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(creds, "circuit.key"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	p := cl.SpawnEnv([]string{"CIRCUIT_HMAC=", "CREDENTIALS_DIRECTORY=" + creds, "CIRCUIT_REQUIRE_KEY=1"},
		"start", "-a", "127.0.0.1:0", "-timing", "local", "-j", cl.Servers[0].URL)
	cl.Servers = append(cl.Servers, p)
	cl.WaitMembers(2)
	// A client with the key in an open file: warned, and served.
	openCopy := write("client-open", string(key), 0o644)
	r := cl.RunEnv([]string{"CIRCUIT_HMAC=" + openCopy}, "", "ls", "-d", cl.Servers[0].URL, "/")
	if r.Code != 0 || !strings.Contains(r.Stderr, "warning: key file "+openCopy+" is open to group or others") {
		t.Fatalf("a client with an open key file: %+v", r)
	}
}

// TestJoinNonCircuitService: joining a service that is not circuit says so,
// shows nothing of what it sent (here a banner with a secret), and exits 1.
func TestJoinNonCircuitService(t *testing.T) {
	cl := testcluster.Start(t, 1, testcluster.Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const secret = "INTERNAL-SECRET-TOKEN-4f2a"
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			c.Write([]byte("220 internal service ready " + secret + " " + strings.Repeat("x", 300) + "\r\n"))
			c.Read(make([]byte, 512))
			c.Close()
		}
	}()
	r := cl.Run("join", ln.Addr().String())
	if r.Code != 1 || strings.Contains(r.Stderr+r.Stdout, secret) || strings.Contains(r.Stderr, "220") || !strings.Contains(r.Stderr, "not a circuit server") {
		t.Fatalf("join of a non-circuit service: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
}

// TestProcessWithCredential: a process made with "Cred": true on a keyed
// cluster uses the CLI with the credential its server gave it, without the
// key, across servers; it cannot stand in for the key; the credential's
// file goes when the process ends.
func TestProcessWithCredential(t *testing.T) {
	cl := testcluster.Start(t, 2, testcluster.Options{Key: true})
	srv := cl.Servers[1]
	dir := t.TempDir()
	out, bad := filepath.Join(dir, "out"), filepath.Join(dir, "bad.cred")
	if err := os.WriteFile(bad, []byte(security.Generate()), 0o600); err != nil {
		t.Fatal(err)
	}
	script := strings.Join([]string{
		`echo "cred=$CIRCUIT_CRED"`,
		`echo "hmac=$CIRCUIT_HMAC"`,
		`"$BIN" ls -d "$DIALIN" /... && echo listed`,
		`"$BIN" ls -cred "$BAD" -d "$DIALIN" / || echo "refused=$?"`,
	}, "; ")
	cmd, err := json.Marshal(map[string]any{
		"Path": "/bin/sh", "Args": []string{"-c", "{ " + script + "; } > " + out + " 2>&1"},
		"Env":  []string{"BIN=" + cl.Bin, "DIALIN=" + cl.Servers[0].URL, "BAD=" + bad, "PATH=/usr/bin:/bin"},
		"Cred": true, "NoStdin": true,
	})
	if err != nil {
		t.Fatal(err)
	}
	job := "/" + srv.ID + "/job"
	if r := cl.RunVia(srv, string(cmd), "mkproc", job); r.Code != 0 {
		t.Fatalf("mkproc: %+v", r)
	}
	if r := cl.Run("wait", job); r.Code != 0 {
		t.Fatalf("wait: %+v", r)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	lines := strings.Split(got, "\n")
	cred, ok := strings.CutPrefix(lines[0], "cred=")
	if !ok || cred == "" || lines[1] != "hmac=" {
		t.Fatalf("the process's credential and key: %q", got)
	}
	if !strings.Contains(got, "/"+cl.Servers[0].ID+"\n") || !strings.Contains(got, job+"\n") || !strings.Contains(got, "listed\n") {
		t.Fatalf("ls across the cluster with the credential: %q", got)
	}
	if !strings.Contains(got, "refused=2") || !strings.Contains(got, "not a circuit credential") {
		t.Fatalf("a bad -cred: %q", got)
	}
	if _, err := os.Stat(cred); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the credential's file %s outlived its process: %v", cred, err)
	}
}

// credFile runs circuit cred with args, its standard output a new file
// open to all (cred makes it private), and returns the file.
func credFile(t *testing.T, cl *testcluster.Cluster, args ...string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "c.cred")
	f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(cl.Bin, append([]string{"cred"}, args...)...)
	cmd.Env = append(os.Environ(), "CIRCUIT_HMAC="+cl.KeyFile)
	cmd.Stdout = f
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("cred: %v %s", err, stderr.String())
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the credential file: %v, %v; want mode 600", fi.Mode(), err)
	}
	return file
}

// TestRevokeCommand: circuit revoke with the built binary. A revoked
// credential is refused by every server within 2 s, saying it was revoked
// (an expired one says it expired); the list survives a restart in -var
// and reaches a server that joins later; revoke -list shows it; bad
// arguments exit 2 and a credential without role admin exits 5.
func TestRevokeCommand(t *testing.T) {
	cl := testcluster.Start(t, 2, testcluster.Options{Key: true})
	varDir := t.TempDir()
	kept := cl.StartServer("-j", cl.Servers[0].URL, "-var", varDir)
	cl.WaitMembers(3)
	alice := credFile(t, cl, "-name", "alice", "-role", "operate", "-ttl", "1h")
	asAlice := []string{"CIRCUIT_HMAC=", "CIRCUIT_CRED=" + alice}
	for _, s := range cl.Servers {
		if r := cl.RunEnv(asAlice, "", "peek", "-d", s.URL, "/"+s.ID); r.Code != 0 {
			t.Fatalf("peek as alice before revoking: %+v", r)
		}
	}
	start := time.Now()
	r := cl.Run("revoke", "-d", cl.Servers[0].URL, alice)
	if r.Code != 0 || !strings.Contains(r.Stdout, "(alice)") || !strings.Contains(r.Stdout, "listed by 3 of 3 servers") {
		t.Fatalf("revoke: %+v", r)
	}
	for _, s := range cl.Servers {
		r := cl.RunEnv(asAlice, "", "peek", "-d", s.URL, "/"+s.ID)
		if r.Code == 0 || !strings.Contains(r.Stderr, "was revoked at") {
			t.Fatalf("peek as alice at %s after revoking: %+v; want refused as revoked", s.ID, r)
		}
	}
	if d := time.Since(start); d > 2*time.Second+time.Second { // the revoke command's own start and exit, under -race, with the check of every server
		t.Errorf("refused everywhere %v after revoke started", d)
	}
	id := strings.Fields(r.Stdout)[1]
	if r := cl.Run("revoke", "-d", cl.Servers[1].URL, id); r.Code != 0 || !strings.HasPrefix(r.Stdout, "already revoked "+id) {
		t.Errorf("revoking again by ID: %+v", r)
	}
	if r := cl.Run("revoke", "-list", "-d", cl.Servers[1].URL); r.Code != 0 || !strings.Contains(r.Stdout, id+"  alice") {
		t.Errorf("revoke -list: %+v", r)
	}
	operator := credFile(t, cl, "-name", "bob", "-role", "operate")
	if r := cl.RunEnv([]string{"CIRCUIT_HMAC=", "CIRCUIT_CRED=" + operator}, "", "revoke", "-d", cl.Servers[0].URL, strings.Repeat("ab", 16)); r.Code != 5 || !strings.Contains(r.Stderr, "it needs role admin") {
		t.Errorf("revoke by an operator: %+v", r)
	}
	for _, args := range [][]string{{}, {"nothing-here"}, {"-list", id}} {
		if r := cl.Run(append([]string{"revoke", "-d", cl.Servers[0].URL}, args...)...); r.Code != 2 {
			t.Errorf("revoke %q: %+v; want exit 2", args, r)
		}
	}

	// An expired credential is refused as expired.
	brief := credFile(t, cl, "-name", "brief", "-role", "read", "-ttl", "1s")
	testsupport.Eventually(t, 10*time.Second, func() error {
		r := cl.RunEnv([]string{"CIRCUIT_HMAC=", "CIRCUIT_CRED=" + brief}, "", "peek", "-d", cl.Servers[0].URL, "/"+cl.Servers[0].ID)
		if r.Code == 0 || !strings.Contains(r.Stderr, "expired") {
			return errors.New("not refused as expired: " + r.Stderr)
		}
		return nil
	})

	// The server with -var keeps the list across a restart, alone; a
	// server that joins later gets it.
	kept.Kill()
	again := cl.StartServer("-var", varDir)
	if r := cl.RunEnv(asAlice, "", "peek", "-d", again.URL, "/"+again.ID); !strings.Contains(r.Stderr, "was revoked at") {
		t.Errorf("peek as alice at the restarted server: %+v; want refused as revoked", r)
	}
	late := cl.StartServer("-j", cl.Servers[1].URL)
	testsupport.Eventually(t, 5*time.Second, func() error {
		if r := cl.RunEnv(asAlice, "", "peek", "-d", late.URL, "/"+late.ID); !strings.Contains(r.Stderr, "was revoked at") {
			return errors.New("a server that joined later serves alice: " + r.Stdout + r.Stderr)
		}
		return nil
	})
}

// TestCredentialRoles: circuit cred makes a private credential file with
// the key alone; a read credential lists but may not start a process, and
// the refusal names who, the role and the operation, with exit 5; bad
// requests for a credential exit 2, saying what was wrong.
func TestCredentialRoles(t *testing.T) {
	cl := testcluster.Start(t, 2, testcluster.Options{Key: true})
	file := credFile(t, cl, "-name", "alice", "-role", "read", "-ttl", "1h")
	asAlice := []string{"CIRCUIT_HMAC=", "CIRCUIT_CRED=" + file}
	other := "/" + cl.Servers[1].ID
	if r := cl.RunEnv(asAlice, "", "ls", "-d", cl.Servers[0].URL, "/..."); r.Code != 0 || !strings.Contains(r.Stdout, other+"\n") {
		t.Fatalf("ls with a read credential: %+v", r)
	}
	r := cl.RunEnv(asAlice, `{"Path": "/bin/true"}`, "mkproc", "-d", cl.Servers[0].URL, other+"/job")
	if want := "permission denied: alice (role read) may not Proc.Make on " + other + "/job: it needs role operate"; r.Code != 5 || !strings.Contains(r.Stderr, want) {
		t.Fatalf("mkproc with a read credential, relayed: exit %d, %q; want exit 5 and %q", r.Code, r.Stderr, want)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-name", "x"}, "unknown role"},
		{[]string{"-role", "read"}, "-name"},
		{[]string{"-name", "x", "-role", "read", "-ttl", "9000h"}, "at most"},
		{[]string{"-name", "x", "-role", "read", "-l", "role in ("}, "-l"},
		{[]string{"-name", "x", "-role", "read", "-path", "jobs"}, "starting with /"},
	} {
		if r := cl.RunEnv(nil, "", append([]string{"cred"}, tc.args...)...); r.Code != 2 || !strings.Contains(r.Stderr, tc.want) {
			t.Errorf("cred %q: exit %d, %q; want exit 2 and %q", tc.args, r.Code, r.Stderr, tc.want)
		}
	}
	if r := cl.RunEnv([]string{"CIRCUIT_HMAC="}, "", "cred", "-name", "x", "-role", "read"); r.Code != 2 || !strings.Contains(r.Stderr, "cluster key") {
		t.Errorf("cred without the key: %+v", r)
	}
}
