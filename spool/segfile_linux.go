package spool

import (
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// mmapFile is a segment file with its space reserved (fallocate) and mapped shared into
// memory: Write copies the frame into the mapping. The bytes are in the operating system's
// page cache as soon as they are copied, so a crash of the process (kill -9) loses nothing
// that Write returned, as with write(2); Sync (fsync) writes the mapping's dirty pages to disk.
// Since the space is allocated up front, a full disk fails the segment's creation (and then
// the spool falls back to write(2), which reports it), never a write into the mapping, which
// would kill the process with SIGBUS.
//
// The reserved tail is zeros: after a crash, Open takes it for the torn tail of an open
// segment and truncates it. Trim truncates it before a segment is sealed.
type mmapFile struct {
	f   *os.File
	off int64 // bytes written

	mu sync.Mutex // guards m: Trim and Close may race (Write runs under the spool's wmu, on the active file)
	m  []byte     // nil once unmapped
}

// mapSegment returns f mapped with size bytes reserved, or nil when that is not possible here
// (the file is not empty, the file system cannot reserve space, the disk is full): the caller
// then writes f with write(2).
func mapSegment(f *os.File, size int64) *mmapFile {
	st, err := f.Stat()
	if err != nil || st.Size() != 0 || size <= 0 || size > 1<<40 {
		return nil
	}
	if err := unix.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
		return nil
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		f.Truncate(0)
		return nil
	}
	return &mmapFile{f: f, m: m}
}

// Write appends p: into the mapping while it fits, past it (a record larger than the segment,
// which gets one of its own) with pwrite.
func (mf *mmapFile) Write(p []byte) (int, error) {
	if mf.m == nil {
		return 0, fmt.Errorf("spool: write to %s: %w", mf.f.Name(), os.ErrClosed)
	}
	if end := mf.off + int64(len(p)); end <= int64(len(mf.m)) {
		copy(mf.m[mf.off:end], p)
		mf.off = end
		return len(p), nil
	}
	n, err := mf.f.WriteAt(p, mf.off)
	mf.off += int64(n)
	return n, err
}

// Sync writes the written bytes to disk (fsync writes a file's pages dirtied through a shared
// mapping too). After Close it fails with os.ErrClosed.
func (mf *mmapFile) Sync() error { return mf.f.Sync() }

// Trim unmaps the file and truncates it to the bytes written.
func (mf *mmapFile) Trim() error {
	mf.mu.Lock()
	defer mf.mu.Unlock()
	if mf.m == nil {
		return nil
	}
	err := unix.Munmap(mf.m)
	mf.m = nil
	if terr := mf.f.Truncate(mf.off); err == nil {
		err = terr
	}
	return err
}

func (mf *mmapFile) Close() error {
	err := mf.Trim()
	if cerr := mf.f.Close(); err == nil {
		err = cerr
	}
	return err
}
