package cli

import (
	"context"
	"flag"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/anchorfs"
)

// Shell completion. `circuit completion SHELL` prints a script; the script
// asks the binary itself for candidates with the hidden form
//
//	circuit completion __complete -- WORD...
//
// where the words are the command line after the program name, the last
// one being the (possibly empty) word under completion. It prints one
// candidate per line. A first line of completeFiles or completeDirs asks
// the shell for its own file or directory names instead. Anything that goes
// wrong (an unknown command, no server, a timeout) prints nothing and exits
// 0, so a shell is never stuck or spammed.

// completeArg is the hidden first argument of the completion backend.
const completeArg = "__complete"

// completeTimeout bounds connecting to the dial-in server and listing.
const completeTimeout = 2 * time.Second

// Directives: the first (and only) line of the backend's output when the
// shell should complete names of local files or directories.
const (
	completeFiles = ":files"
	completeDirs  = ":dirs"
)

func completionCmd() *command {
	return &command{
		name:  "completion",
		args:  "bash|zsh|fish",
		short: "print a shell completion script (commands, flags, and anchor paths from the dial-in server)",
		long: `Prints a script for the shell that completes command names, flags, and the
anchor paths of commands that take them. Paths are listed by asking the
dial-in server, found as the command would find it: -d and -hmac given
earlier on the line, else $CIRCUIT, $CIRCUIT_DISCOVER and $CIRCUIT_HMAC. Each
ask gives up after 2 s and then offers nothing.

bash (needs bash 4.4 or later; the bash-completion package is not needed):
  source <(circuit completion bash)                    # this shell, or in ~/.bashrc
  circuit completion bash > /etc/bash_completion.d/circuit   # every new shell

zsh (a file named _circuit in a directory of $fpath, before compinit runs):
  mkdir -p ~/.zfunc && circuit completion zsh > ~/.zfunc/_circuit
  # in ~/.zshrc, before compinit:  fpath=(~/.zfunc $fpath)
  # or, in a shell where compinit has run:  source <(circuit completion zsh)

fish:
  circuit completion fish > ~/.config/fish/completions/circuit.fish`,
		run: runCompletion,
	}
}

func runCompletion(env *Env, inv *invocation) error {
	if len(inv.args) > 0 && inv.args[0] == completeArg {
		var b strings.Builder
		for _, c := range completeWords(env, inv.args[1:]) {
			b.WriteString(c)
			b.WriteByte('\n')
		}
		io.WriteString(env.Stdout, b.String()) // a shell that went away is no error worth showing
		return nil
	}
	if len(inv.args) != 1 {
		return usagef("completion takes one shell, bash, zsh or fish, e.g. circuit completion bash")
	}
	script, ok := completionScripts[inv.args[0]]
	if !ok {
		return usagef("unknown shell %q; give bash, zsh or fish", inv.args[0])
	}
	_, err := io.WriteString(env.Stdout, script)
	return err
}

// completeWords returns the candidates for the last of words, given the
// ones before it; words[0] is the command name.
func completeWords(env *Env, words []string) []string {
	if len(words) == 0 {
		words = []string{""}
	}
	cur := words[len(words)-1]
	if len(words) == 1 {
		return commandNames(cur)
	}
	if words[0] == "help" {
		if len(words) == 2 {
			return commandNames(cur)
		}
		return nil
	}
	c := lookup(words[0])
	if c == nil {
		return nil
	}
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dial, _, _ := defineFlags(c, fs)

	// Walk the words before the current one as parseInterspersed would,
	// setting the flags given (so -d and -hmac are known) and counting the
	// positional arguments.
	var (
		npos     int
		dashdash bool       // "--" seen: no more flags
		valueFor *flag.Flag // the previous word was this flag, without its value
	)
	for _, w := range words[1 : len(words)-1] {
		switch {
		case valueFor != nil:
			valueFor.Value.Set(w) // a bad value is the command's to report, not ours
			valueFor = nil
		case dashdash || w == "-" || !strings.HasPrefix(w, "-"):
			npos++
		case w == "--":
			dashdash = true
		default:
			name, value, hasValue := strings.Cut(flagName(w), "=")
			f := fs.Lookup(name)
			switch {
			case f == nil:
			case hasValue:
				f.Value.Set(value)
			case !isBoolFlag(f):
				valueFor = f
			}
		}
	}

	switch {
	case valueFor != nil:
		return flagValueCandidates(valueFor)
	case !dashdash && strings.HasPrefix(cur, "-"):
		return flagCandidates(fs, cur)
	case dashdash && strings.Contains(" "+c.args+" ", " -- "):
		return nil // a command line to run (exec, run): not ours to complete
	}
	tok := positionalToken(c.args, npos)
	switch argKind(tok) {
	case argChoice:
		return withPrefix(strings.Split(strings.Trim(tok, "[]."), "|"), cur)
	case argAnchor:
		if c.dial {
			return anchorCandidates(env, dial, cur, false)
		}
	case argServer:
		if c.dial {
			return anchorCandidates(env, dial, cur, true)
		}
	case argCopy:
		if c.dial {
			return copyCandidates(env, dial, cur)
		}
	}
	return nil
}

// flagName strips the one or two leading dashes of a flag word.
func flagName(w string) string {
	w = strings.TrimPrefix(w, "-")
	return strings.TrimPrefix(w, "-")
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// commandNames are the commands (and help) starting with prefix.
func commandNames(prefix string) []string {
	names := []string{"help"}
	for _, c := range commands() {
		if !c.hidden() {
			names = append(names, c.name)
		}
	}
	sort.Strings(names)
	return withPrefix(names, prefix)
}

// flagCandidates are the flags of fs, written as cur writes its dashes.
func flagCandidates(fs *flag.FlagSet, cur string) []string {
	if strings.Contains(cur, "=") {
		return nil
	}
	dashes := "-"
	if strings.HasPrefix(cur, "--") {
		dashes = "--"
	}
	var out []string
	fs.VisitAll(func(f *flag.Flag) {
		if w := dashes + f.Name; strings.HasPrefix(w, cur) {
			out = append(out, w)
		}
	})
	return out
}

// flagValueCandidates completes the value of a flag whose usage names it
// FILE or DIR (as in "cluster key `FILE`") with local names; other values
// are not completed.
func flagValueCandidates(f *flag.Flag) []string {
	switch name, _ := flag.UnquoteUsage(f); name {
	case "FILE":
		return []string{completeFiles}
	case "DIR":
		return []string{completeDirs}
	}
	return nil
}

// Kinds of positional arguments, read from a command's synopsis.
type positionalKind int

const (
	argOther  positionalKind = iota
	argAnchor                // PATH, DIR: an anchor path
	argServer                // /Xid: a server
	argCopy                  // SRC, DST: a local path or /Xid:/path
	argChoice                // a|b|c: one of these words
)

// positionalToken returns the synopsis word for positional argument n
// (from 0), before any "--"; a last word ending in "..." repeats.
func positionalToken(synopsis string, n int) string {
	var toks []string
	for _, t := range strings.Fields(synopsis) {
		if t == "--" {
			break
		}
		toks = append(toks, t)
	}
	switch {
	case n < len(toks):
		return toks[n]
	case len(toks) > 0 && strings.HasSuffix(toks[len(toks)-1], "..."):
		return toks[len(toks)-1]
	}
	return ""
}

func argKind(tok string) positionalKind {
	t := strings.Trim(tok, "[]")
	switch {
	case strings.HasPrefix(t, "/X"):
		return argServer
	case strings.Contains(t, "PATH"), strings.HasPrefix(t, "DIR"):
		return argAnchor
	case t == "SRC", t == "DST":
		return argCopy
	case strings.Contains(t, "|"):
		return argChoice
	}
	return argOther
}

func withPrefix(words []string, prefix string) []string {
	var out []string
	for _, w := range words {
		if strings.HasPrefix(w, prefix) {
			out = append(out, w)
		}
	}
	return out
}

// copyCandidates completes an argument of cp: /Xid: for a word that begins
// a server, local files otherwise.
func copyCandidates(env *Env, dial *dialFlags, cur string) []string {
	switch {
	case !strings.HasPrefix(cur, "/X"):
		return []string{completeFiles}
	case strings.Contains(cur, ":"):
		return nil // a path on the server, which no listing shows
	}
	servers := anchorCandidates(env, dial, cur, true)
	for i := range servers {
		servers[i] += ":"
	}
	return servers
}

// anchorCandidates asks the dial-in server for the anchors that complete
// cur: the servers (/Xid/, or /Xid with serversOnly) while cur has one
// slash, else the children of cur's parent, with a trailing slash for
// those that have children (directories, in the anchor file system).
func anchorCandidates(env *Env, dial *dialFlags, cur string, serversOnly bool) []string {
	if cur != "" && !strings.HasPrefix(cur, "/") {
		return nil
	}
	parent := ""
	if i := strings.LastIndexByte(cur, '/'); i > 0 {
		parent = cur[:i]
	}
	if serversOnly && parent != "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(env.Ctx, completeTimeout)
	defer cancel()
	cenv := *env
	cenv.Ctx = ctx
	inv := &invocation{dial: dial}
	c, err := connect(&cenv, inv)
	if err != nil {
		return nil
	}
	defer c.Close()

	var out []string
	switch {
	case parent == "":
		entries, _ := c.List(ctx, "/")
		for _, e := range entries {
			if !strings.HasPrefix(e.Path, cur) {
				continue
			}
			if serversOnly {
				out = append(out, e.Path)
			} else {
				out = append(out, e.Path+"/")
			}
		}
	case anchorfs.InFS(parent):
		entries, _ := c.List(ctx, parent)
		for _, e := range entries {
			name, ok := childName(parent, e.Path)
			if !ok || strings.Contains(name, "/") || !strings.HasPrefix(e.Path, cur) {
				continue
			}
			if e.Kind == client.KindDir {
				out = append(out, e.Path+"/")
			} else {
				out = append(out, e.Path)
			}
		}
	default:
		// The whole subtree in one listing tells which children have
		// children of their own.
		entries, _ := c.List(ctx, parent+"/...")
		hasChildren := map[string]bool{}
		var names []string
		for _, e := range entries {
			rel, ok := childName(parent, e.Path)
			if !ok {
				continue
			}
			name, _, deeper := strings.Cut(rel, "/")
			if _, seen := hasChildren[name]; !seen {
				names = append(names, name)
			}
			hasChildren[name] = hasChildren[name] || deeper
		}
		sort.Strings(names)
		for _, name := range names {
			p := parent + "/" + name
			if !strings.HasPrefix(p, cur) {
				continue
			}
			if hasChildren[name] {
				p += "/"
			}
			out = append(out, p)
		}
	}
	return out
}

// childName is the part of path below parent, if path is below it.
func childName(parent, path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, parent+"/")
	return rest, ok && rest != ""
}

var completionScripts = map[string]string{
	"bash": bashCompletion,
	"zsh":  zshCompletion,
	"fish": fishCompletion,
}

// bashCompletion rebuilds the words from COMP_LINE up to the cursor, split
// on blanks only, so that a URL such as circuit://host:port/... stays one
// word whatever COMP_WORDBREAKS says; then, since bash replaces only the
// part of the current word after its last word break, it strips that part's
// prefix from the candidates.
const bashCompletion = `# bash completion for circuit; generated by: circuit completion bash
_circuit() {
    local line=${COMP_LINE:0:COMP_POINT}
    local -a words
    read -r -a words <<<"$line"
    if [[ ${#words[@]} -eq 0 || $line =~ [[:blank:]]$ ]]; then
        words+=("")
    fi
    local cur=${words[${#words[@]}-1]}
    local prog=${words[0]:-circuit}
    local -a cands
    mapfile -t cands < <("$prog" completion __complete -- "${words[@]:1}" 2>/dev/null)
    COMPREPLY=()
    case ${cands[0]} in
    :files)
        compopt -o filenames 2>/dev/null
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        ;;
    :dirs)
        compopt -o filenames 2>/dev/null
        mapfile -t COMPREPLY < <(compgen -d -- "$cur")
        ;;
    *)
        COMPREPLY=("${cands[@]}")
        if [[ ${#COMPREPLY[@]} -eq 1 && ( ${COMPREPLY[0]} == */ || ${COMPREPLY[0]} == *: ) ]]; then
            compopt -o nospace 2>/dev/null
        fi
        ;;
    esac
    if [[ $cur == *[$COMP_WORDBREAKS]* ]]; then
        local tail=${cur##*[$COMP_WORDBREAKS]}
        local head=${cur:0:${#cur}-${#tail}}
        local i
        for i in "${!COMPREPLY[@]}"; do
            COMPREPLY[i]=${COMPREPLY[i]#"$head"}
        done
    fi
    return 0
}
complete -F _circuit circuit
`

// zshCompletion works both from $fpath (as the autoloaded function
// _circuit) and when sourced after compinit.
const zshCompletion = `#compdef circuit
# zsh completion for circuit; generated by: circuit completion zsh
_circuit() {
    local -a cands slash plain
    local c out
    out=$(${words[1]} completion __complete -- "${(@)words[2,CURRENT]}" 2>/dev/null) || return 1
    cands=("${(@f)out}")
    case ${cands[1]} in
    :files) _files; return ;;
    :dirs) _files -/; return ;;
    esac
    for c in $cands; do
        [[ -z $c ]] && continue
        if [[ $c == */ || $c == *: ]]; then slash+=("$c"); else plain+=("$c"); fi
    done
    (( ${#slash} )) && compadd -Q -S '' -- "${slash[@]}"
    (( ${#plain} )) && compadd -Q -- "${plain[@]}"
    return 0
}
if [[ ${funcstack[1]} == _circuit ]]; then
    _circuit "$@"
else
    compdef _circuit circuit
fi
`

const fishCompletion = `# fish completion for circuit; generated by: circuit completion fish
function __circuit_complete
    set -l words (commandline -opc)
    set -l cur (commandline -ct)
    set -l cands ($words[1] completion __complete -- $words[2..-1] "$cur" 2>/dev/null)
    switch "$cands[1]"
        case :files
            __fish_complete_path "$cur"
        case :dirs
            __fish_complete_directories "$cur"
        case '*'
            printf '%s\n' $cands
    end
end
complete -c circuit -f -a '(__circuit_complete)'
`
