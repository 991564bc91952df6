package fault

import (
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/circuit-project/circuit/internal/wire"
)

// TestTableIsOneToOne checks that no two classes share a gRPC code, a wire
// code or a sentinel, so that every class survives the trip.
func TestTableIsOneToOne(t *testing.T) {
	grpcSeen := map[codes.Code]Class{}
	wireSeen := map[wire.Code]Class{}
	errSeen := map[error]Class{}
	for _, c := range Classes() {
		if c.String() == "" || c.Doc() == "" || c.ClientError() == "" || c.Sentinel() == nil || c.Exit() == ExitOK || c.HTTP() == 0 {
			t.Errorf("class %d has an incomplete row: %+v", c, c.row())
		}
		if d, ok := grpcSeen[c.Code()]; ok {
			t.Errorf("%v and %v share gRPC code %v", c, d, c.Code())
		}
		grpcSeen[c.Code()] = c
		if w := c.Wire(); w != 0 {
			if d, ok := wireSeen[w]; ok {
				t.Errorf("%v and %v share wire code %d", c, d, w)
			}
			if w < wire.CodeBadRequest {
				t.Errorf("%v's wire code %d is one of the connection's own", c, w)
			}
			wireSeen[w] = c
		} else if c != Lost {
			t.Errorf("%v has no wire code", c)
		}
		if d, ok := errSeen[c.Sentinel()]; ok {
			t.Errorf("%v and %v share a sentinel", c, d)
		}
		errSeen[c.Sentinel()] = c
	}
	if got := Class(200); got.Code() != Remote.Code() || got.String() != Remote.String() {
		t.Errorf("a class out of the table reads as %v, want the remote failure", got)
	}
}

// TestRoundTrips sends each class as the server does, in an RPC's status
// and in a stream's refusal, and decodes it as the client does.
func TestRoundTrips(t *testing.T) {
	for _, c := range Classes() {
		sent := Errorf(c, "failed as %v", c)
		wrapped := fmt.Errorf("context: %w", sent)

		if got := Of(wrapped); got != c {
			t.Errorf("Of(%v) = %v", c, got)
		}
		if !errors.Is(wrapped, c.Sentinel()) {
			t.Errorf("%v does not match its sentinel", c)
		}

		// An RPC: gRPC takes the status from GRPCStatus.
		st, ok := status.FromError(sent)
		if !ok || st.Code() != c.Code() || st.Message() != sent.Error() {
			t.Fatalf("%v travels as %v %q", c, st.Code(), st.Message())
		}
		got := FromStatus(st.Err())
		if c == Lost {
			if got != nil {
				t.Errorf("a lost transport decodes as %v, want nil (the client finds whose)", got)
			}
		} else if Of(got) != c || got.Error() != sent.Error() {
			t.Errorf("%v comes back from an RPC as %v %q", c, Of(got), got)
		}

		// A stream's refusal, through the bytes of wire.WriteStatus.
		r := Refusal(wrapped)
		if c != Lost && r.Code != c.Wire() {
			t.Errorf("%v refuses with wire code %d, want %d", c, r.Code, c.Wire())
		}
		back := FromWire(r)
		want := c
		if c == Lost {
			want = Remote // a server has no lost transport to refuse with
		}
		if Of(back) != want || back.Error() != wrapped.Error() {
			t.Errorf("%v comes back from a refusal as %v %q", c, Of(back), back)
		}
	}
}

func TestDecoding(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want error // nil: a lost transport, or no status at all
	}{
		{"unknown code", status.Error(codes.DataLoss, "x"), ErrRemote},
		{"internal", status.Error(codes.Internal, "x"), ErrRemote},
		{"unimplemented", status.Error(codes.Unimplemented, "x"), ErrRemote},
		{"deadline at the server", status.Error(codes.DeadlineExceeded, "x"), ErrRemote},
		{"unavailable", status.Error(codes.Unavailable, "x"), nil},
		{"canceled", status.Error(codes.Canceled, "x"), nil},
		{"not a status", errors.New("x"), nil},
		{"ok", status.Error(codes.OK, ""), nil},
	}
	for _, tc := range cases {
		got := FromStatus(tc.err)
		if (got == nil) != (tc.want == nil) || (got != nil && !errors.Is(got, tc.want)) {
			t.Errorf("%s: FromStatus = %v, want %v", tc.name, got, tc.want)
		}
	}
	for code := wire.CodeOK; code < wire.CodeBadRequest; code++ {
		if got := FromWire(&wire.Refusal{Code: code, Msg: "x"}); got != nil {
			t.Errorf("connection code %d decodes as %v, want nil", code, got)
		}
	}
	if got := FromWire(&wire.Refusal{Code: 200, Msg: "from a newer server"}); Of(got) != Remote {
		t.Errorf("an unknown refusal code decodes as %v, want a remote failure", Of(got))
	}
	if Of(errors.New("plain")) != Remote || Of(fmt.Errorf("x: %w", ErrLost)) != Lost {
		t.Error("Of does not fall back to Remote, or misses a wrapped sentinel")
	}
}

// TestCompatibility: the classes that the client reported as ErrRemote
// before they had sentinels still match it; the others do not.
func TestCompatibility(t *testing.T) {
	for _, c := range Classes() {
		want := c == Remote || c == Exists || c == Precondition
		if got := errors.Is(New(c, "x"), ErrRemote); got != want {
			t.Errorf("errors.Is(%v, ErrRemote) = %v, want %v", c, got, want)
		}
	}
}
