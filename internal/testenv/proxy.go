package testenv

import (
	"net"
	"sync"
	"testing"
	"time"
)

// ProxyMode is what a Proxy does with connections.
type ProxyMode int

const (
	// Pass forwards bytes both ways.
	Pass ProxyMode = iota
	// Reset closes every open connection and every new one at once: the server is down
	// (connection refused or reset, as a client sees a stopped server).
	Reset
	// Blackhole keeps connections open and forwards nothing either way, and accepts new ones
	// that never answer: the server is unreachable (a network partition; clients time out).
	Blackhole
)

// Proxy is a TCP proxy on loopback between a client under test and a shared service, so a
// fault test can cut, stall or delay the service for its own client without touching the
// service other tests use. Its methods are safe for concurrent use.
type Proxy struct {
	target string
	ln     net.Listener

	mu    sync.Mutex
	mode  ProxyMode
	delay time.Duration
	conns map[net.Conn]struct{} // both sides of every open connection
	wake  chan struct{}         // closed when the mode changes
}

// NewProxy starts a proxy to target (host:port) on a free loopback port; it stops when the
// test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: proxy: %v", err)
	}
	p := &Proxy{target: target, ln: ln, conns: map[net.Conn]struct{}{}, wake: make(chan struct{})}
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Addr is the proxy's host:port, to give the client instead of the service's.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Set switches the mode. Reset closes every open connection.
func (p *Proxy) Set(m ProxyMode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = m
	close(p.wake)
	p.wake = make(chan struct{})
	if m == Reset {
		for c := range p.conns {
			c.Close()
		}
		clear(p.conns)
	}
}

// Delay adds d before each chunk of bytes is forwarded, in either direction.
func (p *Proxy) Delay(d time.Duration) {
	p.mu.Lock()
	p.delay = d
	p.mu.Unlock()
}

func (p *Proxy) close() {
	p.ln.Close()
	p.Set(Reset)
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.serve(c)
	}
}

// track registers c as open, or reports false (and closes c) in Reset mode.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == Reset {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) serve(client net.Conn) {
	if !p.track(client) {
		return
	}
	// A blackholed proxy accepts and then says nothing, even to a new connection.
	if !p.pass() {
		return
	}
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		client.Close()
		return
	}
	if !p.track(server) {
		client.Close()
		return
	}
	go p.pipe(server, client)
	p.pipe(client, server)
}

// pass waits while the proxy is blackholed; it reports false once the connection was reset.
func (p *Proxy) pass() bool {
	for {
		p.mu.Lock()
		mode, wake := p.mode, p.wake
		p.mu.Unlock()
		switch mode {
		case Pass:
			return true
		case Reset:
			return false
		}
		<-wake
	}
}

// pipe copies src to dst until either fails, then closes both.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer func() {
		p.mu.Lock()
		delete(p.conns, src)
		delete(p.conns, dst)
		p.mu.Unlock()
		src.Close()
		dst.Close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			d := p.delay
			p.mu.Unlock()
			if d > 0 {
				time.Sleep(d)
			}
			if !p.pass() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
