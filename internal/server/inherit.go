package server

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// closeOnExecInherited marks close-on-exec every descriptor above 2 that
// this process holds, so that the processes it starts get only their
// standard streams (and the descriptors os/exec passes them on purpose,
// such as a worker's result pipe). Go opens all its own descriptors
// close-on-exec; what this catches is what the server inherited from its
// parent without the flag (a careless supervisor, a shell's redirection),
// which would otherwise leak into every child.
func closeOnExecInherited() error {
	dir, err := os.Open("/proc/self/fd")
	if err != nil {
		return err
	}
	defer dir.Close()
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return err
	}
	self := int(dir.Fd())
	for _, name := range names {
		fd, err := strconv.Atoi(name)
		if err != nil || fd <= 2 || fd == self {
			continue
		}
		unix.CloseOnExec(fd) // a descriptor closed meanwhile: nothing to do
	}
	return nil
}
