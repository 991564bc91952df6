package cli

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/circuit-project/circuit/client"
)

func TestParseJSON(t *testing.T) {
	cases := []struct {
		src  string
		ok   bool
		says string
	}{
		{`{"Path": "/bin/ls", "Args": ["/"]}`, true, ""},
		{"{\n\"Path\": \"/bin/ls\",\n\"Args\":[\"/\"],\n}", true, ""}, // the seeds' trailing commas
		{`{"Path": "/bin/ls", /* a comment */ "Scrub": true}`, true, ""},
		{`{"Pth": "/bin/ls"}`, false, `unknown field "Pth"`},
		{`{"Path": 3}`, false, "cannot unmarshal number"},
		{`{"Path": "/bin/ls"} {"Path": "/bin/ls"}`, false, "after top-level value"},
		{`Path=/bin/ls`, false, "the command"},
		{``, false, "the command"},
	}
	for _, tc := range cases {
		var cmd client.Cmd
		err := parseJSON("the command", []byte(tc.src), &cmd)
		if tc.ok != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.says)) {
			t.Errorf("parseJSON(%q) = %v; want ok=%v saying %q", tc.src, err, tc.ok, tc.says)
		}
	}
}

// FuzzParseCommand: whatever arrives on mkproc's or mkdkr's stdin, parsing
// never panics and an accepted command parses again the same way.
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		`{"Path": "/bin/ls", "Args": ["/"],}`,
		`{"Image": "ubuntu", "Memory": 1000000000, "Lxc": ["x"], "Volume": ["/a", "/b:/c:ro"],}`,
		`{"Env": null}`, `[]`, `{"Path": "\u0000"}`, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var cmd client.Cmd
		if parseJSON("proc", b, &cmd) == nil && utf8.Valid(b) {
			again, err := json.Marshal(cmd)
			if err != nil {
				t.Fatal(err)
			}
			var cmd2 client.Cmd
			if err := parseJSON("proc", again, &cmd2); err != nil || !reflect.DeepEqual(cmd, cmd2) {
				t.Fatalf("%q parsed to %+v, which does not parse back the same: %+v, %v", b, cmd, cmd2, err)
			}
		}
		var dk client.DockerConfig
		parseJSON("docker", b, &dk)
	})
}
