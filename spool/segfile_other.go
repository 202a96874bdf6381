//go:build !linux

package spool

import "os"

// mapSegment is nil here: segments are written with write(2).
func mapSegment(*os.File, int64) segFile { return nil }
