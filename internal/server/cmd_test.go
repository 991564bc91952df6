package server

import (
	"github.com/circuit-project/circuit/internal/testsupport"

	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/circuit-project/circuit/internal/api"
	"github.com/circuit-project/circuit/internal/element/proc"
)

// TestCmdRoundTrip: cmdToAPI and cmdFromAPI carry every field of api.Cmd
// and proc.Cmd, each way.
func TestCmdRoundTrip(t *testing.T) {
	var c proc.Cmd
	testsupport.FillFields(t, &c)
	wire := cmdToAPI(c)
	testsupport.CheckFilled(t, wire)
	if back := cmdFromAPI(wire); !reflect.DeepEqual(back, c) {
		t.Errorf("proc.Cmd -> api.Cmd -> proc.Cmd:\n got %+v\nwant %+v", back, c)
	}

	var w api.Cmd
	testsupport.FillFields(t, &w)
	c = cmdFromAPI(&w)
	testsupport.CheckFilled(t, &c)
	if back := cmdToAPI(c); !proto.Equal(back, &w) {
		t.Errorf("api.Cmd -> proc.Cmd -> api.Cmd:\n got %v\nwant %v", back, &w)
	}
}
