// Package wire owns how a connection to a circuit server begins.
//
// The server speaks first. On every TCP connection to its one port it sends
// a greeting: a fixed magic value, its ID, whether it has a key, and a
// fresh random challenge. The dialler checks the magic (a peer that does not
// greet as a circuit server is dropped without a byte of what it sent being
// shown), then answers with a fixed-size preamble that says what the
// connection is for (gossip, RPC, a byte stream or a watch), which server it
// is meant for, and, when the cluster has a key, a MAC under the key over
// the preamble and the greeting. Because the greeting's challenge is new on
// every connection, a preamble captured from the wire is worth nothing on
// another: it is refused. The server answers with a status: OK, or a
// refusal with a reason. After OK, an RPC or stream connection is wrapped in
// mutually verified TLS 1.3 when a key is in use; gossip connections are
// encrypted by the membership library itself.
//
// A preamble naming another server is relayed: the receiving server dials
// that member's advertised address, checks that the server greeting there is
// the one named, signs a new preamble (its hop count raised) against that
// server's challenge, and splices the two connections. TLS then runs end to
// end between the client and the hosting server, so a relay never decrypts.
package wire

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/circuit-project/circuit/internal/ident"
	"github.com/circuit-project/circuit/internal/security"
)

// Kind says what a connection carries.
type Kind byte

const (
	KindRPC    Kind = 'G' // gRPC control traffic
	KindGossip Kind = 'M' // membership library streams
	// KindGossipWAN is a stream of the datacenter pool, the one that
	// spans datacenters (package cluster, wan.go).
	KindGossipWAN Kind = 'N'
	KindStream    Kind = 'S' // a raw byte stream of an element
	// KindWatch is a liveness connection: it carries nothing, and the
	// watcher learns from its end that the watched server's process died.
	KindWatch Kind = 'W'
)

// TLS tells whether a connection of this kind runs TLS after its preamble
// when the cluster has a key: RPC and streams do; gossip is encrypted by the
// membership library, and a watch carries nothing.
func (k Kind) TLS() bool { return k == KindRPC || k == KindStream }

func (k Kind) valid() bool {
	return k == KindRPC || k == KindGossip || k == KindGossipWAN || k == KindStream || k == KindWatch
}

const (
	// magic opens greetings and preambles: "CIR" and the protocol
	// version. Version 1 had no greeting.
	magic     = "CIR2"
	oldMagic  = "CIR1"
	flagKeyed = 1
	flagCred  = 2 // with flagKeyed: the proof is a credential's
	// flagOrigin: a relay's preamble names the original dialler's address
	// (a byte of length, then the address) after the preamble.
	flagOrigin = 4

	// GreetingLen is the size of a greeting: magic, flags, server ID,
	// challenge.
	GreetingLen = 4 + 1 + 8 + 16
	// PreambleLen is the size of a preamble: magic, kind, flags, hop,
	// target ID, MAC.
	PreambleLen = 4 + 1 + 1 + 1 + 8 + 32
	macOffset   = PreambleLen - 32
	hopOffset   = 6
)

// Greeting is what a server sends first on every connection.
type Greeting struct {
	ID    ident.ID // the greeting server
	Keyed bool     // it requires the cluster key
	raw   [GreetingLen]byte
}

// NewGreeting makes a greeting of server id with a fresh challenge.
func NewGreeting(id ident.ID, keyed bool) Greeting {
	g := Greeting{ID: id, Keyed: keyed}
	b := g.raw[:]
	copy(b, magic)
	if keyed {
		b[4] = flagKeyed
	}
	binary.BigEndian.PutUint64(b[5:13], uint64(id))
	if _, err := rand.Read(b[13:]); err != nil {
		panic(fmt.Sprintf("wire: reading random bytes: %v", err))
	}
	return g
}

// Bytes is the greeting as sent.
func (g Greeting) Bytes() []byte { return g.raw[:] }

// ErrNotCircuit is wrapped by errors about peers that did not greet as a
// circuit server does. Such errors never quote what the peer sent.
var ErrNotCircuit = errors.New("not a circuit server")

// ReadGreeting reads a server's greeting. What the peer sent is never
// shown: the peer may be any service, and its first bytes may be its
// secrets.
func ReadGreeting(r io.Reader) (Greeting, error) {
	var g Greeting
	if _, err := io.ReadFull(r, g.raw[:]); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return g, fmt.Errorf("%w: it sent no circuit greeting in time (a server of circuit before protocol 2 does not greet)", ErrNotCircuit)
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return g, fmt.Errorf("%w: it closed before a whole greeting", ErrNotCircuit)
		}
		return g, fmt.Errorf("reading greeting: %w", err)
	}
	b := g.raw[:]
	if string(b[:4]) != magic || b[4]&^flagKeyed != 0 {
		return g, fmt.Errorf("%w: it did not greet as one (what it sent is not shown)", ErrNotCircuit)
	}
	g.Keyed = b[4]&flagKeyed != 0
	g.ID = ident.ID(binary.BigEndian.Uint64(b[5:13]))
	return g, nil
}

// Preamble is the dialler's answer to the greeting.
type Preamble struct {
	Kind   Kind
	Keyed  bool     // a MAC under the cluster key follows, or a credential's signature
	Hop    uint8    // 0 from the original dialler, 1 once relayed
	Target ident.ID // 0: the receiving server itself
	// Cred is set when the dialler proves itself with a credential rather
	// than the key: the preamble is then followed by the credential's
	// certificate and its signature.
	Cred bool
	// Claims are the credential's, once Check has accepted it.
	Claims *security.Claims
	// Key is, once Check has accepted a keyed preamble, the key it was
	// made under: TLS then presents that key's certificate.
	Key *security.Key
	// Origin is, in a relay's preamble, the address of the dialler whose
	// connection it relays, covered by the relay's MAC: the target's
	// records name who asked from where, not the relay.
	Origin string
	raw    [PreambleLen]byte
	cert   []byte
	sig    []byte
}

// MaxOriginLen bounds a relayed preamble's origin address.
const MaxOriginLen = 64

// MaxCertLen bounds the certificate a credential's preamble carries.
const MaxCertLen = 4096

// NewPreamble builds a preamble in answer to greeting g, signed by auth
// (nil: no key).
func NewPreamble(kind Kind, target ident.ID, hop uint8, g Greeting, auth security.Auth) Preamble {
	return newPreamble(kind, target, hop, g, auth, "")
}

// NewRelayPreamble builds the preamble with which a relay (hop above 0)
// passes on a connection from the dialler at origin.
func NewRelayPreamble(kind Kind, target ident.ID, hop uint8, g Greeting, auth security.Auth, origin string) Preamble {
	if len(origin) > MaxOriginLen {
		origin = ""
	}
	return newPreamble(kind, target, hop, g, auth, origin)
}

func newPreamble(kind Kind, target ident.ID, hop uint8, g Greeting, auth security.Auth, origin string) Preamble {
	p := Preamble{Kind: kind, Target: target, Hop: hop, Keyed: auth != nil, Origin: origin}
	b := p.raw[:]
	copy(b, magic)
	b[4] = byte(kind)
	if auth != nil {
		b[5] = flagKeyed
	}
	if origin != "" {
		b[5] |= flagOrigin
	}
	b[hopOffset] = hop
	binary.BigEndian.PutUint64(b[7:15], uint64(target))
	if auth == nil {
		return p
	}
	cert, sign := auth.Signer()
	if cert == nil {
		copy(b[macOffset:], sign(p.signed(g)))
		return p
	}
	p.Cred, p.cert, p.Origin = true, cert, ""
	b[5] = b[5]&^flagOrigin | flagCred // a credential relays nothing
	p.sig = sign(p.signed(g))
	return p
}

// signed is what the MAC or signature covers: the greeting answered (the
// server's ID and challenge), the whole preamble before the MAC and, with a
// credential, its certificate, or from a relay, the origin.
func (p *Preamble) signed(g Greeting) []byte {
	s := make([]byte, 0, GreetingLen+macOffset+len(p.cert)+len(p.Origin))
	s = append(s, g.raw[:]...)
	s = append(s, p.raw[:macOffset]...)
	s = append(s, p.cert...)
	return append(s, p.Origin...)
}

// ErrBadPreamble is wrapped by errors about malformed preambles.
var ErrBadPreamble = errors.New("not a circuit connection")

// ReadPreamble reads exactly one preamble, with its credential if it
// carries one.
func ReadPreamble(r io.Reader) (Preamble, error) {
	var p Preamble
	if _, err := io.ReadFull(r, p.raw[:]); err != nil {
		return p, fmt.Errorf("reading preamble: %w", err)
	}
	b := p.raw[:]
	if string(b[:4]) == oldMagic {
		return p, fmt.Errorf("%w: protocol 1, from a circuit older than this server (protocol 2): upgrade it", ErrBadPreamble)
	}
	if string(b[:4]) != magic {
		return p, fmt.Errorf("%w: bad magic %q", ErrBadPreamble, b[:4])
	}
	p.Kind = Kind(b[4])
	if !p.Kind.valid() {
		return p, fmt.Errorf("%w: unknown kind %q", ErrBadPreamble, b[4])
	}
	if b[5]&^(flagKeyed|flagCred|flagOrigin) != 0 || b[5]&(flagKeyed|flagCred) == flagCred || b[5]&(flagCred|flagOrigin) == flagCred|flagOrigin {
		return p, fmt.Errorf("%w: unknown flags %#x", ErrBadPreamble, b[5])
	}
	p.Keyed = b[5]&flagKeyed != 0
	p.Cred = b[5]&flagCred != 0
	p.Hop = b[hopOffset]
	p.Target = ident.ID(binary.BigEndian.Uint64(b[7:15]))
	if b[5]&flagOrigin != 0 {
		if p.Hop == 0 {
			return p, fmt.Errorf("%w: an origin from a dialler that is no relay", ErrBadPreamble)
		}
		var n [1]byte
		if _, err := io.ReadFull(r, n[:]); err != nil {
			return p, fmt.Errorf("reading preamble's origin: %w", err)
		}
		if n[0] == 0 || n[0] > MaxOriginLen {
			return p, fmt.Errorf("%w: an origin of %d bytes (limit %d)", ErrBadPreamble, n[0], MaxOriginLen)
		}
		o := make([]byte, n[0])
		if _, err := io.ReadFull(r, o); err != nil {
			return p, fmt.Errorf("reading preamble's origin: %w", err)
		}
		p.Origin = string(o)
	}
	if !p.Cred {
		return p, nil
	}
	if !bytes.Equal(b[macOffset:], make([]byte, PreambleLen-macOffset)) {
		return p, fmt.Errorf("%w: a credential's preamble has a MAC", ErrBadPreamble)
	}
	var n [2]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return p, fmt.Errorf("reading preamble's credential: %w", err)
	}
	size := int(binary.BigEndian.Uint16(n[:]))
	if size == 0 || size > MaxCertLen {
		return p, fmt.Errorf("%w: a credential of %d bytes (limit %d)", ErrBadPreamble, size, MaxCertLen)
	}
	rest := make([]byte, size+ed25519.SignatureSize)
	if _, err := io.ReadFull(r, rest); err != nil {
		return p, fmt.Errorf("reading preamble's credential: %w", err)
	}
	p.cert, p.sig = rest[:size], rest[size:]
	return p, nil
}

// Bytes is the preamble as sent.
func (p Preamble) Bytes() []byte {
	if p.Origin != "" {
		return append(append(p.raw[:], byte(len(p.Origin))), p.Origin...)
	}
	if !p.Cred {
		return p.raw[:]
	}
	out := make([]byte, 0, PreambleLen+2+len(p.cert)+len(p.sig))
	out = append(out, p.raw[:]...)
	out = binary.BigEndian.AppendUint16(out, uint16(len(p.cert)))
	out = append(out, p.cert...)
	return append(out, p.sig...)
}

// Check verifies the preamble, an answer to greeting g, against the
// receiver's key (nil: none), and records the claims of a credential it
// accepts. The refusal says which side lacks or differs in key. A preamble
// signed for another connection (replayed) fails as a wrong key does. A
// credential opens no gossip connection: only servers, which hold the key,
// gossip.
func (p *Preamble) Check(g Greeting, key Acceptor) *Refusal {
	if k, ok := key.(*security.Key); ok && k == nil {
		key = nil // a nil key is no key
	}
	if r, ok := key.(*security.Ring); ok && r == nil {
		key = nil
	}
	switch {
	case key == nil && p.Keyed:
		return &Refusal{Code: CodeNoKeyHere, Msg: "this server runs without a key, but the dialler uses one"}
	case key != nil && !p.Keyed:
		return &Refusal{Code: CodeKeyRequired, Msg: "this server requires the cluster key (-hmac FILE or CIRCUIT_HMAC) or a credential"}
	case key == nil:
		return nil
	case p.Cred && (p.Kind == KindGossip || p.Kind == KindGossipWAN):
		return &Refusal{Code: CodeDenied, Msg: "a credential does not open gossip connections: only servers, with the cluster key, gossip"}
	case p.Cred:
		claims, k, err := key.AcceptCredential(p.cert, p.signed(g), p.sig)
		if err != nil {
			return &Refusal{Code: CodeBadKey, Msg: "authentication failed: " + err.Error()}
		}
		p.Claims, p.Key = &claims, k
		return nil
	}
	if p.Key = key.AcceptMAC(p.signed(g), p.raw[macOffset:]); p.Key == nil {
		return &Refusal{Code: CodeBadKey, Msg: "authentication failed: the dialler's key differs from this server's (or its preamble was made for another connection)"}
	}
	return nil
}

// Acceptor checks the proof of a preamble: one key (*security.Key), or a
// server's keyring (*security.Ring), which accepts any key installed.
type Acceptor interface {
	// AcceptMAC returns the key under which tag is b's MAC, or nil.
	AcceptMAC(b, tag []byte) *security.Key
	// AcceptCredential verifies a credential's certificate and its
	// signature over msg, and returns its claims and the key whose
	// authority made it.
	AcceptCredential(der, msg, sig []byte) (security.Claims, *security.Key, error)
}

// Code is a status code answering a preamble.
type Code byte

const (
	CodeOK            Code = 0
	CodeUnknownServer Code = 1 // the target is not a member here
	CodeKeyRequired   Code = 2
	CodeBadKey        Code = 3
	CodeNoKeyHere     Code = 4
	CodeUnreachable   Code = 5 // the relay could not reach the target
	// The codes from CodeBadRequest on refuse a stream that reached its
	// server: one for each class of failure in package fault, which maps
	// them.
	CodeBadRequest   Code = 6
	CodeNotFound     Code = 7
	CodeExists       Code = 8
	CodePrecondition Code = 9
	CodeDenied       Code = 10
	CodeRemote       Code = 11
	CodeClosed       Code = 12
)

// Refusal is a non-OK answer to a preamble.
type Refusal struct {
	Code Code
	Msg  string
}

func (r *Refusal) Error() string { return r.Msg }

// NotHere reports whether the server refused because the target server is
// not it: the address belongs to another server now.
func (r *Refusal) NotHere() bool { return r.Code == CodeUnknownServer }

// IsAuth reports whether the refusal is about keys.
func (r *Refusal) IsAuth() bool {
	return r.Code == CodeKeyRequired || r.Code == CodeBadKey || r.Code == CodeNoKeyHere
}

// WriteStatus answers a preamble: nil for OK.
func WriteStatus(w io.Writer, r *Refusal) error {
	if r == nil {
		_, err := w.Write([]byte{byte(CodeOK)})
		return err
	}
	msg := r.Msg
	if len(msg) > 255 {
		msg = msg[:255]
	}
	_, err := w.Write(append([]byte{byte(r.Code), byte(len(msg))}, msg...))
	return err
}

// ReadStatus reads the answer to a preamble; a refusal is returned as a
// *Refusal error.
func ReadStatus(r io.Reader) error {
	var b [2]byte
	if _, err := io.ReadFull(r, b[:1]); err != nil {
		return fmt.Errorf("reading answer to preamble: %w", err)
	}
	if Code(b[0]) == CodeOK {
		return nil
	}
	if _, err := io.ReadFull(r, b[1:2]); err != nil {
		return fmt.Errorf("reading refusal: %w", err)
	}
	msg := make([]byte, b[1])
	if _, err := io.ReadFull(r, msg); err != nil {
		return fmt.Errorf("reading refusal: %w", err)
	}
	return &Refusal{Code: Code(b[0]), Msg: string(msg)}
}

// HandshakeTimeout bounds the dialler's greeting, preamble exchange and TLS
// handshake.
const HandshakeTimeout = 5 * time.Second

// AuthTimeout bounds, on the accepting side, how long a connection may take
// from its accept to being authenticated (preamble checked and, where due,
// TLS done). It is shorter than HandshakeTimeout so that a relay's answer
// still reaches its client in time.
const AuthTimeout = 3 * time.Second

// Dial connects to the server at addr for a connection of the given kind
// meant for target (0: that server itself), and returns it ready for use:
// greeting read, preamble answered and, for RPC and streams under a key, TLS
// established.
func Dial(ctx context.Context, addr string, kind Kind, target ident.ID, auth security.Auth) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	conn, err := Open(ctx, c, kind, target, auth)
	if err != nil {
		c.Close()
		return nil, err
	}
	return conn, nil
}

// Open begins a connection of the given kind on an established TCP
// connection: it reads the server's greeting, sends the preamble answering
// it, reads the answer and wraps the connection in TLS when that is due.
func Open(ctx context.Context, c net.Conn, kind Kind, target ident.ID, auth security.Auth) (net.Conn, error) {
	deadline := time.Now().Add(HandshakeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.SetDeadline(deadline)
	g, err := ReadGreeting(c)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write(NewPreamble(kind, target, 0, g, auth).Bytes()); err != nil {
		return nil, fmt.Errorf("sending preamble: %w", err)
	}
	if err := ReadStatus(c); err != nil {
		return nil, err
	}
	if auth == nil || !kind.TLS() {
		c.SetDeadline(time.Time{})
		return c, nil
	}
	tc := tls.Client(c, auth.ClientTLS())
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("TLS handshake: %w", security.ExplainTLS(err))
	}
	c.SetDeadline(time.Time{})
	return tc, nil
}
