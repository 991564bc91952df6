package wire

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestFramesRoundTrip(t *testing.T) {
	big := bytes.Repeat([]byte("x"), MaxFrame+10)
	cases := []struct {
		name    string
		tag     byte
		payload []byte
		frames  int // a payload over MaxFrame is split
	}{
		{"empty", FrameStdinEnd, nil, 1},
		{"line", FrameStdout, []byte("hello\n"), 1},
		{"over the limit", FrameStderr, big, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := NewFrameWriter(&b).Write(tc.tag, tc.payload); err != nil {
				t.Fatal(err)
			}
			var got []byte
			var buf []byte
			for i := 0; i < tc.frames; i++ {
				tag, p, grown, err := ReadFrame(&b, buf)
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				buf = grown
				if tag != tc.tag {
					t.Fatalf("frame %d: tag %q, want %q", i, tag, tc.tag)
				}
				got = append(got, p...)
			}
			if !bytes.Equal(got, tc.payload) {
				t.Fatalf("payload of %d bytes came back as %d", len(tc.payload), len(got))
			}
			if _, _, _, err := ReadFrame(&b, buf); err != io.EOF {
				t.Fatalf("after the last frame: %v, want EOF", err)
			}
		})
	}
}

func TestBadFrames(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"too long", []byte{'o', 0xff, 0, 0, 0}, ErrBadPreamble},
		{"cut in the header", []byte{'o', 0}, io.ErrUnexpectedEOF},
		{"cut in the payload", []byte{'o', 0, 0, 0, 4, 'a'}, io.ErrUnexpectedEOF},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, _, err := ReadFrame(bytes.NewReader(tc.in), nil); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{'o', 0, 0, 0, 2, 'h', 'i'})
	f.Add([]byte{'x', 0, 0, 0, 0})
	f.Add([]byte{'e', 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		var buf []byte
		for i := 0; i < 1000; i++ {
			_, p, grown, err := ReadFrame(r, buf)
			if err != nil {
				return
			}
			if len(p) > MaxFrame {
				t.Fatalf("a payload of %d bytes", len(p))
			}
			buf = grown
		}
	})
}
