package cli

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestReferenceIsCurrent checks docs/CLI.md against the commands; with
// CIRCUIT_UPDATE_DOCS=1 it writes the file instead.
func TestReferenceIsCurrent(t *testing.T) {
	var b bytes.Buffer
	Reference(&b)
	const path = "../../docs/CLI.md"
	if os.Getenv("CIRCUIT_UPDATE_DOCS") == "1" {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	have, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, b.Bytes()) {
		t.Fatalf("docs/CLI.md is not what the commands say: run CIRCUIT_UPDATE_DOCS=1 go test ./internal/cli -run TestReferenceIsCurrent")
	}
}

// TestEveryCommandIsDocumented checks that every command has an example
// and that every one that prints data documents its -json output.
func TestEveryCommandIsDocumented(t *testing.T) {
	printsData := map[string]bool{"ls": true, "peek": true, "wait": true, "waitall": true, "kill": true, "run": true, "stk": true, "keygen": true, "start": true, "version": true}
	for _, c := range commands() {
		name := c.name
		if c.hidden() {
			continue
		}
		if !strings.Contains(c.long+" "+c.example, "circuit "+name) {
			t.Errorf("%s: no example command line in its help", name)
		}
		if printsData[name] && c.json == "" {
			t.Errorf("%s prints data but has no -json", name)
		}
	}
}

// TestCommandsAreListedOnce checks that no two commands in commands.go
// have the same name, which would hide the second.
func TestCommandsAreListedOnce(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range commands() {
		if seen[c.name] {
			t.Errorf("%s is listed twice", c.name)
		}
		seen[c.name] = true
	}
}
