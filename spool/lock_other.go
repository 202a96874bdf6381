//go:build !unix

package spool

import "os"

// lockDir opens dir's LOCK file; on this platform it does not lock it.
func lockDir(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
}
