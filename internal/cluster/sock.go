package cluster

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The socket calls below keep an idle server's wake-ups few and cheap.
//
//   - The kernel takes each beat and acknowledges it, and the watcher reads
//     them only in batches, while its silence is read from the kernel's own
//     record of when data last arrived.
//   - The calls of the idle path (a beat, reading a watch's silence, a
//     gossip datagram sent or received) never block, so they are made as
//     raw system calls. Go's runtime wakes its monitor thread (sysmon) for
//     every ordinary system call made while it sleeps, and the monitor then
//     polls every 20 us for as long as any goroutine runs.
//
// Measured on this machine (docs/PERFORMANCE.md): a reader woken per beat,
// a ticker per watch and the monitor's polling were most of an idle
// server's CPU.

// beatsPerWake is how many beats a watcher's kernel queues before its
// reader wakes to drain them (SO_RCVLOWAT). The end of the connection wakes
// it at once whatever the count.
const beatsPerWake = 64

var oneBeat = []byte{0}

// rawConn returns the socket under conn, if it has one.
func rawConn(conn net.Conn) (syscall.RawConn, bool) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil, false
	}
	rc, err := sc.SyscallConn()
	return rc, err == nil
}

// beat writes one beat on a served watch without blocking: a full send
// buffer means a watcher that stopped reading, and it is left to judge.
func beat(conn net.Conn) error {
	rc, ok := rawConn(conn)
	if !ok {
		conn.SetWriteDeadline(time.Now().Add(watchBeat))
		_, err := conn.Write(oneBeat)
		return err
	}
	var werr error
	err := rc.Write(func(fd uintptr) bool {
		_, _, e := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&oneBeat[0])), 1)
		if e != 0 {
			werr = e
		}
		return true // never wait
	})
	if err != nil {
		return err
	}
	if errors.Is(werr, unix.EAGAIN) {
		return nil
	}
	return werr
}

// quiet makes a held watch's reader wake only every beatsPerWake beats, or
// when the connection ends.
func quiet(conn net.Conn) {
	if rc, ok := rawConn(conn); ok {
		rc.Control(func(fd uintptr) {
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVLOWAT, beatsPerWake)
		})
	}
}

// silentFor tells how long ago the kernel last received data on conn; ok is
// false if it cannot tell.
func silentFor(conn net.Conn) (d time.Duration, ok bool) {
	rc, ok := rawConn(conn)
	if !ok {
		return 0, false
	}
	var info unix.TCPInfo
	var e syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		size := uint32(unix.SizeofTCPInfo)
		_, _, e = unix.RawSyscall6(unix.SYS_GETSOCKOPT, fd, unix.IPPROTO_TCP, unix.TCP_INFO,
			uintptr(unsafe.Pointer(&info)), uintptr(unsafe.Pointer(&size)), 0)
	}); err != nil || e != 0 {
		return 0, false
	}
	return time.Duration(info.Last_data_recv) * time.Millisecond, true
}

// sendTo sends one datagram on udp without blocking, as a raw system call;
// ok is false if it could not be tried that way (the caller then sends as
// usual).
func sendTo(udp *net.UDPConn, b []byte, to netip.AddrPort) (err error, ok bool) {
	rc, err := udp.SyscallConn()
	if err != nil || len(b) == 0 {
		return nil, false
	}
	var sa unsafe.Pointer
	var salen uintptr
	if a := to.Addr().Unmap(); a.Is4() {
		raw := unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: a.As4()}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&raw.Port))[:], to.Port())
		sa, salen = unsafe.Pointer(&raw), unix.SizeofSockaddrInet4
	} else {
		raw := unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: a.As16()}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&raw.Port))[:], to.Port())
		sa, salen = unsafe.Pointer(&raw), unix.SizeofSockaddrInet6
	}
	var e syscall.Errno
	if cerr := rc.Write(func(fd uintptr) bool {
		_, _, e = unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0, uintptr(sa), salen)
		return true
	}); cerr != nil {
		return cerr, true
	}
	switch e {
	case 0:
		return nil, true
	case unix.EAGAIN:
		return nil, false // a full send buffer: wait for room the usual way
	}
	return e, true
}

// recvFrom reads one datagram from udp into buf, waiting for one through
// the runtime's poller but reading it with a raw system call.
func recvFrom(rc syscall.RawConn, buf []byte) (int, netip.AddrPort, error) {
	var n uintptr
	var e syscall.Errno
	var from unix.RawSockaddrAny
	err := rc.Read(func(fd uintptr) bool {
		size := uint32(unix.SizeofSockaddrAny)
		n, _, e = unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0,
			uintptr(unsafe.Pointer(&from)), uintptr(unsafe.Pointer(&size)))
		return e != unix.EAGAIN // EAGAIN: nothing yet, wait
	})
	if err != nil {
		return 0, netip.AddrPort{}, err
	}
	if e != 0 {
		return 0, netip.AddrPort{}, e
	}
	var ap netip.AddrPort
	switch from.Addr.Family {
	case unix.AF_INET:
		raw := (*unix.RawSockaddrInet4)(unsafe.Pointer(&from))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&raw.Port))[:])
		ap = netip.AddrPortFrom(netip.AddrFrom4(raw.Addr), port)
	case unix.AF_INET6:
		raw := (*unix.RawSockaddrInet6)(unsafe.Pointer(&from))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&raw.Port))[:])
		ap = netip.AddrPortFrom(netip.AddrFrom16(raw.Addr), port)
	}
	return int(n), ap, nil
}
