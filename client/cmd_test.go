package client

import (
	"github.com/circuit-project/circuit/internal/testsupport"

	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/circuit-project/circuit/internal/api"
)

// TestCmdRoundTrip: cmdToAPI and cmdFromAPI carry every field of both
// structs, each way.
func TestCmdRoundTrip(t *testing.T) {
	var c Cmd
	testsupport.FillFields(t, &c)
	wire := cmdToAPI(c)
	testsupport.CheckFilled(t, wire)
	if back := cmdFromAPI(wire); !reflect.DeepEqual(back, c) {
		t.Errorf("client.Cmd -> api.Cmd -> client.Cmd:\n got %+v\nwant %+v", back, c)
	}

	var w api.Cmd
	testsupport.FillFields(t, &w)
	c = cmdFromAPI(&w)
	testsupport.CheckFilled(t, &c)
	if back := cmdToAPI(c); !proto.Equal(back, &w) {
		t.Errorf("api.Cmd -> client.Cmd -> api.Cmd:\n got %v\nwant %v", back, &w)
	}
}
