package discover

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/circuit-project/circuit/internal/ident"
)

// Wire format of a discovery packet (all lengths in bytes):
//
//	offset  size  field
//	0       4     magic "CIRC"
//	4       1     version, 1
//	5       1     type: 1 announce, 2 query
//	6       1     flags: bit 0 set when a tag follows; other bits must be 0
//	7       1     URL length n: 1..255 for announce, 0 for query
//	8       8     nonce, random per packet
//	16      n     URL of the announcing server (UTF-8, circuit://...)
//	16+n    32    HMAC-SHA256 over bytes [0, 16+n), present iff flag bit 0
//
// The packet ends exactly there; any other length is rejected.
const (
	magic      = "CIRC"
	version    = 1
	headerLen  = 16
	maxURLLen  = 255
	tagLen     = sha256.Size
	maxPacket  = headerLen + maxURLLen + tagLen
	flagTagged = 1 << 0
)

type packetType byte

const (
	typeAnnounce packetType = 1
	typeQuery    packetType = 2
)

func (t packetType) String() string {
	switch t {
	case typeAnnounce:
		return "announce"
	case typeQuery:
		return "query"
	}
	return fmt.Sprintf("type %d", byte(t))
}

// packet is a decoded discovery packet.
type packet struct {
	Type  packetType
	Nonce [8]byte
	URL   string // empty for a query
}

// errBadPacket is wrapped by every decoding error.
var errBadPacket = errors.New("bad discovery packet")

// newPacket returns a packet of type t with a fresh random nonce.
func newPacket(t packetType, url string) packet {
	p := packet{Type: t, URL: url}
	if _, err := rand.Read(p.Nonce[:]); err != nil {
		panic(fmt.Sprintf("discover: reading random bytes: %v", err))
	}
	return p
}

// encode serializes p, appending an HMAC-SHA256 tag when key is not empty.
func encode(p packet, key []byte) ([]byte, error) {
	if err := checkContent(p.Type, p.URL); err != nil {
		return nil, fmt.Errorf("discover: encoding %v: %w", p.Type, err)
	}
	b := make([]byte, headerLen, maxPacket)
	copy(b, magic)
	b[4] = version
	b[5] = byte(p.Type)
	if len(key) > 0 {
		b[6] = flagTagged
	}
	b[7] = byte(len(p.URL))
	copy(b[8:16], p.Nonce[:])
	b = append(b, p.URL...)
	if len(key) > 0 {
		b = append(b, tag(key, b)...)
	}
	return b, nil
}

// decode parses and verifies b. With a key, the packet must carry a valid
// tag; without one, it must carry none. decode never panics.
func decode(b, key []byte) (packet, error) {
	if len(b) < headerLen {
		return packet{}, fmt.Errorf("%w: truncated: %d bytes, header is %d", errBadPacket, len(b), headerLen)
	}
	if string(b[:4]) != magic {
		return packet{}, fmt.Errorf("%w: wrong magic %q", errBadPacket, b[:4])
	}
	if b[4] != version {
		return packet{}, fmt.Errorf("%w: unsupported version %d", errBadPacket, b[4])
	}
	flags := b[6]
	if flags&^flagTagged != 0 {
		return packet{}, fmt.Errorf("%w: unknown flags %#x", errBadPacket, flags)
	}
	bodyLen := headerLen + int(b[7])
	want := bodyLen
	if flags&flagTagged != 0 {
		want += tagLen
	}
	if len(b) != want {
		return packet{}, fmt.Errorf("%w: length %d, header says %d", errBadPacket, len(b), want)
	}
	switch tagged := flags&flagTagged != 0; {
	case len(key) > 0 && !tagged:
		return packet{}, fmt.Errorf("%w: missing authentication tag (key mismatch)", errBadPacket)
	case len(key) == 0 && tagged:
		return packet{}, fmt.Errorf("%w: authenticated packet but no key configured (key mismatch)", errBadPacket)
	case tagged && !hmac.Equal(b[bodyLen:], tag(key, b[:bodyLen])):
		return packet{}, fmt.Errorf("%w: wrong authentication tag (key mismatch)", errBadPacket)
	}
	p := packet{Type: packetType(b[5]), URL: string(b[headerLen:bodyLen])}
	copy(p.Nonce[:], b[8:16])
	if err := checkContent(p.Type, p.URL); err != nil {
		return packet{}, fmt.Errorf("%w: %v", errBadPacket, err)
	}
	return p, nil
}

// checkContent validates the type and the URL that goes with it.
func checkContent(t packetType, url string) error {
	switch t {
	case typeQuery:
		if url != "" {
			return errors.New("query carries a URL")
		}
	case typeAnnounce:
		if len(url) > maxURLLen {
			return fmt.Errorf("URL is %d bytes, at most %d allowed", len(url), maxURLLen)
		}
		if _, err := ident.ParseURL(url); err != nil {
			return err
		}
		if !utf8.ValidString(url) || strings.TrimSpace(url) != url {
			return fmt.Errorf("URL %q is not valid UTF-8 without surrounding space", url)
		}
	default:
		return fmt.Errorf("unknown packet type %d", byte(t))
	}
	return nil
}

func tag(key, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return m.Sum(nil)
}
