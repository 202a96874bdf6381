// Package spool is a crash-safe local log of records, bounded in bytes, whose records are
// released one by one, in any order. It is the foundation of the "spool" durability mode
// (issue 14): a write is appended before the hook returns, released when every store wrote it,
// and replayed after a crash or restart until then.
//
//	s, err := spool.Open(dir, spool.Options{Sync: spool.SyncAlways})
//	err = s.Replay(func(seq spool.Seq, rec []byte) error { ...dispatch...; return nil })
//	seq, err := s.Append(ctx, rec) // durable per Options.Sync when it returns
//	s.Release(seq)                 // later, from any goroutine, in any order
//	err = s.Scan(after, fn)        // read again from disk what was dropped from memory
//
// # On disk
//
// A directory holds segment files named by the sequence number of their first record, a
// checkpoint file ("released") and a LOCK file. A segment is a sequence of frames: 4 bytes of
// length, 4 bytes of CRC-32C over the length and the record, then the record. Sequence numbers
// are implicit (the segment's base plus the frame's index), so a frame costs 8 bytes.
//
// Appends only ever go to the last segment, named 00000000000000000001.open. When it reaches
// Options.SegmentBytes (and on every Open) the spool starts a new one and seals the old one:
// fsync, then rename to 00000000000000000001.seg (in the background, except under SyncAlways).
// So a torn tail (an interrupted write: a frame cut short, zero-filled, or a last frame whose
// bytes did not all reach the disk) can only be in an open segment, and Open truncates it
// (counted in Stats.TornBytes), keeping every complete record before it. Any damage in a
// sealed segment, or a bad frame followed by more data, is corruption: Open fails with a
// *CorruptError naming the file and offset, and never skips records silently.
//
// # Releases
//
// Release flips a bit in memory: no I/O on the path of the stores' writer goroutines. The
// released set is written to the checkpoint file (a bitmap per live segment plus the next
// sequence number; written to a temporary file, fsynced and renamed) every
// Options.CheckpointInterval and on Close, and a segment whose records are all released is
// deleted at once, which is what reclaims space. Release records in the log itself were the
// other choice; they were not taken because they double the appends on the hot path and a
// segment of release records cannot be deleted while an older segment is alive, so
// reclaiming space would need compaction. The cost of the checkpoint choice: a crash replays
// the records released since the last checkpoint (at most CheckpointInterval's worth), which
// the stores absorb since their writes are idempotent by msgid. The checkpoint keeps the next
// sequence number so that a number it marks released is never handed out again, even when a
// power loss took the tail of the log.
//
// # Durability and cost
//
// Every SyncPolicy puts a record in the operating system's page cache before Append returns,
// under a lock that keeps the file in sequence order, so a killed process loses nothing Append
// returned. On Linux the active segment is reserved in full when it is created (fallocate) and
// mapped shared into memory: Append copies the frame into the mapping, with no system call
// (about 0.2 µs for 256 bytes on the development machine, against 0.6–1 µs for a write(2):
// BenchmarkAppend, BenchmarkRawFile). Reserving the space up front is what makes the mapping
// safe: a full disk fails the creation of a segment, not a store into the mapping, which would
// kill the process (SIGBUS). Where the space cannot be reserved, and on other systems, records
// are written with write(2). SyncAlways adds an fsync that concurrent Appends share: the first
// one to find no fsync in progress fsyncs everything written so far, while the others write
// their records and wait for it (group commit). SyncInterval fsyncs in the background;
// SyncNever only when a segment is finished and on Close. A segment is trimmed to its records
// before it is sealed; after a crash, the reserved zeros after the last record of the open
// segment are a torn tail to Open, truncated (and counted in Stats.TornBytes).
//
// # Why not a library
//
// Compared for this job by their documentation and code:
//
//   - github.com/tidwall/wal: an indexed segment log; but its entries are a length prefix
//     without a checksum, a damaged last entry fails Open (ErrCorrupt) instead of being
//     truncated, Write and WriteBatch run under one mutex with a NoSync switch (fsync each
//     call or never: no group commit across callers, no interval), and its only way to free
//     space is TruncateFront, a prefix: releases out of order would still need our own
//     released set, and one stuck record would pin the whole log.
//   - go.etcd.io/bbolt: a copy-on-write B+tree (key = Seq, delete on release) that is crash
//     safe by construction, with Batch for group commit; but a commit writes whole 4 KiB pages
//     plus the meta page and fsyncs twice, Batch waits up to MaxBatchDelay (10 ms) to gather
//     writes, and freed pages go to a freelist: the file never shrinks, so the disk budget is
//     the high-water mark of an outage.
//   - github.com/cockroachdb/pebble: an LSM tree whose WAL has the group commit we want; but
//     deletions are tombstones reclaimed by compaction, a memtable and block cache to size,
//     and a large dependency tree, for a workload that is a FIFO log with out-of-order acks.
//
// A FIFO log released out of order is a few hundred lines as a segment log, with exactly the
// framing, torn-tail rule, group commit and space reclamation wanted here, so the package is
// that, on the standard library only.
package spool
