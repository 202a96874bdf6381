package testenv

import (
	"bufio"
	"net"
	"testing"
	"time"
)

// echo is a line echo server on loopback.
func echo(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					c.Write([]byte(line))
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// roundTrip sends a line through c and reads the echo within d.
func roundTrip(c net.Conn, d time.Duration) error {
	c.SetDeadline(time.Now().Add(d))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	_, err := bufio.NewReader(c).ReadString('\n')
	return err
}

func TestProxyModes(t *testing.T) {
	p := NewProxy(t, echo(t))
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := roundTrip(c, 2*time.Second); err != nil {
		t.Fatalf("pass: %v", err)
	}

	p.Set(Blackhole)
	if err := roundTrip(c, 200*time.Millisecond); err == nil {
		t.Fatal("blackhole: the echo came through")
	}
	c2, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if err := roundTrip(c2, 200*time.Millisecond); err == nil {
		t.Fatal("blackhole: a new connection was answered")
	}
	// Back to Pass: what was held is delivered.
	p.Set(Pass)
	c2.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := bufio.NewReader(c2).ReadString('\n'); err != nil {
		t.Fatalf("after blackhole: %v", err)
	}

	// c's echo held by the blackhole arrived too; a fresh connection for Reset.
	c5, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c5.Close()
	if err := roundTrip(c5, 2*time.Second); err != nil {
		t.Fatalf("pass: %v", err)
	}
	p.Set(Reset)
	if err := roundTrip(c5, 2*time.Second); err == nil {
		t.Fatal("reset: the open connection still answers")
	}
	c3, err := net.Dial("tcp", p.Addr())
	if err == nil {
		err = roundTrip(c3, 2*time.Second)
		c3.Close()
	}
	if err == nil {
		t.Fatal("reset: a new connection was answered")
	}

	p.Set(Pass)
	p.Delay(100 * time.Millisecond)
	c4, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c4.Close()
	start := time.Now()
	if err := roundTrip(c4, 2*time.Second); err != nil {
		t.Fatalf("delay: %v", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("round trip took %v through a 100ms delay each way", d)
	}
}
