//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package timescale

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
)

// peerClosed reports whether the other end has closed or reset c, without reading from it
// or waiting: a non-blocking peek at the socket. It reports false when it cannot tell, and
// when bytes are waiting (an idle connection's server may have sent a notice, or an error
// before closing, which pgx reads with the next statement).
//
// The peek runs under RawConn.Control, not Read: pgx may have left a background reader
// blocked in a Read of the connection (started for a slow write, stopped only once that Read
// returns), and RawConn.Read would wait for it, forever on an idle connection.
func peerClosed(c net.Conn) bool {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	closed := false
	var b [1]byte
	_ = raw.Control(func(fd uintptr) {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		closed = (n == 0 && err == nil) || errors.Is(err, syscall.ECONNRESET)
	})
	return closed
}
