// Package label owns server labels (role=db, zone=a) and the selectors that
// choose servers by them (role=db,zone in (a,b)).
//
// A label key is 1 to 63 characters of letters, digits, '-', '_', '.' and
// '/', starting and ending with a letter or digit; a value is the same, or
// empty. Those are the characters a shell passes unquoted, and the sizes
// keep a server's labels inside its gossip metadata.
//
// A selector is requirements joined by commas, all of which must hold:
//
//	key=value   key==value   key!=value
//	key in (v1,v2)   key notin (v1,v2)
//	key   !key   (the label is set, or not)
//
// key!=value and key notin (...) also hold for a server without the label.
// The empty selector chooses every server. The key dc means a server's
// datacenter (DC).
package label

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// DC is the key under which selectors see a server's datacenter (circuit
// start -dc), as if it were a label; no label may have it.
const DC = "dc"

// Set is a server's labels.
type Set map[string]string

// String gives the labels as key=value pairs joined by commas, sorted by
// key: the form that ParseSet reads back.
func (s Set) String() string {
	var b strings.Builder
	for i, k := range slices.Sorted(maps.Keys(s)) {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k + "=" + s[k])
	}
	return b.String()
}

// maxLen bounds a key or a value.
const maxLen = 63

// ParsePair parses one key=value label, as given to `circuit start -label`.
func ParsePair(s string) (key, value string, err error) {
	key, value, ok := strings.Cut(s, "=")
	if !ok {
		return "", "", fmt.Errorf("label %q: want key=value", s)
	}
	if err := checkKey(key); err != nil {
		return "", "", fmt.Errorf("label %q: %w", s, err)
	}
	if err := checkValue(value); err != nil {
		return "", "", fmt.Errorf("label %q: %w", s, err)
	}
	return key, value, nil
}

// CheckValue tells why s cannot be a label's value, or a name of the same
// form (a datacenter's), if it cannot.
func CheckValue(s string) error { return checkValue(s) }

// ParseSet parses labels given as key=value pairs joined by commas.
func ParseSet(s string) (Set, error) {
	out := Set{}
	if s == "" {
		return out, nil
	}
	for _, p := range strings.Split(s, ",") {
		k, v, err := ParsePair(p)
		if err != nil {
			return nil, err
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("label %q given twice", k)
		}
		out[k] = v
	}
	return out, nil
}

func checkKey(k string) error {
	if k == "" {
		return fmt.Errorf("empty key")
	}
	if err := checkWord(k); err != nil {
		return fmt.Errorf("key %q: %w", k, err)
	}
	return nil
}

func checkValue(v string) error {
	if v == "" {
		return nil
	}
	if err := checkWord(v); err != nil {
		return fmt.Errorf("value %q: %w", v, err)
	}
	return nil
}

func checkWord(w string) error {
	if len(w) > maxLen {
		return fmt.Errorf("longer than %d characters", maxLen)
	}
	for i := 0; i < len(w); i++ {
		c := w[i]
		if (i == 0 || i == len(w)-1) && !alnum(c) {
			return fmt.Errorf("must start and end with a letter or digit")
		}
		if !wordChar(c) {
			return fmt.Errorf("character %q not allowed (letters, digits, - _ . /)", c)
		}
	}
	return nil
}

func alnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// wordChar tells whether c may stand in a key or a value.
func wordChar(c byte) bool { return alnum(c) || c == '-' || c == '_' || c == '.' || c == '/' }

// Op is how a requirement compares a label.
type Op string

const (
	Equals    Op = "="
	NotEquals Op = "!="
	In        Op = "in"
	NotIn     Op = "notin"
	Exists    Op = "exists"
	NotExists Op = "!"
)

// Requirement is one condition of a selector.
type Requirement struct {
	Key    string
	Op     Op
	Values []string // one for = and !=, one or more for in and notin
}

// Matches tells whether labels meet the requirement.
func (r Requirement) Matches(s Set) bool {
	v, ok := s[r.Key]
	switch r.Op {
	case Equals:
		return ok && v == r.Values[0]
	case NotEquals:
		return !ok || v != r.Values[0]
	case In:
		return ok && slices.Contains(r.Values, v)
	case NotIn:
		return !ok || !slices.Contains(r.Values, v)
	case Exists:
		return ok
	case NotExists:
		return !ok
	}
	return false
}

func (r Requirement) String() string {
	switch r.Op {
	case Equals, NotEquals:
		return r.Key + string(r.Op) + r.Values[0]
	case In, NotIn:
		return r.Key + " " + string(r.Op) + " (" + strings.Join(r.Values, ",") + ")"
	case Exists:
		return r.Key
	case NotExists:
		return "!" + r.Key
	}
	return ""
}

// Selector chooses servers: all its requirements must hold.
type Selector []Requirement

// Matches tells whether labels meet every requirement.
func (sel Selector) Matches(s Set) bool {
	for _, r := range sel {
		if !r.Matches(s) {
			return false
		}
	}
	return true
}

// String gives the selector in the form Parse reads back.
func (sel Selector) String() string {
	parts := make([]string, len(sel))
	for i, r := range sel {
		parts[i] = r.String()
	}
	return strings.Join(parts, ",")
}

// SyntaxError is a selector that does not parse.
type SyntaxError struct {
	Selector string
	Pos      int // byte offset of the trouble
	Msg      string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("selector %q: at character %d: %s", e.Selector, e.Pos+1, e.Msg)
}

// Parse reads a selector; see the package doc for its grammar.
func Parse(s string) (Selector, error) {
	p := &parser{s: s}
	var sel Selector
	p.space()
	if p.done() {
		return nil, nil
	}
	for {
		r, err := p.requirement()
		if err != nil {
			return nil, err
		}
		sel = append(sel, r)
		p.space()
		if p.done() {
			return sel, nil
		}
		if !p.take(",") {
			return nil, p.fail("want a comma between requirements")
		}
	}
}

type parser struct {
	s   string
	pos int
}

func (p *parser) done() bool { return p.pos >= len(p.s) }

func (p *parser) fail(msg string) error {
	return &SyntaxError{Selector: p.s, Pos: min(p.pos, max(len(p.s)-1, 0)), Msg: msg}
}

func (p *parser) space() {
	for !p.done() && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t') {
		p.pos++
	}
}

func (p *parser) take(tok string) bool {
	if strings.HasPrefix(p.s[p.pos:], tok) {
		p.pos += len(tok)
		return true
	}
	return false
}

// word reads a run of the characters keys and values are made of.
func (p *parser) word() string {
	start := p.pos
	for !p.done() && wordChar(p.s[p.pos]) {
		p.pos++
	}
	return p.s[start:p.pos]
}

func (p *parser) key() (string, error)   { return p.token(checkKey) }
func (p *parser) value() (string, error) { return p.token(checkValue) }

// token reads a word that check accepts; on failure the error points at
// the word's start.
func (p *parser) token(check func(string) error) (string, error) {
	p.space()
	at := p.pos
	w := p.word()
	if err := check(w); err != nil {
		p.pos = at
		return "", p.fail(err.Error())
	}
	return w, nil
}

func (p *parser) requirement() (Requirement, error) {
	p.space()
	if p.take("!") {
		k, err := p.key()
		return Requirement{Key: k, Op: NotExists}, err
	}
	k, err := p.key()
	if err != nil {
		return Requirement{}, err
	}
	p.space()
	var op Op
	switch {
	case p.take("!="):
		op = NotEquals
	case p.take("=="), p.take("="):
		op = Equals
	case p.keyword("notin"):
		op = NotIn
	case p.keyword("in"):
		op = In
	default:
		if p.done() || p.s[p.pos] == ',' {
			return Requirement{Key: k, Op: Exists}, nil
		}
		return Requirement{}, p.fail("want =, !=, in or notin after the key")
	}
	if op == Equals || op == NotEquals {
		v, err := p.value()
		return Requirement{Key: k, Op: op, Values: []string{v}}, err
	}
	p.space()
	if !p.take("(") {
		return Requirement{}, p.fail("want ( after " + string(op))
	}
	var vals []string
	for {
		v, err := p.value()
		if err != nil {
			return Requirement{}, err
		}
		if v == "" {
			return Requirement{}, p.fail("want a value in the list")
		}
		vals = append(vals, v)
		p.space()
		if p.take(")") {
			return Requirement{Key: k, Op: op, Values: vals}, nil
		}
		if !p.take(",") {
			return Requirement{}, p.fail("want , or ) in the list of values")
		}
	}
}

// keyword takes kw if it stands alone (followed by a space or a
// parenthesis), so that a key such as "index" is not read as "in".
func (p *parser) keyword(kw string) bool {
	rest := p.s[p.pos:]
	if !strings.HasPrefix(rest, kw) {
		return false
	}
	if len(rest) > len(kw) {
		if c := rest[len(kw)]; c != ' ' && c != '\t' && c != '(' {
			return false
		}
	}
	p.pos += len(kw)
	return true
}
