package spool

import (
	"io"
	"os"
)

// segFile is the file of the active segment, as Append writes it: appended to, fsynced, and
// at the end trimmed to what was written and closed.
type segFile interface {
	io.Writer // appends
	Sync() error
	// Trim gives back the space reserved beyond the written bytes (see mmapFile), so that a
	// segment sealed after it holds its records and nothing else.
	Trim() error
	Close() error
}

// appendFile is a segment file written with write(2), O_APPEND.
type appendFile struct{ *os.File }

func (appendFile) Trim() error { return nil }

// createSegFile opens the active segment file at path for appending: new (excl) or empty.
// Where the platform allows it, the file is a memory-mapped one with segmentBytes reserved
// (mmapFile): an Append then costs a copy, not a system call.
func createSegFile(path string, excl bool, segmentBytes int64) (segFile, error) {
	flag := os.O_CREATE | os.O_RDWR
	if excl {
		flag |= os.O_EXCL
	}
	f, err := os.OpenFile(path, flag, 0o644)
	if err != nil {
		return nil, err
	}
	if mf := mapSegment(f, segmentBytes); mf != nil {
		return mf, nil
	}
	// The end of the file, as O_APPEND would: the file may have been reused, not created.
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return nil, err
	}
	return appendFile{f}, nil
}
