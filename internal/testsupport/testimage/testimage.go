// Package testimage makes the small Docker images that tests run, with no
// registry: a root file system holding a static busybox (Debian's
// busybox-static), links to its applets, and any extra files a test needs,
// such as a circuit binary, imported from a tarball written here. An image is
// tagged by a digest of its content, so it is made once and then reused until
// its content changes.
package testimage

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"
	dockerclient "github.com/docker/docker/client"
)

// BusyboxPath is where the static busybox is read from.
const BusyboxPath = "/bin/busybox"

// Applets are linked to /bin/busybox in every image.
var Applets = []string{
	"sh", "cat", "echo", "sleep", "ls", "tr", "true", "false", "yes", "head",
	"touch", "env", "pwd", "kill", "ps", "wc", "sort", "uniq", "grep", "dd",
	"od", "hostname", "ip", "nc",
}

// File is an extra regular file in an image.
type File struct {
	Path string // inside the image, without a leading slash: "bin/circuit"
	Data []byte
	Mode int64
}

// Engine connects to this host's Docker engine. Without one, the test is
// skipped, or fails when CIRCUIT_REQUIRE_DOCKER=1.
func Engine(t testing.TB) *dockerclient.Client {
	t.Helper()
	cli, err := dockerclient.NewClientWithOpts(dockerclient.FromEnv, dockerclient.WithAPIVersionNegotiation())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = cli.Ping(ctx)
		cancel()
		if err != nil {
			cli.Close()
		}
	}
	if err != nil {
		if os.Getenv("CIRCUIT_REQUIRE_DOCKER") == "1" {
			t.Fatalf("CIRCUIT_REQUIRE_DOCKER=1, but no Docker engine: %v", err)
		}
		t.Skipf("no Docker engine (set CIRCUIT_REQUIRE_DOCKER=1 to fail instead): %v", err)
	}
	return cli
}

// Ensure makes the image name:DIGEST unless it exists, and returns that
// reference.
func Ensure(ctx context.Context, cli *dockerclient.Client, name string, extra ...File) (string, error) {
	bb, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return "", fmt.Errorf("test image %s: %w (install package busybox-static)", name, err)
	}
	files := append([]File{{Path: "bin/busybox", Data: bb, Mode: 0o755}}, extra...)
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%s %o %d\n", f.Path, f.Mode, len(f.Data))
		h.Write(f.Data)
	}
	for _, a := range Applets {
		fmt.Fprintf(h, "link %s\n", a)
	}
	ref := name + ":" + hex.EncodeToString(h.Sum(nil))[:16]
	if _, err := cli.ImageInspect(ctx, ref); err == nil {
		return ref, nil
	} else if !cerrdefs.IsNotFound(err) {
		return "", fmt.Errorf("test image %s: %w", ref, err)
	}
	tarball, err := rootfs(files)
	if err != nil {
		return "", fmt.Errorf("test image %s: %w", ref, err)
	}
	body, err := cli.ImageImport(ctx, image.ImportSource{Source: bytes.NewReader(tarball), SourceName: "-"}, ref, image.ImportOptions{})
	if err != nil {
		return "", fmt.Errorf("importing test image %s: %w", ref, err)
	}
	defer body.Close()
	dec := json.NewDecoder(body)
	for {
		var msg struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			break
		} else if err != nil {
			return "", fmt.Errorf("importing test image %s: reading progress: %w", ref, err)
		}
		if msg.Error != "" {
			return "", fmt.Errorf("importing test image %s: %s", ref, msg.Error)
		}
	}
	if _, err := cli.ImageInspect(ctx, ref); err != nil {
		return "", fmt.Errorf("test image %s after import: %w", ref, err)
	}
	return ref, nil
}

// rootfs writes the image's file system as a tarball.
func rootfs(files []File) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	var errs []error
	put := func(h *tar.Header, data []byte) {
		h.ModTime = now
		errs = append(errs, tw.WriteHeader(h))
		if data != nil {
			_, err := tw.Write(data)
			errs = append(errs, err)
		}
	}
	for _, d := range []string{"bin", "dev", "etc", "proc", "sys", "tmp", "var"} {
		mode := int64(0o755)
		if d == "tmp" {
			mode = 0o1777
		}
		put(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: mode}, nil)
	}
	for _, f := range files {
		put(&tar.Header{Typeflag: tar.TypeReg, Name: f.Path, Mode: f.Mode, Size: int64(len(f.Data))}, f.Data)
	}
	for _, a := range Applets {
		put(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777}, nil)
	}
	errs = append(errs, tw.Close())
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
