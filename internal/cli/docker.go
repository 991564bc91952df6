package cli

import (
	"fmt"

	"github.com/circuit-project/circuit/client"
)

func mkdkrCmd() *command {
	return &command{
		name:  "mkdkr",
		args:  "PATH",
		short: "create and start a Docker container: reads its description as JSON on stdin",
		long: `The container is a JSON object with the fields Image (required), Memory,
CpuShares, Lxc, Volume, Dir, Entry, Env, Path, Args and Scrub; trailing
commas are fine. The server must run with -docker, and the image must be on
its host. Lxc options are obsolete in Docker: they are ignored, with a
warning. stdin, stdout, stderr, wait, signal and scrub work as for
processes; peek prints the container's inspect document.

Example:
  circuit mkdkr /X88550014d4c82e4d/docky << EOF
  {
      "Image": "busybox",
      "Memory": 1000000000,
      "Path": "/bin/ls",
      "Args": ["/"],
  }
  EOF`,
		dial: true,
		run:  runMkdkr,
	}
}

func runMkdkr(env *Env, inv *invocation) error {
	path, err := onePath(inv, "mkdkr")
	if err != nil {
		return err
	}
	var cfg client.DockerConfig
	if err := readDescription(env, "mkdkr "+path+": the container on stdin", &cfg); err != nil {
		return err
	}
	if cfg.Image == "" {
		return usagef("mkdkr %s: the container has no \"Image\"", path)
	}
	c, err := connect(env, inv)
	if err != nil {
		return err
	}
	_, warnings, err := c.MakeDockerAt(env.Ctx, path, cfg)
	for _, w := range warnings {
		fmt.Fprintf(env.Stderr, "circuit mkdkr %s: warning: %s\n", path, w)
	}
	if err != nil {
		return fmt.Errorf("mkdkr %s: %w", path, err)
	}
	return nil
}
