package wire

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
)

// StreamHeader follows the preamble (and TLS) of a stream connection and
// names the element stream it is for.
type StreamHeader struct {
	Path   string // the element's anchor
	Stream string // "stdin", "stdout" or "stderr"
	Serial uint64 // the element instance, 0 for whatever is at Path
	// File is a host path on the server, for the file streams of circuit
	// cp ("put", "puttar", "get" on the server's own anchor).
	File string `json:",omitempty"`
	// Local is the client's side of a copy (its local path), for the
	// server's records only.
	Local string `json:",omitempty"`
}

// maxStreamHeader bounds the header read from the wire.
const maxStreamHeader = 8 << 10

// WriteStreamHeader sends h, length-prefixed, and with it, in the same
// write, what follows it.
func WriteStreamHeader(w io.Writer, h StreamHeader, follow ...[]byte) error {
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	if len(b) > maxStreamHeader {
		return fmt.Errorf("stream header of %d bytes is too long", len(b))
	}
	buf := make([]byte, 2, 2+len(b))
	binary.BigEndian.PutUint16(buf, uint16(len(b)))
	buf = append(buf, b...)
	for _, f := range follow {
		buf = append(buf, f...)
	}
	_, err = w.Write(buf)
	return err
}

// ReadStreamHeader reads one header.
func ReadStreamHeader(r io.Reader) (StreamHeader, error) {
	var h StreamHeader
	var n [2]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return h, fmt.Errorf("reading stream header: %w", err)
	}
	size := int(binary.BigEndian.Uint16(n[:]))
	if size > maxStreamHeader {
		return h, fmt.Errorf("%w: stream header of %d bytes", ErrBadPreamble, size)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return h, fmt.Errorf("reading stream header: %w", err)
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return h, fmt.Errorf("%w: stream header: %v", ErrBadPreamble, err)
	}
	return h, nil
}
