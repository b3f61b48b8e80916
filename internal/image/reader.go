package image

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/kjump/kjump/internal/phys"
)

// Input is a stored image: offset 0 is the image start and Size its length.
type Input interface {
	io.ReaderAt
	Size() int64
}

// spanInput is an Input that reads records without a copy into buffers
// it sizes and aligns (O_DIRECT on a block device; storage.blockImage).
type spanInput interface {
	SpanBuffer(n int) []byte
	// ReadSpan returns the n bytes at off, read into buf from SpanBuffer.
	ReadSpan(buf []byte, off int64, n int) ([]byte, error)
}

// Reader reads one image. Open checks the header; the commit record and
// index are checked by Open too but their failure is kept for Verify and
// Restore, so an unfinished image can still be inspected.
type Reader struct {
	in     Input
	h      *header
	hdrLen uint64
	hdr    []byte // the header record, bound by the commit digest
	commit *commit
	status error // nil, ErrNotCommitted, ErrInvalidated, a *CorruptError, or a key/authentication error
	closer io.Closer
	keys   *imageKeys         // encrypted image unlocked by Open
	key    *Key               // the master key that unlocked it
	sum    *[sha256.Size]byte // Digest, once the index was read
	ram    []Range            // WithMachineRAM's, normalized: where pages may go
}

// Info is what `resume image info` shows.
type Info struct {
	Version     string      `json:"version"`
	ID          string      `json:"id"`
	Status      string      `json:"status"` // "committed", "invalidated", "not committed", "corrupt: ..."
	Metadata    Metadata    `json:"metadata"`
	PageSize    uint32      `json:"page_size"`
	ChunkSize   uint32      `json:"chunk_size"`
	Compression Compression `json:"compression"`
	Chunks      uint32      `json:"chunks"`
	Ranges      []Range     `json:"ranges"`
	RAMBytes    uint64      `json:"ram_bytes"`
	StoredPages uint64      `json:"stored_pages"`
	ZeroPages   uint64      `json:"zero_pages"`
	ImageBytes  int64       `json:"image_bytes"`
	Created     time.Time   `json:"created"`
	// Encryption is "" for a plain image, else cipher and key source.
	Encryption string `json:"encryption,omitempty"`
}

// Open parses and checks the header of the image in in, then the commit
// record and index. It fails only if there is no readable header; use
// Status, Verify or Restore to learn whether the image is resumable.
// WithSecret or WithKey unlock an encrypted image: the key check value and
// the MAC over header, index and commit record are checked here, and the
// chunks' tags by Verify and Restore. Without a key an encrypted image's
// Status is a *KeyRequiredError; with one a plain image's is ErrNotEncrypted.
func Open(in Input, opts ...ReaderOption) (*Reader, error) {
	o, err := newReaderOptions(opts)
	if err != nil {
		return nil, err
	}
	size := in.Size()
	fixed := make([]byte, headerFixedLen)
	if size < 0 {
		return nil, fmt.Errorf("image storage reports a negative size (%d)", size)
	}
	if size < headerFixedLen {
		// Too short for a header: say whether it was ever an image.
		n, _ := in.ReadAt(fixed[:size], 0)
		if k := min(n, len(headerMagic)); k > 0 && string(fixed[:k]) == headerMagic[:k] {
			return nil, corrupt("header", size, "image is truncated to %d bytes, shorter than a header", size)
		}
		return nil, ErrNotImage
	}
	if err := readFull(in, fixed, 0, size); err != nil {
		return nil, err
	}
	n, err := headerLen(fixed)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, n)
	if err := readFull(in, buf, 0, size); err != nil {
		return nil, err
	}
	h, err := parseHeader(buf)
	if err != nil {
		return nil, err
	}
	r := &Reader{in: in, h: h, hdrLen: uint64(n), hdr: buf}
	if o.machineRAM != nil {
		r.ram = phys.Ranges(o.machineRAM).Normalize()
	}
	// Cheapest first: the machine check reads nothing, unlocking may run
	// Argon2id, and only then is the index read.
	if r.status = checkMachineRAM(h.Ranges, o.machineRAM); r.status == nil {
		if r.status = r.unlock(o); r.status == nil {
			r.status = r.openCommit(size)
		}
	}
	if o.digest != nil && r.sum != nil && *r.sum != *o.digest {
		r.status = &SwappedError{Want: hex.EncodeToString(o.digest[:]), Got: hex.EncodeToString(r.sum[:])}
	}
	return r, nil
}

// unlock derives the image's keys from the key or secret in o and checks
// them against the header's key check value.
func (r *Reader) unlock(o readerOptions) error {
	given := o.key != nil || o.secret != nil
	p := r.h.Enc
	switch {
	case p == nil && given:
		return ErrNotEncrypted
	case p == nil:
		return nil
	case !given:
		return &KeyRequiredError{Source: p.Source}
	}
	k := o.key
	if k == nil {
		var err error
		if k, err = deriveKey(*o.secret, *p); err != nil {
			return err
		}
	} else if !k.sameParams(*p) {
		// A derived key carries its salt: another salt is another key.
		return ErrWrongKey
	}
	keys, err := newImageKeys(k.Master, r.h.ID)
	if err != nil {
		return err
	}
	if !keys.checkKCV(*p) {
		return ErrWrongKey
	}
	r.keys, r.key = keys, k
	return nil
}

// Key returns the master key that unlocked an encrypted image (nil for a
// plain one), for handing to the restore kernel.
func (r *Reader) Key() *Key { return r.key }

// Encrypted reports whether the image is encrypted, and with what kind of key.
func (r *Reader) Encrypted() (KeySource, bool) {
	if r.h.Enc == nil {
		return 0, false
	}
	return r.h.Enc.Source, true
}

// readFull reads len(b) bytes at off, reporting a short image as corruption.
func readFull(in Input, b []byte, off, size int64) error {
	if off < 0 || off > size || int64(len(b)) > size-off {
		return corrupt("image", size, "image is truncated: need %d bytes at offset %d but it is %d bytes long", len(b), off, size)
	}
	if n, err := in.ReadAt(b, off); err != nil && !(errors.Is(err, io.EOF) && n == len(b)) {
		return fmt.Errorf("reading image at offset %d: %w", off, err)
	}
	return nil
}

// openCommit checks the commit record at the end of the image, then the
// index it points to (read in bounded pieces, nothing kept) against the
// commit digest. Every size is checked against what the header and the
// image length allow before it is used.
func (r *Reader) openCommit(size int64) error {
	c, cb, err := readCommit(r.in, size, r.hdrLen)
	if err != nil {
		return err
	}
	if c.ID != r.h.ID {
		return ErrNotCommitted // a commit record left from another image
	}
	if err := r.checkCommit(c, size); err != nil {
		return err
	}
	if err := r.readIndex(c, cb, nil); err != nil {
		return err
	}
	r.commit = c
	switch c.State {
	case stateInvalid:
		return ErrInvalidated
	case stateRestoring:
		return ErrRestoreStarted
	}
	return nil
}

// readCommit reads the two copies of the commit record at the end of an
// image of size bytes and returns the one that counts, with its bytes as
// stored. A state change writes the first copy, syncs, then the second
// (setState), so a write torn by power loss damages at most one copy and
// leaves the other whole:
//
//   - both copies valid and equal: that record;
//   - both valid, the first one sequence number ahead of the second for
//     the same image: the first (the change finished its first write only);
//   - one valid: that one (the other was torn or damaged; after a finished
//     change both hold the new state, so no damage can revert one);
//   - neither has the commit magic: not committed (an unfinished write);
//   - anything else is corruption.
func readCommit(in Input, size int64, hdrLen uint64) (*commit, []byte, error) {
	if size < int64(hdrLen)+commitArea || size%commitBlock != 0 {
		return nil, nil, ErrNotCommitted
	}
	var (
		cs   [2]*commit
		bufs [2][]byte
		errs [2]error
	)
	block := make([]byte, commitBlock)
	for i := range cs {
		off := size - commitArea + int64(i)*commitBlock
		if err := readFull(in, block, off, size); err != nil {
			return nil, nil, err
		}
		cs[i], errs[i] = parseCommit(block[:commitLen])
		if ce, ok := errs[i].(*CorruptError); ok {
			ce.Offset += off
		}
		if errs[i] == nil && !allZero(block[commitLen:]) {
			cs[i], errs[i] = nil, corrupt("commit record", off+commitLen, "the rest of the commit record's block is not zero")
		}
		bufs[i] = bytes.Clone(block[:commitLen])
	}
	a, b := cs[0], cs[1]
	switch {
	case a != nil && b != nil:
		if *a == *b || (sameImage(a, b) && a.Seq == b.Seq+1) {
			return a, bufs[0], nil
		}
		return nil, nil, corrupt("commit record", size-commitArea, "the two copies of the commit record disagree (state %d sequence %d, state %d sequence %d)", a.State, a.Seq, b.State, b.Seq)
	case a != nil:
		return a, bufs[0], nil
	case b != nil:
		return b, bufs[1], nil
	case errors.Is(errs[0], ErrNotCommitted) && errors.Is(errs[1], ErrNotCommitted):
		return nil, nil, ErrNotCommitted
	case errors.Is(errs[0], ErrNotCommitted):
		return nil, nil, errs[1]
	}
	return nil, nil, errs[0]
}

// checkCommit checks a commit record against the header and the image
// length: after it, the index lies between header and commit area, its
// length is what the chunk count implies, and only zero padding (checked
// here) separates it from the commit area.
func (r *Reader) checkCommit(c *commit, size int64) error {
	off := size - commitArea
	if c.Length != uint64(size) {
		return corrupt("commit record", off, "image length %d does not match the recorded %d: the image was truncated or extended", size, c.Length)
	}
	if c.ChunkCount != r.h.ChunkCount {
		return corrupt("commit record", off, "chunk count %d does not match the header's %d", c.ChunkCount, r.h.ChunkCount)
	}
	// Subtractions only: a forged offset cannot wrap around.
	ilen, tail := indexLen(c.ChunkCount), uint64(off)
	if c.IndexOffset < r.hdrLen || c.IndexOffset > tail || tail-c.IndexOffset < ilen || tail-c.IndexOffset-ilen != commitPad(c.IndexOffset+ilen) {
		return corrupt("commit record", off, "index offset %d and %d chunks do not fit between header and commit area", c.IndexOffset, c.ChunkCount)
	}
	if records := c.IndexOffset - r.hdrLen; uint64(c.ChunkCount) > records/minRecordLen {
		return corrupt("commit record", off+48, "%d chunks cannot fit in the %d bytes between header and index", c.ChunkCount, records)
	}
	pagesPerChunk := uint64(r.h.ChunkSize / r.h.PageSize)
	if c.StoredPages > uint64(c.ChunkCount)*pagesPerChunk {
		return corrupt("commit record", off+56, "%d stored pages do not fit in %d chunks", c.StoredPages, c.ChunkCount)
	}
	if pad := tail - c.IndexOffset - ilen; pad > 0 {
		b := make([]byte, pad) // < commitBlock
		if err := readFull(r.in, b, int64(c.IndexOffset+ilen), size); err != nil {
			return err
		}
		if !allZero(b) {
			return corrupt("commit area", int64(c.IndexOffset+ilen), "the padding before the commit record is not zero")
		}
	}
	return nil
}

// readIndex reads and checks the index of c (cb: its commit record as
// stored) against the commit digest, handing each entry to visit (if not
// nil) as it is read: nothing of the index is kept. It records the SHA-256
// of header and index (Digest) as it goes.
func (r *Reader) readIndex(c *commit, cb []byte, visit func(uint32, indexEntry) error) error {
	off := int64(c.Length) - commitArea
	sum := sha256.New()
	var mac hash.Hash
	d := io.Writer(sum)
	if r.keys != nil {
		mac = r.keys.newMAC()
		d = io.MultiWriter(sum, mac)
	}
	d.Write(r.hdr)
	if err := scanIndex(r.in, c, r.hdrLen, maxRecordLen(r.h), d, visit); err != nil {
		return err
	}
	if c.Major != r.h.Major {
		return corrupt("commit record", off+8, "commit record version %d does not match the header's %d", c.Major, r.h.Major)
	}
	var got [sha256.Size]byte
	sum.Sum(got[:0])
	if mac != nil {
		mac.Write(cb[:72])
		if !hmac.Equal(mac.Sum(nil), c.Digest[:]) {
			return &AuthError{What: "header, index and commit record", Chunk: -1}
		}
	} else if subtle.ConstantTimeCompare(got[:], c.Digest[:]) != 1 {
		return corrupt("commit record", off+72, "digest of header and index does not match the commit record")
	}
	if c.StoredPages+c.ZeroPages != totalSize(r.h.Ranges)/uint64(r.h.PageSize) {
		return corrupt("commit record", off+56, "stored %d + zero %d pages do not add up to the saved RAM", c.StoredPages, c.ZeroPages)
	}
	if r.sum != nil && *r.sum != got {
		return corrupt("commit record", off+72, "header and index read now differ from those read before: the storage returned different data")
	}
	r.sum = &got
	return nil
}

// Digest is the SHA-256 of the image's header and index records, which
// bind every chunk record (by its CRC, offset and length), the RAM ranges
// and the metadata; "" when the index was not read (no valid commit
// record). For a plain image it is the commit record's digest; an
// encrypted one's is a MAC that also covers the state. resume hands it to
// the restore kernel, which refuses an image with another (WithDigest).
func (r *Reader) Digest() string {
	if r.sum == nil {
		return ""
	}
	return hex.EncodeToString(r.sum[:])
}

// Metadata returns the saved system's description from the header.
func (r *Reader) Metadata() Metadata { return r.h.Meta }

// Ranges returns the saved physical RAM ranges.
func (r *Reader) Ranges() []Range { return r.h.Ranges }

// Status is nil for a committed image, ErrNotCommitted, ErrInvalidated, or
// the corruption found in the commit record or index. It does not read
// chunks; Verify does.
func (r *Reader) Status() error { return r.status }

// Info summarizes the image without reading chunks.
func (r *Reader) Info() Info {
	i := Info{
		Version:     fmt.Sprintf("%d.%d", r.h.Major, r.h.Minor),
		ID:          fmt.Sprintf("%x", r.h.ID),
		Metadata:    r.h.Meta,
		PageSize:    r.h.PageSize,
		ChunkSize:   r.h.ChunkSize,
		Compression: r.h.Compression,
		Chunks:      r.h.ChunkCount,
		Ranges:      r.h.Ranges,
		RAMBytes:    totalSize(r.h.Ranges),
		Created:     r.h.Meta.Created,
		ImageBytes:  r.in.Size(),
	}
	if r.h.Enc != nil {
		i.Encryption = "AES-256-GCM, " + r.h.Enc.Source.String()
		if r.h.Enc.Source == KeySourcePassphrase {
			i.Encryption += fmt.Sprintf(" (Argon2id t=%d m=%d MiB p=%d)", r.h.Enc.Time, r.h.Enc.MemoryKiB>>10, r.h.Enc.Threads)
		}
	}
	var kr *KeyRequiredError
	switch {
	case errors.As(r.status, &kr):
		i.Status = "encrypted, not checked (no key given)"
	case errors.Is(r.status, ErrWrongKey), errors.Is(r.status, ErrNotEncrypted), errors.Is(r.status, ErrForged):
		i.Status = "refused: " + r.status.Error()
	case r.status == nil:
		i.Status = "committed"
	case errors.Is(r.status, ErrRestoreStarted):
		i.Status = "restore interrupted (retry with kjump.force=1 or --force)"
	case errors.Is(r.status, ErrInvalidated):
		i.Status = "invalidated"
	case errors.Is(r.status, ErrNotCommitted):
		i.Status = "not committed"
	default:
		i.Status = "corrupt: " + r.status.Error()
	}
	if r.commit != nil {
		i.StoredPages, i.ZeroPages = r.commit.StoredPages, r.commit.ZeroPages
	}
	return i
}

// Usable is the one rule for whether an image may be read to resume it,
// given its Status and whether the user forces (resume --force,
// WithForce): nil for a committed image, and for an invalidated one when
// forced; otherwise the status itself (not committed, invalidated, corrupt,
// no or wrong key, foreign RAM), which says why. Verify, VerifyStored and
// Restore apply it; callers deciding before them use it too:
//
//	if err := image.Usable(r.Status(), force); err != nil {
//		if errors.Is(err, image.ErrInvalidated) { /* spent: nothing to resume */ }
//		/* else: refuse, naming err */
//	}
func Usable(status error, force bool) error {
	if status == nil || (force && errors.Is(status, ErrInvalidated)) {
		return nil
	}
	return status
}

// Verify reads and checks every chunk (record sum, extents, decompression,
// CRC of the pages) and the commit record. It returns nil only for a fully
// valid committed image (or an invalidated one with WithForce).
func (r *Reader) Verify(ctx context.Context, opts ...ReaderOption) (Stats, error) {
	return r.each(ctx, nil, opts, true)
}

// VerifyStored checks every byte of the image as stored, without
// decompressing: each chunk record's CRC, its agreement with the index,
// its header and extents, the index and the commit record (whose digest
// binds header and index, so every record sum); for an encrypted image,
// every chunk's authentication tag. What passes is exactly what the writer
// wrote and committed. Decoding and the pages' sum are left to Restore,
// which checks each chunk before writing its pages. It is resume's check
// before the point of no return: reading the image once, not decoding it
// twice, halves the CPU work of resuming.
func (r *Reader) VerifyStored(ctx context.Context, opts ...ReaderOption) (Stats, error) {
	return r.each(ctx, nil, opts, false)
}

// Restore writes every saved page to sink at its physical address, checking
// each chunk before any of its pages is written. It refuses, before writing
// anything, an image that is not committed, is invalidated (unless
// WithForce) or whose commit record or index Open found damaged. (The
// index is read again as chunks are handed out, checked against the
// commit digest when its end is read: storage returning other bytes than
// Open read fails the restore, after pages may have been written.) A chunk found
// corrupt stops the restore with a *CorruptError after other chunks may
// have been written; callers that need all-or-nothing call Verify first.
// Zero pages are not written unless WithZeroFill is given: without it the
// sink must read as zero where nothing is written (a fresh sparse file).
func (r *Reader) Restore(ctx context.Context, sink io.WriterAt, opts ...ReaderOption) (Stats, error) {
	return r.each(ctx, sink, opts, true)
}

// Invalidate makes the image in rw non-resumable (spent) by rewriting its
// commit record's state, then syncs. The data stays intact, so
// Verify/Restore WithForce can still use it. Invalidating an invalidated
// image is a no-op; an uncommitted or damaged one is left alone and its
// problem returned (it is not resumable anyway). An image whose restore
// started (ErrRestoreStarted) becomes spent: the restore kernel does this
// once every page is back, so kjump.force=1 cannot resume it twice.
// An encrypted image needs its key (WithSecret or WithKey): the commit
// record's MAC covers the state.
func Invalidate(rw ReadWriter, opts ...ReaderOption) error {
	return setState(rw, stateInvalid, opts)
}

// MarkRestoring records that a restore of the committed image in rw
// starts now (resume's point of no return): the image is no longer
// resumed by default (its status becomes ErrRestoreStarted), but a
// restore that does not finish can be retried with kjump.force=1. A spent
// or already marked image is left as it is.
func MarkRestoring(rw ReadWriter, opts ...ReaderOption) error {
	return setState(rw, stateRestoring, opts)
}

// setState moves the image in rw to state. States only move forward:
// committed, restoring, spent. The commit record's two copies are written
// one after the other, each followed by a sync, so power lost during the
// change leaves one whole copy with the old or the new state (readCommit).
func setState(rw ReadWriter, state uint32, opts []ReaderOption) error {
	r, err := Open(rw, opts...)
	if err != nil {
		return err
	}
	if r.commit == nil {
		return r.status
	}
	if _, ok := r.status.(*SwappedError); ok {
		return r.status
	}
	if cur := r.commit.State; cur == state || cur == stateInvalid || (cur == stateRestoring && state == stateCommitted) {
		return nil
	}
	c := *r.commit
	c.State = state
	c.Seq++
	cb := c.encode()
	if r.keys != nil {
		// The MAC covers the state: header, index (read in pieces again)
		// and the new commit record's head.
		m := r.keys.newMAC()
		m.Write(r.hdr)
		if err := scanIndex(rw, &c, r.hdrLen, maxRecordLen(r.h), m, nil); err != nil {
			return err
		}
		m.Write(cb[:72])
		copy(c.Digest[:], m.Sum(nil))
		cb = c.encode()
	}
	for i := int64(0); i < 2; i++ {
		if _, err := rw.WriteAt(cb, rw.Size()-commitArea+i*commitBlock); err != nil {
			return err
		}
		if err := rw.Sync(); err != nil {
			return err
		}
	}
	return nil
}

// ReadWriter is a stored image opened for in-place update.
type ReadWriter interface {
	Input
	io.WriterAt
	Sync() error
}
