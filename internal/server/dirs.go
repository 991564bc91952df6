package server

import (
	"context"
	"errors"
	"io"
	"time"

	"google.golang.org/grpc"

	"github.com/circuit-project/circuit/internal/anchorfs"
	"github.com/circuit-project/circuit/internal/api"
	"github.com/circuit-project/circuit/internal/binstore"
	"github.com/circuit-project/circuit/internal/fault"
)

// dirsService serves this server's part of the anchor file system.
type dirsService struct {
	api.UnimplementedDirsServer
	s *Server
}

func (s *Server) dirsQuery(req *api.DirsRequest) (anchorfs.Query, error) {
	q, err := anchorfs.Parse(req.GetPath())
	if err != nil {
		return q, fault.New(fault.BadRequest, err.Error())
	}
	q.Recursive = q.Recursive || req.GetRecursive()
	return q, nil
}

func toDirsReply(files []anchorfs.File) *api.DirsReply {
	out := &api.DirsReply{Files: make([]*api.DirFile, 0, len(files))}
	for _, f := range files {
		out.Files = append(out.Files, &api.DirFile{Path: f.Path(), Anchor: f.Anchor})
	}
	return out
}

func (v *dirsService) List(_ context.Context, req *api.DirsRequest) (*api.DirsReply, error) {
	q, err := v.s.dirsQuery(req)
	if err != nil {
		return nil, err
	}
	return toDirsReply(v.s.dirs.Files(q, true)), nil
}

// killWait bounds how long Kill waits for the killed processes to exit,
// so that their files are gone when it answers.
const killWait = 5 * time.Second

// maxKillGrace bounds the grace period of a kill.
const maxKillGrace = time.Minute

func (v *dirsService) Kill(ctx context.Context, req *api.DirsRequest) (*api.DirsReply, error) {
	q, err := v.s.dirsQuery(req)
	if err != nil {
		return nil, err
	}
	grace := time.Duration(req.GetGraceNanos())
	if grace < 0 || grace > maxKillGrace {
		return nil, fault.Errorf(fault.BadRequest, "a grace period of %v: want 0 to %v", grace, maxKillGrace)
	}
	files := v.s.dirs.Files(q, false)
	var killed []*procElement
	seen := map[string]bool{}
	for _, f := range files {
		if seen[f.Worker] {
			continue
		}
		seen[f.Worker] = true
		if pe, err := v.s.procAt(f.Anchor); err == nil { // else exited and removed meanwhile
			killed = append(killed, pe)
		}
	}
	if err := v.s.stopWorkers(ctx, killed, grace); err != nil {
		return nil, err
	}
	return toDirsReply(files), nil
}

// binaryService serves the store of uploaded binaries.
type binaryService struct {
	api.UnimplementedBinaryServer
	s *Server
}

func binaryErr(err error) error {
	switch {
	case errors.Is(err, binstore.ErrBadDigest):
		return fault.New(fault.BadRequest, err.Error())
	case errors.Is(err, binstore.ErrCutShort):
		return fault.New(fault.Remote, err.Error())
	case errors.Is(err, binstore.ErrMismatch):
		return fault.New(fault.BadRequest, err.Error())
	}
	return fault.New(fault.Remote, err.Error())
}

func (v *binaryService) Stat(_ context.Context, req *api.BinaryRequest) (*api.BinaryStat, error) {
	path, size, ok, err := v.s.bins.Stat(req.GetSha256())
	if err != nil {
		return nil, binaryErr(err)
	}
	if !ok {
		return &api.BinaryStat{Sha256: req.GetSha256()}, nil
	}
	return &api.BinaryStat{Sha256: req.GetSha256(), Present: true, Path: path, Size: size}, nil
}

func (v *binaryService) Upload(stream grpc.ClientStreamingServer[api.BinaryChunk, api.BinaryStat]) error {
	first, err := stream.Recv()
	if err != nil {
		return fault.Errorf(fault.Remote, "upload: no first chunk: %v", err)
	}
	r := &chunkReader{stream: stream, buf: first.GetData()}
	path, err := v.s.bins.Put(first.GetSha256(), first.GetSize(), r)
	if err != nil {
		return binaryErr(err)
	}
	v.s.log.Info("binary stored", "sha256", first.GetSha256(), "bytes", first.GetSize())
	return stream.SendAndClose(&api.BinaryStat{Sha256: first.GetSha256(), Present: true, Path: path, Size: first.GetSize()})
}

// chunkReader reads the data of an upload's chunks as one stream.
type chunkReader struct {
	stream grpc.ClientStreamingServer[api.BinaryChunk, api.BinaryStat]
	buf    []byte
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		c, err := r.stream.Recv()
		if err != nil {
			return 0, err // io.EOF once the client closes its side
		}
		r.buf = c.GetData()
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

var _ io.Reader = (*chunkReader)(nil)
