// Package channel is the channel element: a Go-like channel of byte
// messages with capacity Cap, living on one server and usable from
// anywhere. It holds semantics only; the server carries the bytes. The
// subscription elements (@join, @leave) are receive-only channels fed by
// the server.
//
// The rules:
//
//   - A send blocks until a receiver takes the message or a buffer slot is
//     free, as in Go.
//   - A buffered message is at most MaxBuffered (32 KiB). A larger message
//     can only be handed straight to a receiver, streamed without a size
//     limit: on an unbuffered channel (Cap 0) its sender waits for a
//     receiver; on a buffered channel it must find the buffer empty and a
//     receiver waiting, or it fails at once with ErrTooLarge.
//   - Close: buffered messages still drain; then a receive fails with
//     ErrClosed. A send on a closed channel fails with ErrClosed, and so do
//     the senders blocked when it closes.
//   - Scrub aborts: every waiting sender and receiver fails with ErrAborted
//     and buffered messages are dropped.
//   - Delivery is exactly once and whole. A receive takes a message, and the
//     server counts it delivered (NumRecv) only when the receiving client
//     acknowledges it whole; if the receiver goes away first, a buffered
//     message is put back at the head of the channel for the next receiver
//     (a message another receiver took meanwhile may then come before it),
//     and a streamed one fails its sender. A sender that goes away before
//     its message is complete sends nothing. Messages of one sender keep
//     their order.
//
// Peek reports Cap, Closed, Aborted, NumSend (messages accepted) and NumRecv
// (messages delivered).
package channel
