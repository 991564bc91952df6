package cli

// The JSON that commands read (descriptions on stdin) and print.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tailscale/hujson"
)

// parseJSON decodes the seeds' JSON style: trailing commas and comments are
// accepted, unknown fields are errors that name the field.
func parseJSON(what string, src []byte, v any) error {
	std, err := hujson.Standardize(bytes.Clone(src))
	if err != nil {
		return fmt.Errorf("%s is not valid JSON: %s", what, strings.TrimPrefix(err.Error(), "hujson: "))
	}
	dec := json.NewDecoder(bytes.NewReader(std))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: %v", what, err)
	}
	if dec.More() {
		return fmt.Errorf("%s: more than one JSON value", what)
	}
	return nil
}

// printJSON prints v as one JSON document: indented for people, or on one
// line with -json.
func printJSON(env *Env, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if env.jsonOut {
		b, err = json.Marshal(v)
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(env.Stdout, "%s\n", b)
	return err
}
