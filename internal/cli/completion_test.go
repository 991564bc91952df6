package cli

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/ident"
	"github.com/circuit-project/circuit/internal/security"
	"github.com/circuit-project/circuit/internal/testsupport"
	"github.com/circuit-project/circuit/internal/testsupport/build"
	"github.com/circuit-project/circuit/internal/testsupport/testcluster"
)

// runComplete runs the completion backend in this process, as the shell
// scripts do, and returns its lines and exit code.
func runComplete(t *testing.T, getenv map[string]string, words ...string) ([]string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	env := &Env{
		Stdin:  strings.NewReader(""),
		Stdout: &out,
		Stderr: &errb,
		Getenv: func(k string) string { return getenv[k] },
		Ctx:    ctx,
	}
	code := Main(env, append([]string{"completion", completeArg, "--"}, words...))
	if errb.Len() > 0 {
		t.Errorf("completion %q wrote to stderr: %s", words, errb.String())
	}
	return testcluster.Lines(out.String()), code
}

// TestCompleteCluster completes commands, flags and anchor paths against a
// keyed in-process cluster of two servers holding channels and a process.
func TestCompleteCluster(t *testing.T) {
	secret := security.Generate()
	key, err := security.New([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	servers := testcluster.StartInProcess(t, 2, key)
	url := servers[0].URL().String()
	id0, id1 := servers[0].URL().ID.String(), servers[1].URL().ID.String()
	ids := []string{id0, id1}
	slices.Sort(ids)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Connect(ctx, client.Options{Addr: url, Key: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, p := range []string{"/" + id0 + "/grp/ch1", "/" + id0 + "/grp/sub/ch2", "/" + id1 + "/other/ch3"} {
		if _, err := c.MakeChanAt(ctx, p, 1); err != nil {
			t.Fatalf("mkchan %s: %v", p, err)
		}
	}
	worker := "R0123456789abcdef"
	proc, err := c.MakeProcAt(ctx, "/"+id0+"/grp/"+worker, client.Cmd{Path: "/bin/sleep", Args: []string{"300"}, Dirs: []string{"/firehose/clients"}})
	if err != nil {
		t.Fatalf("mkproc: %v", err)
	}
	t.Cleanup(func() {
		kctx, kcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer kcancel()
		proc.Signal(kctx, "KILL")
		proc.Wait(kctx)
	})

	d := []string{"-hmac", keyFile, "-d", url}
	grp := "/" + id0 + "/grp/"
	words := func(ws ...[]string) []string { return slices.Concat(ws...) }
	w := func(s ...string) []string { return s }
	cases := []struct {
		name   string
		words  []string
		env    map[string]string
		want   []string // exactly these, in this order
		has    []string // or: at least these, each starting with the last word
		hasNot []string
	}{
		{name: "command", words: w("l"), has: []string{"ls"}},
		{name: "all commands", words: w(""), has: []string{"completion", "help", "ls", "mkproc", "start"}, hasNot: []string{completeArg}},
		{name: "help topic", words: w("help", "compl"), want: []string{"completion"}},
		{name: "unknown command", words: w("nosuch", "")},
		{name: "shell", words: w("completion", "z"), want: []string{"zsh"}},
		{name: "shells", words: w("completion", ""), want: []string{"bash", "zsh", "fish"}},
		{name: "flags of ls", words: w("ls", "-"), has: []string{"-l", "-d", "-hmac", "-discover"}},
		{name: "flags by prefix", words: w("ls", "-h"), has: []string{"-hmac"}, hasNot: []string{"-l", "-d"}},
		{name: "double dash", words: w("ls", "--hm"), want: []string{"--hmac"}},
		{name: "flags after an argument", words: w("ls", "/", "-"), has: []string{"-l"}},
		{name: "start has no dial flags", words: w("start", "-"), has: []string{"-a", "-hmac", "-var", "-fs-root"}, hasNot: []string{"-d"}},
		{name: "key file", words: w("start", "-hmac", ""), want: []string{completeFiles}},
		{name: "state dir", words: w("start", "-var", "/tm"), want: []string{completeDirs}},
		{name: "address", words: w("start", "-a", "")},
		{name: "after flag=value", words: w("start", "-hmac=k", "-a", "x", "-j"), has: []string{"-j"}},
		{name: "no value after =", words: w("start", "-hmac=")},

		{name: "servers", words: words(w("ls"), d, w("")), want: []string{"/" + ids[0] + "/", "/" + ids[1] + "/"}},
		{name: "root", words: words(w("ls"), d, w("/")), want: []string{"/" + ids[0] + "/", "/" + ids[1] + "/"}},
		{name: "one server", words: words(w("ls"), d, w("/"+id1[:len(id1)-1])), want: []string{"/" + id1 + "/"}},
		{name: "server children", words: words(w("ls"), d, w("/"+id0+"/")), want: []string{grp}},
		{name: "anchor children", words: words(w("ls", "-l"), d, w(grp)), want: []string{grp + worker, grp + "ch1", grp + "sub/"}},
		{name: "child by prefix", words: words(w("peek"), d, w(grp+"s")), want: []string{grp + "sub/"}},
		{name: "grandchild", words: words(w("close"), d, w(grp+"sub/")), want: []string{grp + "sub/ch2"}},
		{name: "other server via the dial-in", words: words(w("ls"), d, w("/"+id1+"/")), want: []string{"/" + id1 + "/other/"}},
		{name: "no such anchor", words: words(w("ls"), d, w("/"+id0+"/nope/"))},
		{name: "flags after the path's position", words: w("ls", "-d="+url, "-hmac="+keyFile, "/"), want: []string{"/" + ids[0] + "/", "/" + ids[1] + "/"}},
		{name: "repeated positional", words: words(w("waitall"), d, w(grp+"ch1", grp+"c")), want: []string{grp + "ch1"}},
		{name: "not a path position", words: words(w("mkchan"), d, w(grp+"ch9", ""))},
		{name: "signal name", words: words(w("signal"), d, w(""))},
		{name: "signal path", words: words(w("signal"), d, w("TERM", grp+"R")), want: []string{grp + worker}},
		{name: "anchor fs", words: words(w("kill"), d, w("/firehose/")), want: []string{"/firehose/clients/"}},
		{name: "anchor fs worker", words: words(w("ls"), d, w("/firehose/clients/")), want: []string{"/firehose/clients/" + worker}},
		{name: "server argument", words: words(w("stk"), d, w("/")), want: []string{"/" + ids[0], "/" + ids[1]}},
		{name: "no anchor for a server argument", words: words(w("stk"), d, w("/"+id0+"/"))},
		{name: "exec server", words: words(w("exec"), d, w("/"+id1[:len(id1)-1])), want: []string{"/" + id1}},
		{name: "exec command", words: words(w("exec"), d, w("/"+id0, "--", ""))},
		{name: "run command", words: words(w("run"), d, w("--", "/"))},
		{name: "cp server", words: words(w("cp"), d, w("/X")), want: []string{"/" + ids[0] + ":", "/" + ids[1] + ":"}},
		{name: "cp local", words: words(w("cp"), d, w("./x")), want: []string{completeFiles}},
		{name: "cp remote path", words: words(w("cp"), d, w("./x", "/"+id0+":/"))},
		{name: "join URL", words: words(w("join"), d, w(""))},

		{name: "no key, no answer", words: w("ls", "-d", url, "/")},
		{name: "key from the environment", words: w("ls", "-d", url, "/"), env: map[string]string{"CIRCUIT_HMAC": keyFile}, want: []string{"/" + ids[0] + "/", "/" + ids[1] + "/"}},
		{name: "unreadable key", words: w("ls", "-d", url, "-hmac", "/nonexistent/key", "/"), env: map[string]string{"CIRCUIT_HMAC": keyFile}},
		{name: "server refuses", words: w("ls", "-hmac", keyFile, "-d", "127.0.0.1:1", "/")},
		{name: "no dial-in server", words: w("ls", "/")},
	}
	dialFile := filepath.Join(t.TempDir(), "dial")
	if err := os.WriteFile(dialFile, []byte(url+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases = append(cases, struct {
		name   string
		words  []string
		env    map[string]string
		want   []string
		has    []string
		hasNot []string
	}{name: "server from $CIRCUIT", words: w("ls", "/"), env: map[string]string{"CIRCUIT": dialFile, "CIRCUIT_HMAC": keyFile}, want: []string{"/" + ids[0] + "/", "/" + ids[1] + "/"}})

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, code := runComplete(t, tc.env, tc.words...)
			if code != ExitOK {
				t.Errorf("exit code %d, want 0", code)
			}
			if tc.has == nil {
				if !slices.Equal(got, tc.want) {
					t.Errorf("candidates for %q:\n got %q\nwant %q", tc.words, got, tc.want)
				}
				return
			}
			cur := tc.words[len(tc.words)-1]
			for _, h := range tc.has {
				if !slices.Contains(got, h) {
					t.Errorf("candidates for %q are %q, without %q", tc.words, got, h)
				}
			}
			for _, h := range tc.hasNot {
				if slices.Contains(got, h) {
					t.Errorf("candidates for %q are %q, with %q", tc.words, got, h)
				}
			}
			for _, g := range got {
				if !strings.HasPrefix(g, cur) {
					t.Errorf("candidate %q for %q does not start with %q", g, tc.words, cur)
				}
			}
		})
	}
}

// TestCompleteTimeout: a dial-in address that accepts connections and never
// answers costs the completion its bound, not the shell's patience.
func TestCompleteTimeout(t *testing.T) {
	l, err := netListen(t)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	got, code := runComplete(t, nil, "ls", "-d", l, "/")
	if took := time.Since(start); took > completeTimeout+3*time.Second {
		t.Errorf("completion took %v with a silent server; the bound is %v", took, completeTimeout)
	}
	if code != ExitOK || len(got) != 0 {
		t.Errorf("silent server: got %q, exit %d; want nothing, exit 0", got, code)
	}
}

func TestCompletionScripts(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		var out, errb bytes.Buffer
		code := Main(&Env{Stdout: &out, Stderr: &errb}, []string{"completion", sh})
		if code != ExitOK || !strings.Contains(out.String(), "completion "+completeArg+" --") {
			t.Errorf("completion %s: exit %d, script %q, stderr %q", sh, code, out.String(), errb.String())
		}
	}
	for _, args := range [][]string{{"completion"}, {"completion", "ksh"}, {"completion", "bash", "zsh"}} {
		var out, errb bytes.Buffer
		code := Main(&Env{Stdout: &out, Stderr: &errb}, args)
		if code != ExitUsage || out.Len() != 0 || !strings.Contains(errb.String(), "bash, zsh or fish") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want a usage error naming the shells", args, code, out.String(), errb.String())
		}
	}
	var help bytes.Buffer
	Main(&Env{Stdout: &help, Stderr: &help}, []string{"help"})
	if !strings.Contains(help.String(), "completion") || strings.Contains(help.String(), completeArg) {
		t.Errorf("circuit help should list completion and not %s:\n%s", completeArg, help.String())
	}
	help.Reset()
	Main(&Env{Stdout: &help, Stderr: &help}, []string{"help", "completion"})
	for _, s := range []string{"source <(circuit completion bash)", "/etc/bash_completion.d/circuit", "fpath", "~/.config/fish/completions/circuit.fish"} {
		if !strings.Contains(help.String(), s) {
			t.Errorf("circuit help completion does not say %q:\n%s", s, help.String())
		}
	}
}

// TestBashCompletion runs the bash script, in a real bash, against a real
// server process.
func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	bin := build.Program(t, "github.com/circuit-project/circuit/cmd/circuit") // named circuit, alone in its directory
	binDir := filepath.Dir(bin)
	url, id := startServer(t, bin)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, bin, "mkchan", "-d", url, "/"+id+"/dir/ch", "1").CombinedOutput(); err != nil {
		t.Fatalf("mkchan: %v\n%s", err, out)
	}
	files := t.TempDir()
	for _, f := range []string{"key.one", "key:two"} {
		if err := os.WriteFile(filepath.Join(files, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	script, err := exec.CommandContext(ctx, bin, "completion", "bash").Output()
	if err != nil {
		t.Fatal(err)
	}
	scriptFile := filepath.Join(t.TempDir(), "circuit.bash")
	if err := os.WriteFile(scriptFile, script, 0o600); err != nil {
		t.Fatal(err)
	}

	// complete sets COMP_* as bash does for the line (the cursor at its
	// end, the words split at COMP_WORDBREAKS), calls the function that
	// complete -F registered, and prints COMPREPLY one per line, then
	// whether nospace was asked for.
	const driver = `source "$1"
line=$2
COMP_LINE=$line
COMP_POINT=${#line}
COMP_TYPE=9
COMP_KEY=9
COMP_WORDS=()
w=
for ((i = 0; i < ${#line}; i++)); do
    ch=${line:i:1}
    if [[ $ch == [[:blank:]] ]]; then
        [[ -n $w ]] && COMP_WORDS+=("$w")
        w=
    elif [[ $COMP_WORDBREAKS == *"$ch"* ]]; then
        [[ -n $w ]] && COMP_WORDS+=("$w")
        COMP_WORDS+=("$ch")
        w=
    else
        w+=$ch
    fi
done
COMP_WORDS+=("$w")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
fn=$(complete -p circuit | sed -n 's/.*-F \([^ ]*\) .*/\1/p')
[[ -n $fn ]] || { echo "complete -p circuit: no function" >&2; exit 1; }
"$fn" circuit "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
`
	complete := func(line string) []string {
		t.Helper()
		cmd := exec.CommandContext(ctx, bash, "--norc", "--noprofile", "-c", driver, "driver", scriptFile, line)
		cmd.Env = append(os.Environ(), "PATH="+binDir+":"+os.Getenv("PATH"), "CIRCUIT=", "CIRCUIT_HMAC=", "CIRCUIT_DISCOVER=")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("bash completion of %q: %v\n%s", line, err, stderr.String())
		}
		return testcluster.Lines(string(out))
	}
	cases := []struct {
		line string
		want []string // exactly
		has  string   // or: at least
	}{
		{line: "circuit l", has: "ls"},
		{line: "circuit ", has: "completion"},
		{line: "circuit ls -", has: "-l"},
		{line: "circuit ls -d " + url + " -", has: "-hmac"},
		{line: "circuit ls -d " + url + " /", want: []string{"/" + id + "/"}},
		{line: "circuit ls -d " + url + " /X", want: []string{"/" + id + "/"}},
		{line: "circuit ls -d " + url + " /" + id + "/", want: []string{"/" + id + "/dir/"}},
		{line: "circuit ls -l -d " + url + " /" + id + "/dir/", want: []string{"/" + id + "/dir/ch"}},
		{line: "circuit stk -d " + url + " ", want: []string{"/" + id}},
		// bash replaces only what follows the word's last ':', so the
		// candidate is what completes that part.
		{line: "circuit cp -d " + url + " /" + id[:5], want: []string{"/" + id + ":"}},
		{line: "circuit start -hmac " + files + "/key.", want: []string{files + "/key.one"}},
		{line: "circuit start -hmac " + files + "/key:", want: []string{"two"}},
		{line: "circuit ls -d 127.0.0.1:1 /"},
	}
	for _, tc := range cases {
		got := complete(tc.line)
		switch {
		case tc.has != "" && !slices.Contains(got, tc.has):
			t.Errorf("bash completion of %q = %q, without %q", tc.line, got, tc.has)
		case tc.has == "" && !slices.Equal(got, tc.want):
			t.Errorf("bash completion of %q = %q, want %q", tc.line, got, tc.want)
		}
	}

	t.Run("interactive bash", func(t *testing.T) {
		sh := startShell(t, binDir, bash, "--norc", "--noprofile", "-i")
		sh.send("source " + scriptFile + "\n")
		typeAndTab(t, sh, id, url)
	})

	shells := []struct{ name, check string }{{"zsh", "-n"}, {"fish", "-n"}}
	for _, sh := range shells {
		path, err := exec.LookPath(sh.name)
		if err != nil {
			t.Logf("no %s: its script is not checked", sh.name)
			continue
		}
		script, err := exec.CommandContext(ctx, bin, "completion", sh.name).Output()
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(t.TempDir(), "circuit."+sh.name)
		if err := os.WriteFile(f, script, 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.CommandContext(ctx, path, sh.check, f).CombinedOutput(); err != nil {
			t.Errorf("%s %s on its completion script: %v\n%s", sh.name, sh.check, err, out)
		}
		if sh.name == "zsh" {
			t.Run("interactive zsh", func(t *testing.T) {
				fdir := t.TempDir()
				if err := os.WriteFile(filepath.Join(fdir, "_circuit"), script, 0o600); err != nil {
					t.Fatal(err)
				}
				z := startShell(t, binDir, path, "-f", "-i")
				z.send("fpath=(" + fdir + " $fpath); autoload -U compinit; compinit -u\n")
				typeAndTab(t, z, id, url)
			})
			continue
		}
		// fish can complete a command line without a terminal.
		cmd := exec.CommandContext(ctx, path, "--no-config", "-c", `source $argv[1]; complete -C "$argv[2]"`, f, "circuit ls -d "+url+" /"+id+"/")
		cmd.Env = append(os.Environ(), "PATH="+binDir+":"+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if got := testcluster.Lines(string(out)); err != nil || !slices.Equal(got, []string{"/" + id + "/dir/"}) {
			t.Errorf("fish completion: %q, %v; want /%s/dir/", out, err, id)
		}
	}
}

// startServer starts `circuit start` on a free loopback port, reads its URL,
// and stops it by its PID when the test ends.
func startServer(t *testing.T, bin string) (url, id string) {
	t.Helper()
	cmd := exec.Command(bin, "start", "-a", "127.0.0.1:0", "-timing", "local")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(t.TempDir(), "server.log")
	logf, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close() // the child has its own copy
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	serverLog := func() string { b, _ := os.ReadFile(logFile); return string(b) }
	exited := make(chan error, 1)
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		for sc.Scan() {
		}
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			t.Errorf("server pid %d did not exit after SIGKILL", cmd.Process.Pid)
		}
	})
	select {
	case line, ok := <-lines:
		if !ok {
			t.Fatalf("circuit start printed no URL\n%s", serverLog())
		}
		u, err := ident.ParseURL(line)
		if err != nil {
			t.Fatalf("circuit start printed %q: %v", line, err)
		}
		return line, u.ID.String()
	case <-time.After(60 * time.Second):
		t.Fatalf("circuit start printed no URL within 60s\n%s", serverLog())
	}
	return "", ""
}

// netListen listens on a free loopback port, accepts nothing, and returns
// its address; the kernel completes connections that are never answered.
func netListen(t *testing.T) (string, error) {
	t.Helper()
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("listen: %w", err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().String(), nil
}

// typeAndTab types command lines into an interactive shell, pressing Tab
// where the completion should act and typing ZZ after it, then goes to the
// start of the line and makes it an echo: what is echoed shows what the
// completion inserted, and whether it added a space.
func typeAndTab(t *testing.T, sh *shell, id, url string) {
	t.Helper()
	cases := []struct{ typed, want string }{
		{"circuit complet\tZZ", "circuit completion ZZ"},
		{"circuit ls -d " + url + " /\tZZ", "circuit ls -d " + url + " /" + id + "/ZZ"},
		{"circuit ls -d " + url + " /" + id + "/dir/c\tZZ", "circuit ls -d " + url + " /" + id + "/dir/ch ZZ"},
		{"circuit ls -\t", "circuit ls -"}, // several candidates: nothing inserted
	}
	for i, tc := range cases {
		mark := fmt.Sprintf("R%d:", i)
		sh.send(tc.typed + "\x01echo " + mark + "\n")
		re := regexp.MustCompile(`(?m)^` + mark + `(.*?)\r?$`)
		var got string
		testsupport.Eventually(t, 30*time.Second, func() error {
			screen := sh.out.String()
			m := re.FindStringSubmatch(screen)
			if m == nil {
				return fmt.Errorf("%s has not echoed the line typed as %q; the terminal shows:\n%q", sh.name, tc.typed, screen)
			}
			got = m[1]
			return nil
		})
		if got != tc.want {
			t.Errorf("%s: typed %q, the line became %q, want %q", sh.name, tc.typed, got, tc.want)
		}
	}
}

// shell is an interactive shell on a pseudo-terminal.
type shell struct {
	name string
	pty  *os.File
	out  *testcluster.SyncBuffer
}

func (s *shell) send(keys string) { s.pty.WriteString(keys) }

// startShell starts an interactive shell on a pseudo-terminal with binDir
// first in $PATH, and kills it by its PID when the test ends.
func startShell(t *testing.T, binDir, path string, args ...string) *shell {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), "PATH="+binDir+":"+os.Getenv("PATH"), "TERM=dumb", "PS1=$ ", "HOME="+t.TempDir(),
		"INPUTRC=/dev/null", "EDITOR=", "VISUAL=", "CIRCUIT=", "CIRCUIT_HMAC=", "CIRCUIT_DISCOVER=")
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 50, Cols: 1000})
	if err != nil {
		t.Fatalf("starting %s on a terminal: %v", path, err)
	}
	s := &shell{name: filepath.Base(path), pty: ptmx, out: &testcluster.SyncBuffer{}}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		io.Copy(s.out, ptmx) // until the shell is gone and the terminal closed
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		ptmx.Close()
		<-copied
	})
	return s
}
