package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/circuit-project/circuit/internal/testsupport"
	"github.com/circuit-project/circuit/internal/testsupport/testcluster"
)

// auditRecord is a line of the audit file, as docs/CLI.md documents it.
type auditRecord struct {
	Seq                             uint64
	Time                            time.Time
	Event, Op, Path, Who, From, Via string
	What                            map[string]any
	Err, Took                       string
}

// readAudit reads every line of an audit file; each must be whole JSON.
func readAudit(t *testing.T, path string) []auditRecord {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Fatalf("the audit file ends in the middle of a line: %q", b[max(0, len(b)-80):])
	}
	var out []auditRecord
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r auditRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

// find returns the records of the first operation op on path (a prefix)
// with a begin record, by event.
func find(recs []auditRecord, op, path string) map[string]auditRecord {
	var seq uint64
	for _, r := range recs {
		if r.Op == op && r.Event == "begin" && strings.HasPrefix(r.Path, path) {
			seq = r.Seq
			break
		}
	}
	out := map[string]auditRecord{}
	for _, r := range recs {
		if seq != 0 && r.Seq == seq {
			out[r.Event] = r
		}
	}
	return out
}

// TestAuditLog: a server started with -audit FILE records who ran what,
// from the original client's address through a relay, with the command,
// the copy's file and bytes, the signal and a process's exit under the
// operation's number; circuit log reads the records (admin only) and
// follows new ones; the file is whole after a kill -9 of the server.
func TestAuditLog(t *testing.T) {
	cl := testcluster.Start(t, 1, testcluster.Options{Key: true})
	auditFile := filepath.Join(t.TempDir(), "audit.jsonl")
	b := cl.StartServer("-j", cl.Servers[0].URL, "-audit", auditFile, "-label", "role=audited")
	cl.WaitMembers(2)
	relay := cl.Servers[0]
	bp := "/" + b.ID
	alice := credFile(t, cl, "-name", "alice", "-role", "operate")
	asAlice := []string{"CIRCUIT_HMAC=", "CIRCUIT_CRED=" + alice}

	// follow the log from the start, through the relay
	follow := exec.Command(cl.Bin, "log", "-f", "-json", "-d", relay.URL, bp)
	follow.Env = append(os.Environ(), "CIRCUIT_HMAC="+cl.KeyFile)
	var followed testcluster.SyncBuffer
	follow.Stdout = &followed
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { follow.Process.Kill(); follow.Wait() }()
	testsupport.Eventually(t, 10*time.Second, func() error {
		if r := cl.Run("log", "-json", "-d", b.URL, bp); !strings.Contains(r.Stdout, `"Op":"Server.Log"`) {
			return errors.New("the follower has not begun")
		}
		return nil
	})

	if r := cl.RunEnv(asAlice, `{"Path": "/bin/echo", "Args": ["hello", "audit"], "Dir": "/tmp"}`, "mkproc", "-d", relay.URL, bp+"/hi"); r.Code != 0 {
		t.Fatalf("mkproc: %+v", r)
	}
	if r := cl.RunEnv(asAlice, "", "run", "-d", relay.URL, "-l", "role=audited", "--", "/bin/echo", "ran"); r.Code != 0 {
		t.Fatalf("run: %+v", r)
	}
	src := filepath.Join(t.TempDir(), "five")
	if err := os.WriteFile(src, []byte("12345"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := cl.RunEnv(asAlice, "", "cp", "-d", relay.URL, src, bp+":"+filepath.Join(t.TempDir(), "copy")); r.Code != 0 {
		t.Fatalf("cp: %+v", r)
	}
	if r := cl.RunEnv(asAlice, `{"Path": "/bin/sleep", "Args": ["60"]}`, "mkproc", "-d", relay.URL, bp+"/sleeper"); r.Code != 0 {
		t.Fatalf("mkproc: %+v", r)
	}
	if r := cl.RunEnv(asAlice, "", "signal", "-d", relay.URL, "TERM", bp+"/sleeper"); r.Code != 0 {
		t.Fatalf("signal: %+v", r)
	}
	if r := cl.RunEnv(asAlice, "", "wait", "-d", relay.URL, bp+"/sleeper"); r.Code == 0 {
		t.Fatalf("wait for the signalled sleeper: %+v", r)
	}

	// circuit log needs role admin.
	if r := cl.RunEnv(asAlice, "", "log", "-d", relay.URL, bp); r.Code != 5 || !strings.Contains(r.Stderr, "may not Server.Log") {
		t.Errorf("log as an operator: %+v; want exit 5", r)
	}
	var recs []auditRecord
	testsupport.Eventually(t, 5*time.Second, func() error {
		r := cl.Run("log", "-json", "-d", relay.URL, bp)
		if r.Code != 0 {
			return fmt.Errorf("log: %+v", r)
		}
		recs = nil
		for _, line := range testcluster.Lines(r.Stdout) {
			var rec auditRecord
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				return fmt.Errorf("log -json line %q: %v", line, err)
			}
			recs = append(recs, rec)
		}
		if len(find(recs, "Proc.Make", bp+"/sleeper")) < 3 {
			return errors.New("the sleeper's exit is not recorded yet")
		}
		return nil
	})

	mk := find(recs, "Proc.Make", bp+"/hi")
	begin := mk["begin"]
	if !strings.HasPrefix(begin.Who, "alice (credential ") || begin.Via == "" || begin.From == begin.Via || !strings.HasPrefix(begin.From, "127.0.0.1:") {
		t.Errorf("mkproc's begin record: %+v; want alice, from the client, via the relay", begin)
	}
	if begin.What["cmd.path"] != "/bin/echo" || fmt.Sprint(begin.What["cmd.args"]) != "[hello audit]" || begin.What["cmd.dir"] != "/tmp" {
		t.Errorf("mkproc's command in its record: %v", begin.What)
	}
	if mk["end"].Err != "" || mk["exit"].What["exit_code"] != float64(0) {
		t.Errorf("mkproc's end and exit records: %+v, %+v", mk["end"], mk["exit"])
	}
	run := find(recs, "Stream.run", bp)
	if run["begin"].What["cmd.path"] != "/bin/echo" || run["begin"].What["selector"] != "role=audited" || run["exit"].What["exit_code"] != float64(0) {
		t.Errorf("run's records: %+v", run)
	}
	cp := find(recs, "Stream.put", bp)
	if !strings.HasSuffix(fmt.Sprint(cp["begin"].What["file"]), "/copy") || cp["begin"].What["local"] != src || cp["end"].What["bytes"] != float64(5) || cp["end"].What["entries"] != float64(1) {
		t.Errorf("cp's records: %+v", cp)
	}
	var signalled bool
	for _, r := range recs {
		signalled = signalled || r.Op == "Proc.Signal" && r.Event == "begin" && r.What["signal"] == "TERM"
	}
	if sl := find(recs, "Proc.Make", bp+"/sleeper"); !signalled || sl["exit"].What["signal"] != "TERM" {
		t.Errorf("the signal and the sleeper's exit: signalled %v, %+v", signalled, sl["exit"])
	}

	// The follower saw the same records.
	testsupport.Eventually(t, 5*time.Second, func() error {
		if !strings.Contains(followed.String(), `"selector":"role=audited"`) {
			return errors.New("the follower has not seen the run")
		}
		return nil
	})

	// A kill -9 leaves every record written, whole: each begin has its end.
	if r := cl.Run("ls", "-d", b.URL, bp); r.Code != 0 {
		t.Fatal(r)
	}
	b.Cmd.Process.Kill()
	b.Wait(5 * time.Second)
	file := readAudit(t, auditFile)
	ends := map[uint64]bool{}
	for _, r := range file {
		if r.Event == "end" {
			ends[r.Seq] = true
		}
	}
	begun := 0
	for _, r := range file {
		if r.Event == "begin" && r.Op != "Server.Log" { // the follower's own ended with the kill
			begun++
			if !ends[r.Seq] {
				t.Errorf("operation %d (%s) has no end record after the kill", r.Seq, r.Op)
			}
		}
	}
	if mkf := find(file, "Proc.Make", bp+"/hi"); len(mkf) != 3 || begun < 8 {
		t.Errorf("the file after the kill: %d operations begun, mkproc's records %+v", begun, mkf)
	}
}
