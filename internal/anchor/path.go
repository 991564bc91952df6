package anchor

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/circuit-project/circuit/internal/ident"
)

// ErrBadPath is wrapped by every error about a malformed anchor path.
var ErrBadPath = errors.New("bad anchor path")

const (
	// MaxPathLen is the longest path Parse accepts, in bytes.
	MaxPathLen = 4096
	// MaxElemLen is the longest path component, in bytes.
	MaxElemLen = 255
	// recurse is the last path component meaning "and all descendants".
	recurse = "..."
)

// Path is a parsed anchor path.
type Path struct {
	Server    ident.ID // 0 for the root "/"
	Elems     []string // components below the server anchor; nil if none
	Recursive bool     // the path ended in "/..."
}

// Parse checks s against the path rules in the package doc and splits it.
func Parse(s string) (Path, error) {
	switch {
	case s == "":
		return Path{}, badPath(s, "empty")
	case len(s) > MaxPathLen:
		return Path{}, badPath(s, "longer than %d bytes", MaxPathLen)
	case s[0] != '/':
		return Path{}, badPath(s, `must start with "/"`)
	}
	body := strings.TrimSuffix(s[1:], "/")
	if body == "" {
		if len(s) > 1 {
			return Path{}, badPath(s, "empty component")
		}
		return Path{}, nil
	}
	var p Path
	comps := strings.Split(body, "/")
	if comps[len(comps)-1] == recurse {
		p.Recursive = true
		comps = comps[:len(comps)-1]
	}
	for _, c := range comps {
		if err := CheckElem(c); err != nil {
			return Path{}, badPath(s, "%v", err)
		}
	}
	if len(comps) == 0 {
		return p, nil
	}
	id, err := ident.ParseID(comps[0])
	if err != nil {
		return Path{}, fmt.Errorf("%w %s: first component must be a server ID: %w", ErrBadPath, quote(s), err)
	}
	p.Server = id
	if len(comps) > 1 {
		p.Elems = comps[1:]
	}
	return p, nil
}

// String returns the canonical absolute form of p: "/", "/...", or
// "/X<id>/a/b" with "/..." appended when p is recursive. (Parse never
// returns Elems without a Server; such a Path formats as "/a/b".)
func (p Path) String() string {
	var b strings.Builder
	if p.Server != 0 {
		b.WriteString("/" + p.Server.String())
	}
	for _, e := range p.Elems {
		b.WriteString("/" + e)
	}
	if p.Recursive {
		b.WriteString("/" + recurse)
	}
	if b.Len() == 0 {
		return "/"
	}
	return b.String()
}

// Split breaks a path into its components, dropping empty ones, as the seed's
// client.Split does: "/X1/a//b/" gives [X1 a b]. It does not validate.
func Split(s string) []string {
	var r []string
	for c := range strings.SplitSeq(s, "/") {
		if c != "" {
			r = append(r, c)
		}
	}
	return r
}

// CheckElem reports what is wrong with c as the name of an anchor.
func CheckElem(c string) error {
	switch c {
	case "":
		return errors.New("empty component")
	case ".", "..":
		return fmt.Errorf("component %q is not allowed", c)
	case recurse:
		return fmt.Errorf("%q is allowed only as the last component", recurse)
	}
	if len(c) > MaxElemLen {
		return fmt.Errorf("component %s is %d bytes, limit %d", quote(c), len(c), MaxElemLen)
	}
	if !utf8.ValidString(c) {
		return fmt.Errorf("component %s is not valid UTF-8", quote(c))
	}
	for _, r := range c {
		if unicode.IsControl(r) {
			return fmt.Errorf("control character %U in component %s", r, quote(c))
		}
	}
	return nil
}

func badPath(s, format string, args ...any) error {
	return fmt.Errorf("%w %s: %s", ErrBadPath, quote(s), fmt.Sprintf(format, args...))
}

// quote quotes s for an error message, shortened if it is long.
func quote(s string) string {
	const limit = 64
	if len(s) <= limit {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%q... (%d bytes)", s[:limit], len(s))
}
