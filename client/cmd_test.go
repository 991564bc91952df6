package client

import (
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/circuit-project/circuit/internal/api"
)

// fillFields sets every exported field of the struct v points to to a
// value that is not zero, and fails for a field of a type it does not
// know, so that a field added to a Cmd is noticed here.
func fillFields(t *testing.T, v any) {
	t.Helper()
	s := reflect.ValueOf(v).Elem()
	for i := range s.NumField() {
		f, sf := s.Field(i), s.Type().Field(i)
		if !sf.IsExported() {
			continue
		}
		switch f.Kind() {
		case reflect.String:
			f.SetString("v" + sf.Name)
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Uint16, reflect.Uint32:
			f.SetUint(uint64(10 + i))
		case reflect.Slice:
			if f.Type().Elem().Kind() != reflect.String {
				t.Fatalf("%s.%s: fillFields does not know %s", s.Type(), sf.Name, f.Type())
			}
			f.Set(reflect.ValueOf([]string{"v" + sf.Name, "w" + sf.Name}))
		default:
			t.Fatalf("%s.%s: fillFields does not know %s", s.Type(), sf.Name, f.Type())
		}
	}
}

// checkFilled fails for an exported field of the struct v points to that
// holds its zero value: one a conversion did not carry.
func checkFilled(t *testing.T, v any) {
	t.Helper()
	s := reflect.ValueOf(v).Elem()
	for i := range s.NumField() {
		if s.Type().Field(i).IsExported() && s.Field(i).IsZero() {
			t.Errorf("%s.%s was not converted", s.Type(), s.Type().Field(i).Name)
		}
	}
}

// TestCmdRoundTrip: cmdToAPI and cmdFromAPI carry every field of both
// structs, each way.
func TestCmdRoundTrip(t *testing.T) {
	var c Cmd
	fillFields(t, &c)
	wire := cmdToAPI(c)
	checkFilled(t, wire)
	if back := cmdFromAPI(wire); !reflect.DeepEqual(back, c) {
		t.Errorf("client.Cmd -> api.Cmd -> client.Cmd:\n got %+v\nwant %+v", back, c)
	}

	var w api.Cmd
	fillFields(t, &w)
	c = cmdFromAPI(&w)
	checkFilled(t, &c)
	if back := cmdToAPI(c); !proto.Equal(back, &w) {
		t.Errorf("api.Cmd -> client.Cmd -> api.Cmd:\n got %v\nwant %v", back, &w)
	}
}
