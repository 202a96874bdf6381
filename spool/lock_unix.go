//go:build unix

package spool

import (
	"fmt"
	"os"
	"syscall"
)

// lockDir takes an exclusive lock on dir's LOCK file so that two processes never share a spool.
func lockDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("spool: %s is in use by another spool: %w", path, err)
	}
	return f, nil
}
