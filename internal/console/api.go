package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/anchor"
	"github.com/circuit-project/circuit/internal/fault"
)

// callTimeout bounds every call the console makes for one request.
const callTimeout = 10 * time.Second

// keepAliveEvery is how often an idle event stream gets a comment line, so
// that proxies and browsers keep it open.
const keepAliveEvery = 20 * time.Second

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// fail answers with an error as JSON: {"Error": "..."}.
func fail(w http.ResponseWriter, code int, format string, a ...any) {
	writeJSON(w, code, struct{ Error string }{fmt.Sprintf(format, a...)})
}

// failCall answers with the error of a call to the cluster, with the HTTP
// status of its class (package fault).
func failCall(w http.ResponseWriter, what string, err error) {
	fail(w, fault.Of(err).HTTP(), "%s: %v", what, err)
}

// elementPath checks a path that names one element below a server.
func elementPath(raw string) (string, error) {
	p, err := anchor.Parse(raw)
	if err != nil {
		return "", err
	}
	if p.Server == 0 || p.Recursive {
		return "", fmt.Errorf("%q: want the path of one element, such as /X88550014d4c82e4d/job", raw)
	}
	return p.String(), nil
}

// info tells the page what this console is.
func (c *Console) info(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, struct {
		Server string
		Write  bool
		Keyed  bool
		Who    string // whose session this is: "key", or a credential's name and ID
	}{c.cfg.Server, c.writable(r), c.token != "", grantOf(r).who})
}

// writeWithin bounds each write of an event stream: a page that stops
// reading without closing its connection ends its stream.
const writeWithin = 15 * time.Second

// sse writes server-sent events.
type sse struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func startSSE(w http.ResponseWriter) (*sse, error) {
	s := &sse{w: w, rc: http.NewResponseController(w)}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if err := s.rc.Flush(); err != nil {
		return nil, fmt.Errorf("starting an event stream: %w", err)
	}
	return s, nil
}

// send writes one event; data must be one line (JSON is).
func (s *sse) send(event string, data []byte) error {
	return s.write(fmt.Sprintf("event: %s\ndata: %s\n\n", event, data))
}

func (s *sse) comment() error { return s.write(": keep-alive\n\n") }

func (s *sse) write(text string) error {
	if err := s.rc.SetWriteDeadline(time.Now().Add(writeWithin)); err != nil {
		return err
	}
	if _, err := io.WriteString(s.w, text); err != nil {
		return err
	}
	return s.rc.Flush()
}

// events streams the member list ("members") and the log tail ("ops") to a
// page, each whenever it changes.
func (c *Console) events(w http.ResponseWriter, r *http.Request) {
	ev, err := startSSE(w)
	if err != nil {
		fail(w, http.StatusInternalServerError, "%v", err)
		return
	}
	s := c.hub.subscribe()
	defer c.hub.unsubscribe(s)
	keep := time.NewTicker(keepAliveEvery)
	defer keep.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-keep.C:
			if ev.comment() != nil {
				return
			}
		case <-s.poke:
			members, ops := s.take()
			if members != nil && ev.send("members", members) != nil {
				return
			}
			if ops != nil && ev.send("ops", ops) != nil {
				return
			}
		}
	}
}

// entryView is a listed anchor.
type entryView struct {
	Path   string
	Kind   string
	Labels map[string]string `json:",omitempty"`
	DC     string            `json:",omitempty"`
}

// list lists the anchors right below path ("/" lists the servers).
func (c *Console) list(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Query().Get("path")
	if path == "" {
		path = "/"
	}
	p, err := anchor.Parse(path)
	if err != nil || p.Recursive {
		fail(w, http.StatusBadRequest, "list %q: want / or an anchor below a server, without /...", path)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	entries, err := c.cl.List(ctx, path)
	if err != nil {
		failCall(w, "list "+path, err)
		return
	}
	out := make([]entryView, 0, len(entries))
	for _, e := range entries {
		out = append(out, entryView{Path: e.Path, Kind: e.Kind, Labels: e.Labels, DC: e.DC})
	}
	writeJSON(w, http.StatusOK, out)
}

// peek answers with the kind of the element at path and its peek document.
func (c *Console) peek(w http.ResponseWriter, r *http.Request) {
	path, err := elementPath(r.URL.Query().Get("path"))
	if err != nil {
		fail(w, http.StatusBadRequest, "peek: %v", err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	el, err := c.cl.PeekAt(ctx, path)
	if err != nil {
		failCall(w, "peek "+path, err)
		return
	}
	switch {
	case el.Kind == "":
		fail(w, http.StatusNotFound, "peek %s: no element at this anchor", path)
		return
	case el.State == nil:
		fail(w, http.StatusNotImplemented, "peek %s: the console cannot show a %s element", path, el.Kind)
		return
	}
	state := el.State
	if !c.writable(r) && (el.Kind == "proc" || el.Kind == "docker") {
		if state, err = hideEnv(state); err != nil {
			fail(w, http.StatusInternalServerError, "peek %s: %v", path, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, struct {
		Path, Kind string
		Peek       any
	}{path, el.Kind, state})
}

// hideEnv is a peek document with every environment (a list under the key
// Env: a process's Cmd.Env, a container's Config.Env) replaced by how many
// variables it holds, for a read-only console: the environment often holds
// secrets, and a viewer is not an operator.
func hideEnv(state any) (any, error) {
	b, err := json.Marshal(state)
	if err != nil {
		return nil, fmt.Errorf("encoding the peek document: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("decoding the peek document: %w", err)
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				if list, ok := e.([]any); ok && k == "Env" {
					v[k] = fmt.Sprintf("hidden: %d variables (a read-only console does not show the environment)", len(list))
					continue
				}
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(doc)
	return doc, nil
}

// stream follows a process's (or container's) stdout or stderr as events:
// "out" with a chunk of text (a JSON string), then "end" at the end of the
// output, or "error" with a message. Closing the page's event source closes
// the stream, which discards the rest of the output (package proc).
//
// A read-only console never reads output (package doc): reading it would
// take it from its real reader.
func (c *Console) stream(w http.ResponseWriter, r *http.Request) {
	if !c.writable(r) {
		fail(w, http.StatusForbidden, "this console is read-only: it never reads a process's output, which would take it from its reader (circuit stdout); it shows what peek gives, and a console started with -http-write reads the output on request")
		return
	}
	q := r.URL.Query()
	path, err := elementPath(q.Get("path"))
	if err != nil {
		fail(w, http.StatusBadRequest, "stream: %v", err)
		return
	}
	name := q.Get("name")
	if name != "stdout" && name != "stderr" {
		fail(w, http.StatusBadRequest, "stream %s: name %q: want stdout or stderr", path, name)
		return
	}
	ev, err := startSSE(w)
	if err != nil {
		fail(w, http.StatusInternalServerError, "%v", err)
		return
	}
	octx, cancel := context.WithTimeout(r.Context(), callTimeout)
	conn, err := c.cl.OpenStreamAt(octx, path, name)
	cancel()
	if err != nil {
		msg, _ := json.Marshal(fmt.Sprintf("%s of %s: %v", name, path, err))
		ev.send("error", msg)
		return
	}
	c.following.Add(1)
	defer c.following.Add(-1)
	defer conn.Close()
	stop := context.AfterFunc(r.Context(), func() { conn.Close() })
	defer stop()
	buf := make([]byte, 32<<10)
	carry := 0 // bytes of an incomplete UTF-8 sequence kept from the last read
	for {
		n, err := conn.Read(buf[carry:])
		n += carry
		cut := completeUTF8(buf[:n])
		if err != nil {
			cut = n // nothing more will complete it
		}
		if cut > 0 {
			chunk, _ := json.Marshal(string(buf[:cut]))
			if ev.send("out", chunk) != nil {
				return
			}
		}
		carry = copy(buf, buf[cut:n])
		if errors.Is(err, io.EOF) {
			ev.send("end", []byte(`""`))
			return
		}
		if err != nil {
			if r.Context().Err() == nil {
				msg, _ := json.Marshal(fmt.Sprintf("%s of %s: %v", name, path, err))
				ev.send("error", msg)
			}
			return
		}
	}
}

// completeUTF8 returns the length of b without a trailing incomplete UTF-8
// sequence.
func completeUTF8(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return i
			}
			break
		}
	}
	return len(b)
}

// write guards the endpoints that change the cluster.
func (c *Console) write(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !c.cfg.Write {
			fail(w, http.StatusForbidden, "this console is read-only: start the server with -http-write to allow mkproc, signal and scrub")
			return
		}
		if g := grantOf(r); !g.write {
			fail(w, http.StatusForbidden, "this session is read-only: %s has role read, and the console's writes need role operate", g.who)
			return
		}
		if r.Header.Get(csrfHeader) != "1" {
			fail(w, http.StatusForbidden, "refused: a POST to the console needs the header %s: 1 (the console's page sends it; a form from another site cannot)", csrfHeader)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		h(w, r)
	}
}

// decode reads a JSON request body, refusing unknown fields.
func decode(w http.ResponseWriter, r *http.Request, what string, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		fail(w, http.StatusBadRequest, "%s: the request body: %v", what, err)
		return false
	}
	return true
}

// mkproc starts a process: {"Path": "/Xid/name", "Command": "/bin/sh -c 'echo hi'", "Scrub": false}.
// The command line is split into words as a shell would, without
// expansion: quotes and backslashes only.
func (c *Console) mkproc(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Path    string
		Command string
		Scrub   bool
	}
	if !decode(w, r, "mkproc", &req) {
		return
	}
	path, err := elementPath(req.Path)
	if err != nil {
		fail(w, http.StatusBadRequest, "mkproc: %v", err)
		return
	}
	words, err := splitCommand(req.Command)
	if err != nil {
		fail(w, http.StatusBadRequest, "mkproc %s: command line: %v", path, err)
		return
	}
	if len(words) == 0 {
		fail(w, http.StatusBadRequest, "mkproc %s: the command line is empty", path)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	if _, err := c.cl.MakeProcAt(ctx, path, client.Cmd{Path: words[0], Args: words[1:], Scrub: req.Scrub}); err != nil {
		failCall(w, "mkproc "+path, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{ Path string }{path})
}

// signal sends a signal to a process: {"Path": ..., "Signal": "TERM"}.
func (c *Console) signal(w http.ResponseWriter, r *http.Request) {
	var req struct{ Path, Signal string }
	if !decode(w, r, "signal", &req) {
		return
	}
	path, err := elementPath(req.Path)
	if err != nil {
		fail(w, http.StatusBadRequest, "signal: %v", err)
		return
	}
	sig := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(req.Signal)), "SIG")
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	if err := c.cl.ProcAt(path).Signal(ctx, sig); err != nil {
		failCall(w, "signal "+sig+" "+path, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{ Path, Signal string }{path, sig})
}

// scrub removes any element: {"Path": ...}.
func (c *Console) scrub(w http.ResponseWriter, r *http.Request) {
	var req struct{ Path string }
	if !decode(w, r, "scrub", &req) {
		return
	}
	path, err := elementPath(req.Path)
	if err != nil {
		fail(w, http.StatusBadRequest, "scrub: %v", err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	if err := c.cl.ScrubAt(ctx, path); err != nil {
		failCall(w, "scrub "+path, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{ Path string }{path})
}

// splitCommand splits a command line into words: blanks separate words,
// single quotes keep everything literally, double quotes keep everything
// but backslash escapes of " and \, and a backslash outside quotes escapes
// the next character. Nothing is expanded.
func splitCommand(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == ' ' || ch == '\t' || ch == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case ch == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("unterminated ' at byte %d", i)
			}
			cur.WriteString(s[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case ch == '"':
			j := i + 1
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' && j+1 < len(s) && (s[j+1] == '"' || s[j+1] == '\\') {
					j++
				}
				cur.WriteByte(s[j])
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated \" at byte %d", i)
			}
			i = j
			inWord = true
		case ch == '\\':
			if i+1 >= len(s) {
				return nil, errors.New("a backslash at the end")
			}
			i++
			cur.WriteByte(s[i])
			inWord = true
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
