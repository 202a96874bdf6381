package spool

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
)

// The checkpoint file ("released") records which records of the live segments are released,
// and the next sequence number, so that a restart replays only what is still pending and never
// hands out a sequence number the checkpoint already marks released.
//
// Layout: magic, next (uint64), count (uint32), then count entries of base (uint64), n
// (uint32) and the ceil(n/8) bytes of the released bitmap (bit i: record base+i), then a
// CRC-32C of everything before it. It is written to a temporary file and renamed over the old
// one, so a reader sees the old or the new checkpoint, never a mix.
const (
	ckptName  = "released"
	ckptMagic = "MQSPREL1"
)

type ckptEntry struct {
	base Seq
	n    int
	bits []uint64
}

type checkpoint struct {
	next    Seq
	entries map[Seq]ckptEntry
}

func encodeCheckpoint(next Seq, entries []ckptEntry) []byte {
	b := make([]byte, 0, 64)
	b = append(b, ckptMagic...)
	b = binary.LittleEndian.AppendUint64(b, uint64(next))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(entries)))
	for _, e := range entries {
		b = binary.LittleEndian.AppendUint64(b, uint64(e.base))
		b = binary.LittleEndian.AppendUint32(b, uint32(e.n))
		for i := 0; i < (e.n+7)/8; i++ {
			b = append(b, byte(e.bits[i/8]>>(8*(i%8))))
		}
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// decodeCheckpoint returns ok false for anything that is not a whole, intact checkpoint.
func decodeCheckpoint(b []byte) (checkpoint, bool) {
	if len(b) < len(ckptMagic)+8+4+4 || string(b[:len(ckptMagic)]) != ckptMagic {
		return checkpoint{}, false
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return checkpoint{}, false
	}
	p := body[len(ckptMagic):]
	c := checkpoint{next: Seq(binary.LittleEndian.Uint64(p)), entries: map[Seq]ckptEntry{}}
	count := binary.LittleEndian.Uint32(p[8:])
	p = p[12:]
	for range count {
		if len(p) < 12 {
			return checkpoint{}, false
		}
		e := ckptEntry{base: Seq(binary.LittleEndian.Uint64(p)), n: int(binary.LittleEndian.Uint32(p[8:]))}
		p = p[12:]
		nb := (e.n + 7) / 8
		if len(p) < nb {
			return checkpoint{}, false
		}
		e.bits = make([]uint64, (e.n+63)/64)
		for i, c := range p[:nb] {
			e.bits[i/8] |= uint64(c) << (8 * (i % 8))
		}
		p = p[nb:]
		c.entries[e.base] = e
	}
	if len(p) != 0 {
		return checkpoint{}, false
	}
	return c, true
}

// readCheckpoint returns the checkpoint of dir; a missing or damaged one counts as none
// (everything pending), which only replays records the stores already have.
func readCheckpoint(dir string) checkpoint {
	b, err := os.ReadFile(filepath.Join(dir, ckptName))
	if err != nil {
		return checkpoint{}
	}
	c, _ := decodeCheckpoint(b)
	return c
}

func writeCheckpoint(dir string, data []byte) error {
	tmp := filepath.Join(dir, ckptName+".tmp")
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, ckptName))
	}
	return err
}
