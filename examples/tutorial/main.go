// Command tutorial is the circuit app of seed 002's tutorial ("Write the
// circuit app"), adapted to run on one machine: it connects to a circuit
// cluster, picks two hosts, starts a database on host A and a web front end
// pointed at that database on host B, each through the circuit on its host,
// prints their addresses and exits. The services keep running under the
// circuit servers until they are stopped.
//
// The seed deployed MySQL and a Node.js app on two EC2 instances. Here the
// cluster's servers all run on 127.0.0.1 and the services are made of what
// any Debian machine has:
//
//   - the database is a directory of name→value files (the seed's NameValue
//     table), served by `python3 -m http.server`;
//   - the front end is a small python3 HTTP server that answers GET /NAME by
//     fetching NAME from the database and returning its value;
//   - the host's IP comes from running -ipcmd on the host (by default it
//     resolves localhost) instead of from the EC2 metadata service.
//
// Run it against a local cluster: in one terminal, from the repository root,
//
//	./scripts/cluster.sh
//
// and in another
//
//	go run ./examples/tutorial -addr $(cat .cluster/dial)
//	curl http://127.0.0.1:PORT/greeting    # PORT as printed for the front end
//	go run ./examples/tutorial -addr $(cat .cluster/dial) -stop
//
// The services live at the anchors /X.../tutorial/database and
// /X.../tutorial/frontend; `circuit ls -l /...` shows them. -stop scrubs
// them and removes their directories; `circuit scrub PATH` stops one and
// leaves its directory (with its log) in /tmp.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/circuit-project/circuit/client"
)

var (
	flagAddr    = flag.String("addr", "", "circuit server address (looks like circuit://...)")
	flagDBPort  = flag.Int("dbport", 0, "port of the database (0: ask its host for a free one)")
	flagWebPort = flag.Int("webport", 0, "port of the web front end (0: ask its host for a free one)")
	flagPython  = flag.String("python", "python3", "python3 interpreter on the hosts (looked up in /bin/sh's default PATH)")
	flagIPCmd   = flag.String("ipcmd", "getent ahostsv4 localhost | head -n 1 | cut -d ' ' -f 1",
		"shell command printing a host's IP address; on a real cluster e.g. hostname -I | cut -d ' ' -f 1")
	flagWait = flag.Duration("wait", 30*time.Second, "how long to wait for each service to answer")
	flagStop = flag.Bool("stop", false, "stop the tutorial's services on every host, instead of starting them")
)

// Anchors of the two services, below their hosts' anchors.
var (
	databaseAnchor = []string{"tutorial", "database"}
	frontendAnchor = []string{"tutorial", "frontend"}
)

// dirPrefix starts the name of every directory the tutorial makes on a host;
// -stop removes only directories named so.
const dirPrefix = "/tmp/circuit-tutorial-"

func fatalf(format string, arg ...interface{}) {
	fmt.Fprintln(os.Stderr, fmt.Sprintf(format, arg...))
	os.Exit(1)
}

func main() {
	flag.Parse()
	if *flagAddr == "" || flag.NArg() != 0 {
		fatalf("usage: tutorial -addr circuit://... [-stop]")
	}
	c := connect(*flagAddr)
	if *flagStop {
		stopServices(c)
		return
	}
	host := pickHosts(c, 2)

	dbIP, dbPort := startDatabase(host[0])
	fmt.Println("Started database on private address:", dbIP, dbPort)

	webIP, webPort := startFrontend(host[1], dbIP, dbPort)
	fmt.Println("Started web front end on public address:", webIP, webPort)
}

func connect(addr string) *client.Client {
	defer func() {
		if r := recover(); r != nil {
			fatalf("could not connect: %v", r)
		}
	}()
	return client.Dial(addr, nil)
}

func pickHosts(c *client.Client, n int) (hosts []client.Anchor) {
	defer func() {
		if recover() != nil {
			fatalf("client connection lost")
		}
	}()
	view := c.View()
	if len(view) == 0 {
		fatalf("no hosts in cluster")
	}
	for len(hosts) < n {
		for _, a := range view {
			if len(hosts) >= n {
				break
			}
			hosts = append(hosts, a)
		}
	}
	return
}

func runShellStdin(host client.Anchor, cmd, stdin string) (string, error) {
	defer func() {
		if recover() != nil {
			fatalf("connection to host lost")
		}
	}()
	job := host.Walk([]string{"shelljob", strconv.Itoa(rand.Int())})
	proc, _ := job.MakeProc(client.Cmd{
		Path:  "/bin/sh",
		Dir:   "/tmp",
		Args:  []string{"-c", cmd},
		Scrub: true,
	})
	go func() {
		io.Copy(proc.Stdin(), bytes.NewBufferString(stdin))
		proc.Stdin().Close() // Must close the standard input of the shell process.
	}()
	proc.Stderr().Close() // Close to indicate discarding standard error
	var buf bytes.Buffer
	io.Copy(&buf, proc.Stdout())
	stat, _ := proc.Wait()
	return buf.String(), stat.Exit
}

func runShell(host client.Anchor, cmd string) (string, error) {
	return runShellStdin(host, cmd, "")
}

// getHostIP stands in for the seed's getEc2PublicIP and getEc2PrivateIP:
// it asks the host itself for its address by running -ipcmd there. On one
// machine the private and the public address are both 127.0.0.1.
func getHostIP(host client.Anchor) string {
	out, err := runShell(host, *flagIPCmd)
	if err != nil {
		fatalf("get ip of %s error: %v", host.Path(), err)
	}
	out = strings.TrimSpace(out)
	if _, err := net.ResolveIPAddr("ip", out); err != nil {
		fatalf("ip %q unrecognizable: %v", out, err)
	}
	return out
}

// getFreePort returns port as a string if it is set, and otherwise asks the
// host for a port on ip that nothing listens on.
func getFreePort(host client.Anchor, ip string, port int) string {
	if port != 0 {
		return strconv.Itoa(port)
	}
	script := fmt.Sprintf(
		"import socket; s = socket.socket(); s.bind((%q, 0)); print(s.getsockname()[1]); s.close()", ip)
	out, err := runShell(host, shellQuote(*flagPython)+" -c "+shellQuote(script))
	if err != nil {
		fatalf("finding a free port on %s error: %v (is %s installed there?)", host.Path(), err, *flagPython)
	}
	out = strings.TrimSpace(out)
	if n, err := strconv.Atoi(out); err != nil || n <= 0 || n > 65535 {
		fatalf("port %q unrecognizable", out)
	}
	return out
}

// nameValue is the content of the database, one "name value" row per line:
// the counterpart of the seed's NameValue table.
const nameValue = `
greeting Hello from the circuit database
seed 002: write the circuit app
answer 42
`

// startDatabase starts the database on host and returns the address it
// serves on.
func startDatabase(host client.Anchor) (ip, port string) {

	// Retrieve the IP address of this host within the cluster's network.
	ip = getHostIP(host)

	// Pick the port of the database.
	port = getFreePort(host, ip, *flagDBPort)

	// Make a fresh, empty database directory
	out, err := runShell(host, "mktemp -d "+dirPrefix+"db.XXXXXXXX")
	if err != nil {
		fatalf("database directory error: %v", err)
	}
	dir := strings.TrimSpace(out)
	if !strings.HasPrefix(dir, dirPrefix) {
		fatalf("database directory %q unrecognizable", dir)
	}

	// Create the NameValue "table": one file per row, named by the row's
	// name and holding its value.
	const load = `mkdir NameValue && cd NameValue &&
while read -r name value; do
	[ -z "$name" ] || printf '%s\n' "$value" >"$name"
done`
	if _, err := runShellStdin(host, "cd "+shellQuote(dir)+" && "+load, nameValue); err != nil {
		fatalf("problem creating table: %v", err)
	}

	// Start the database server
	shell := fmt.Sprintf("exec %s -m http.server %s --bind %s --directory %s >database.log 2>&1",
		shellQuote(*flagPython), port, ip, shellQuote(dir))
	proc := startDaemon(host, databaseAnchor, dir, shell)
	waitServing(host, proc, "http://"+net.JoinHostPort(ip, port)+"/NameValue/", 200, dir+"/database.log")
	return
}

// frontendPy is the web front end: it answers GET /NAME with the value of
// the row NAME, which it fetches from the database. Its command line
// mirrors the seed's Node.js app.
const frontendPy = `import argparse
import http.server
import urllib.error
import urllib.parse
import urllib.request

p = argparse.ArgumentParser()
p.add_argument("--db_host", required=True)
p.add_argument("--db_port", type=int, required=True)
p.add_argument("--api_host", required=True)
p.add_argument("--api_port", type=int, required=True)
args = p.parse_args()
table = "http://%s:%d/NameValue/" % (args.db_host, args.db_port)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        name = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path[1:])
        if not name or "/" in name or name.startswith("."):
            self.reply(400, "usage: GET /NAME\n")
            return
        try:
            with urllib.request.urlopen(table + urllib.parse.quote(name), timeout=5) as r:
                value = r.read().decode()
        except urllib.error.HTTPError as e:
            self.reply(404 if e.code == 404 else 502, "database: %s\n" % e)
            return
        except OSError as e:
            self.reply(502, "database unreachable: %s\n" % e)
            return
        self.reply(200, value)

    def reply(self, code, body):
        b = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)


http.server.ThreadingHTTPServer((args.api_host, args.api_port), Handler).serve_forever()
`

// startFrontend starts the web front end on host, pointed at the database
// at dbIP:dbPort, and returns the address it serves on.
func startFrontend(host client.Anchor, dbIP, dbPort string) (ip, port string) {
	ip = getHostIP(host)
	port = getFreePort(host, ip, *flagWebPort)

	// Install the application
	out, err := runShell(host, "mktemp -d "+dirPrefix+"web.XXXXXXXX")
	if err != nil {
		fatalf("front end directory error: %v", err)
	}
	dir := strings.TrimSpace(out)
	if !strings.HasPrefix(dir, dirPrefix) {
		fatalf("front end directory %q unrecognizable", dir)
	}
	if _, err := runShellStdin(host, "cat >"+shellQuote(dir+"/frontend.py"), frontendPy); err != nil {
		fatalf("problem installing the front end: %v", err)
	}

	// Start the application
	shell := fmt.Sprintf(
		"exec %s frontend.py "+
			"--db_host %s --db_port %s --api_host %s --api_port %s "+
			">frontend.log 2>&1",
		shellQuote(*flagPython),
		dbIP, dbPort,
		ip, port,
	)
	proc := startDaemon(host, frontendAnchor, dir, shell)
	// It is up once it serves a row of the database.
	row := strings.Fields(nameValue)[0]
	waitServing(host, proc, "http://"+net.JoinHostPort(ip, port)+"/"+row, 200, dir+"/frontend.log")
	return
}

// startDaemon runs the long-running shell command on host, at the anchor
// walk below the host, as the seed's startNodejs does: the process is
// scrubbed when it exits and none of its standard streams is used.
func startDaemon(host client.Anchor, walk []string, dir, shell string) client.Proc {
	defer func() {
		if recover() != nil {
			fatalf("connection to host lost")
		}
	}()
	job := host.Walk(walk)
	proc, err := job.MakeProc(client.Cmd{
		Path:  "/bin/sh",
		Dir:   dir,
		Args:  []string{"-c", shell},
		Scrub: true,
	})
	if err != nil {
		fatalf("%s already running (stop it with -stop): %v", job.Path(), err)
	}
	proc.Stdin().Close()
	proc.Stdout().Close()
	proc.Stderr().Close()
	return proc
}

// waitServing waits until an HTTP GET of url, made on host, answers with
// status want. It exits with the service's log if proc exits first or -wait
// passes.
func waitServing(host client.Anchor, proc client.Proc, url string, want int, logFile string) {
	defer func() {
		if recover() != nil {
			fatalf("connection to host lost")
		}
	}()
	const probe = `import sys, urllib.error, urllib.request
try:
    code = urllib.request.urlopen(sys.argv[1], timeout=2).status
except urllib.error.HTTPError as e:
    code = e.code
sys.exit(0 if code == int(sys.argv[2]) else 1)
`
	cmd := shellQuote(*flagPython) + " -c " + shellQuote(probe) + " " + shellQuote(url) + " " + strconv.Itoa(want)
	deadline := time.Now().Add(*flagWait)
	for {
		if _, err := runShell(host, cmd); err == nil {
			return
		}
		if proc.IsDone() {
			log, _ := runShell(host, "cat "+shellQuote(logFile))
			fatalf("%s exited; its log, %s on %s:\n%s", proc.GetCmd().Args[1], logFile, host.Path(), log)
		}
		if time.Now().After(deadline) {
			fatalf("GET %s did not answer %d within %v; see %s on %s", url, want, *flagWait, logFile, host.Path())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stopServices scrubs the tutorial's services on every host of the cluster
// and removes their directories.
func stopServices(c *client.Client) {
	defer func() {
		if recover() != nil {
			fatalf("client connection lost")
		}
	}()
	view := c.View()
	ids := make([]string, 0, len(view))
	for id := range view {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	stopped := 0
	for _, id := range ids {
		host := view[id]
		for _, walk := range [][]string{frontendAnchor, databaseAnchor} {
			a := host.Walk(walk)
			proc, ok := a.Get().(client.Proc)
			if !ok {
				continue
			}
			dir := proc.GetCmd().Dir
			proc.Scrub()
			fmt.Println("Stopped", a.Path())
			stopped++
			if strings.HasPrefix(dir, dirPrefix) && !strings.Contains(dir, "..") {
				if _, err := runShell(host, "rm -rf -- "+shellQuote(dir)); err != nil {
					fatalf("removing %s on %s: %v", dir, host.Path(), err)
				}
			}
		}
	}
	if stopped == 0 {
		fmt.Println("Nothing to stop")
	}
}

// shellQuote quotes s as one word for /bin/sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
