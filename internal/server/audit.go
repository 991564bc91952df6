package server

import (
	"context"
	"encoding/json"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/circuit-project/circuit/internal/api"
	"github.com/circuit-project/circuit/internal/fault"
	"github.com/circuit-project/circuit/internal/op"
	"github.com/circuit-project/circuit/internal/oplog"
)

// fields are what the records of an operation by c on path say of it
// before its own facts.
func (c caller) fields(path string) oplog.Fields {
	return oplog.Fields{Path: path, Who: c.String(), From: c.from, Via: c.via}
}

// opKey carries an RPC's operation in its context, for the handlers that
// record more under its number (a process's exit).
type opKey struct{}

func withOp(ctx context.Context, o *oplog.Op) context.Context {
	return context.WithValue(ctx, opKey{}, o)
}

// opOf is the operation of the RPC whose context ctx is, or nil.
func opOf(ctx context.Context) *oplog.Op {
	o, _ := ctx.Value(opKey{}).(*oplog.Op)
	return o
}

// requestWhat reads from a request the facts that the table of operations
// names for it (op.Op.Audit); fields that are unset are left out.
func requestWhat(name string, req any) map[string]any {
	o, ok := op.Lookup(name)
	m, isMsg := req.(proto.Message)
	if !ok || len(o.Audit) == 0 || !isMsg {
		return nil
	}
	var out map[string]any
	for _, f := range o.Audit {
		if v, ok := protoField(m.ProtoReflect(), f); ok {
			if out == nil {
				out = map[string]any{}
			}
			out[f] = v
		}
	}
	return out
}

// protoField reads the field a dotted proto name ("cmd.args") names in m.
func protoField(m protoreflect.Message, dotted string) (any, bool) {
	parts := strings.Split(dotted, ".")
	for i, part := range parts {
		fd := m.Descriptor().Fields().ByName(protoreflect.Name(part))
		if fd == nil || !m.Has(fd) {
			return nil, false
		}
		v := m.Get(fd)
		switch {
		case i < len(parts)-1:
			if fd.Kind() != protoreflect.MessageKind || fd.IsList() || fd.IsMap() {
				return nil, false
			}
			m = v.Message()
		case fd.IsList():
			l := v.List()
			out := make([]any, l.Len())
			for j := range out {
				out[j] = l.Get(j).Interface()
			}
			return out, true
		case fd.Kind() == protoreflect.MessageKind || fd.IsMap():
			return nil, false // facts are scalars and lists of them
		default:
			return v.Interface(), true
		}
	}
	return nil, false
}

// exitWhat is what a process's exit record says.
func exitWhat(code int, signal, exit string) map[string]any {
	w := map[string]any{"exit_code": code}
	if signal != "" {
		w["signal"] = signal
	}
	if exit != "" {
		w["exit"] = exit
	}
	return w
}

func (v *serverService) Log(req *api.LogRequest, ss api.Server_LogServer) error {
	send := func(r oplog.Record) error {
		b, err := json.Marshal(r)
		if err != nil {
			return fault.Errorf(fault.Remote, "encoding record %d: %v", r.Seq, err)
		}
		return ss.Send(&api.LogRecord{Json: b})
	}
	if !req.GetFollow() {
		for _, r := range v.s.ops.Records(req.GetAfter(), int(req.GetN())) {
			if err := send(r); err != nil {
				return err
			}
		}
		return nil
	}
	// Follow first, so that nothing made between the two is missed; what
	// both give is sent once.
	f, _ := v.s.ops.Follow()
	defer f.Close()
	type key struct {
		seq   uint64
		event string
	}
	sent := map[key]bool{}
	for _, r := range v.s.ops.Records(req.GetAfter(), int(req.GetN())) {
		sent[key{r.Seq, r.Event}] = true
		if err := send(r); err != nil {
			return err
		}
	}
	for {
		select {
		case <-ss.Context().Done():
			return nil
		case <-v.s.ctx.Done():
			return fault.New(fault.Closed, "the server is stopping")
		case r, ok := <-f.C():
			switch {
			case !ok && f.Lagged():
				return fault.Errorf(fault.Precondition, "the follower fell %d records behind and was dropped: follow again", oplog.FollowBuffer)
			case !ok:
				return nil
			case r.Seq <= req.GetAfter() || sent[key{r.Seq, r.Event}]:
				continue
			}
			if len(sent) > 0 {
				delete(sent, key{r.Seq, r.Event})
			}
			if err := send(r); err != nil {
				return err
			}
		}
	}
}
