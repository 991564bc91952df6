// This is the program of seed 002's tutorial, assembled from the code the
// seed prints, with only the import path of the client package changed (and
// the standard imports the seed leaves out). It is compiled by
// TestSeed002Compiles and never run: it expects EC2 hosts with MySQL and
// Node.js. examples/tutorial is the same program adapted to run here.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/circuit-project/circuit/client"
)

var flagAddr = flag.String("addr", "", "circuit server address (looks like circuit://...)")

func fatalf(format string, arg ...interface{}) {
	println(fmt.Sprintf(format, arg...))
	os.Exit(1)
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

func getEc2PublicIP(host client.Anchor) string {
	out, err := runShell(host, "curl http://169.254.169.254/latest/meta-data/public-ipv4")
	if err != nil {
		fatalf("get ec2 public ip error: %v", err)
	}
	out = strings.TrimSpace(out)
	if _, err := net.ResolveIPAddr("ip", out); err != nil {
		fatalf("ip %q unrecognizable: %v", out, err)
	}
	return out
}

func getEc2PrivateIP(host client.Anchor) string {
	out, err := runShell(host, "curl http://169.254.169.254/latest/meta-data/local-ipv4")
	if err != nil {
		fatalf("get ec2 private ip error: %v", err)
	}
	out = strings.TrimSpace(out)
	if _, err := net.ResolveIPAddr("ip", out); err != nil {
		fatalf("ip %q unrecognizable: %v", out, err)
	}
	return out
}

func startMysql(host client.Anchor) (ip, port string) {

	// Retrieve the IP address of this host within the cluster's private network.
	ip = getEc2PrivateIP(host)

	// We use the default MySQL server port
	port = strconv.Itoa(3306)

	// Rewrite MySQL config to bind to the private host address
	cfg := fmt.Sprintf(`sudo sed -i 's/^bind-address\s*=.*$/bind-address = %s/' /etc/mysql/my.cnf`, ip)
	if _, err := runShell(host, cfg); err != nil {
		fatalf("mysql configuration error: %v", err)
	}

	// Start MySQL server
	if _, err := runShell(host, "sudo /etc/init.d/mysql start"); err != nil {
		fatalf("mysql start error: %v", err)
	}

	// Remove old database and user
	runShellStdin(host, "sudo /usr/bin/mysql", "DROP USER tutorial;")
	runShellStdin(host, "sudo /usr/bin/mysql", "DROP DATABASE tutorial;")

	// Create tutorial user and database within MySQL
	const m1 = `
CREATE USER tutorial;
CREATE DATABASE tutorial;
GRANT ALL ON tutorial.*  TO tutorial;
`
	if _, err := runShellStdin(host, "sudo /usr/bin/mysql", m1); err != nil {
		fatalf("problem creating database and user: %v", err)
	}

	// Create key/value table within tutorial database
	const m2 = `
USE tutorial;
CREATE TABLE NameValue (name VARCHAR(100), value TEXT, PRIMARY KEY (name));
`
	if _, err := runShellStdin(host, "/usr/bin/mysql -u tutorial", m2); err != nil {
		fatalf("problem creating table: %v", err)
	}

	return
}

func startNodejs(host client.Anchor, mysqlIP, mysqlPort string) (ip, port string) {
	defer func() {
		if recover() != nil {
			fatalf("connection to host lost")
		}
	}()

	// Start node.js application
	ip = getEc2PublicIP(host)
	port = "8080"
	job := host.Walk([]string{"nodejs"})
	shell := fmt.Sprintf(
		"sudo /usr/bin/nodejs index.js "+
			"--mysql_host %s --mysql_port %s --api_host %s --api_port %s "+
			"&> /tmp/tutorial-nodejs.log",
		mysqlIP, mysqlPort,
		"0.0.0.0", port,
	)
	proc, err := job.MakeProc(client.Cmd{
		Path:  "/bin/sh",
		Dir:   "/home/ubuntu/nodejs-app",
		Args:  []string{"-c", shell},
		Scrub: true,
	})
	if err != nil {
		fatalf("nodejs app already running")
	}
	proc.Stdin().Close()
	proc.Stdout().Close()
	proc.Stderr().Close()

	return
}

func main() {
	flag.Parse()
	c := connect(*flagAddr)
	host := pickHosts(c, 2)

	mysqlIP, mysqlPort := startMysql(host[0])
	println("Started MySQL on private address:", mysqlIP, mysqlPort)

	nodejsIP, nodejsPort := startNodejs(host[1], mysqlIP, mysqlPort)
	println("Started Node.js service on public address:", nodejsIP, nodejsPort)
}
