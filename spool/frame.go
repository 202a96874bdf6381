package spool

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// A frame is a 4-byte little-endian length L, a 4-byte little-endian CRC-32C of the length
// bytes and the record, then the L bytes of the record. The CRC covers the length so that a
// damaged length is caught, and a zeroed header (a zero-filled tail after a power loss) never
// passes: the CRC of four zero bytes is not zero.
const frameHeader = 8

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// frameSize is the bytes a record of n bytes takes in a segment.
func frameSize(n int) int64 { return frameHeader + int64(n) }

// appendFrame appends the frame of rec to b.
func appendFrame(b, rec []byte) []byte {
	h := len(b)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(rec)))
	b = binary.LittleEndian.AppendUint32(b, frameCRC(b[h:h+4], rec))
	return append(b, rec...)
}

func frameCRC(length, rec []byte) uint32 {
	return crc32.Update(crc32.Update(0, castagnoli, length), castagnoli, rec)
}

// A segment file is named by the sequence number of its first record. It is "open" while it is
// appended to and until it is fsynced after that; then it is renamed "sealed". Only an open
// segment can have a torn tail: any damage in a sealed one is corruption.
const (
	sealedExt = ".seg"
	openExt   = ".open"
)

func segName(base Seq, sealed bool) string {
	ext := openExt
	if sealed {
		ext = sealedExt
	}
	return fmt.Sprintf("%020d%s", uint64(base), ext)
}

func segPath(dir string, base Seq, sealed bool) string {
	return filepath.Join(dir, segName(base, sealed))
}

// parseSegName returns the base of a segment file name; ok is false for other files.
func parseSegName(name string) (base Seq, sealed, ok bool) {
	digits, sealed := strings.CutSuffix(name, sealedExt)
	if !sealed {
		var found bool
		if digits, found = strings.CutSuffix(name, openExt); !found {
			return 0, false, false
		}
	}
	if len(digits) != 20 {
		return 0, false, false
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return 0, false, false
	}
	return Seq(n), sealed, true
}

// scanResult is what scanning a segment file found.
type scanResult struct {
	n    int   // complete records
	end  int64 // offset just past the last complete record
	size int64 // the file's size
	// bad is the reason the frame at end is not a complete record ("" when end == size).
	bad string
	// torn: the damage at end looks like an interrupted write of the log's tail (a frame cut
	// short by the end of the file, a zero-filled tail, or a last frame whose bytes did not
	// all reach the disk), not like damage in the middle of the log.
	torn bool
}

// scanSegment reads the frames of the file at path, checking each CRC, and stops at the first
// frame that is not complete and intact. It never reads a frame's body into memory larger than
// the file holds, whatever its length field says.
func scanSegment(path string) (scanResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return scanResult{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return scanResult{}, err
	}
	r := scanResult{size: st.Size()}
	rd := newFrameReader(bufio.NewReaderSize(f, 256<<10))
	for {
		rec, reason, err := rd.next(r.size - r.end)
		if err == errEnd {
			return r, nil
		}
		if err != nil {
			return r, err
		}
		if reason != "" {
			r.bad = reason
			r.torn = reason != badCRC || tornCRC(f, r.end, len(rec), r.size)
			return r, nil
		}
		r.n++
		r.end += frameSize(len(rec))
	}
}

const (
	badShortHeader = "header cut short"
	badShortBody   = "record cut short"
	badCRC         = "checksum mismatch"
)

// tornCRC says whether a frame at off with a bad checksum is the torn tail of the log: it is
// the last frame of the file, or everything from off to the end of the file is zero.
func tornCRC(f *os.File, off int64, n int, size int64) bool {
	if off+frameSize(n) == size {
		return true
	}
	buf := make([]byte, 64<<10)
	for pos := off; pos < size; {
		k, err := f.ReadAt(buf[:min(int64(len(buf)), size-pos)], pos)
		for _, c := range buf[:k] {
			if c != 0 {
				return false
			}
		}
		pos += int64(k)
		if err != nil {
			return err == io.EOF && pos >= size
		}
	}
	return true
}

// frameReader reads frames sequentially, reusing one buffer.
type frameReader struct {
	r   io.Reader
	buf []byte
	hdr [frameHeader]byte
}

func newFrameReader(r io.Reader) *frameReader { return &frameReader{r: r} }

// errEnd is frameReader.next's clean end of the file.
var errEnd = errors.New("end of segment")

// next reads the next frame, given how many bytes are left in the file. It returns the record
// (valid until the next call), or a reason the frame is bad, or errEnd at the end of the file.
func (fr *frameReader) next(left int64) (rec []byte, bad string, err error) {
	if left == 0 {
		return nil, "", errEnd
	}
	if left < frameHeader {
		return nil, badShortHeader, nil
	}
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		return nil, "", err
	}
	n := int64(binary.LittleEndian.Uint32(fr.hdr[0:4]))
	if n > left-frameHeader {
		return nil, badShortBody, nil
	}
	if int64(cap(fr.buf)) < n {
		fr.buf = make([]byte, n)
	}
	rec = fr.buf[:n]
	if _, err := io.ReadFull(fr.r, rec); err != nil {
		return nil, "", err
	}
	if frameCRC(fr.hdr[0:4], rec) != binary.LittleEndian.Uint32(fr.hdr[4:8]) {
		return rec, badCRC, nil
	}
	return rec, "", nil
}

// ErrCorrupt is wrapped by a *CorruptError.
var ErrCorrupt = errors.New("spool: corrupt segment")

// CorruptError reports a damaged record that is not a torn tail: a bad frame in a sealed
// segment (one fsynced in full), or one followed by more data in an open segment. Open refuses to skip it,
// since the records after it would be lost without a word; the file is left as it is for an
// operator to inspect (and move aside: then the records it held are lost, the others replay).
type CorruptError struct {
	Segment string // the segment file's path
	Offset  int64  // where the bad frame starts
	Reason  string // "checksum mismatch", "record cut short", "header cut short", ...
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("spool: corrupt segment %s at offset %d: %s", e.Segment, e.Offset, e.Reason)
}

// Unwrap makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// syncDir makes the creation, removal or renaming of files in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
