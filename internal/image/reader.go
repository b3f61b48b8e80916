package image

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"
	"sync/atomic"
	"time"
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
	in      Input
	h       *header
	hdrLen  uint64
	commit  *commit
	entries []indexEntry
	status  error // nil, ErrNotCommitted, ErrInvalidated, a *CorruptError, or a key/authentication error
	closer  io.Closer
	keys    *imageKeys // encrypted image unlocked by Open
	key     *Key       // the master key that unlocked it
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
func Open(in Input, opts ...Option) (*Reader, error) {
	o := buildOptions(opts)
	size := in.Size()
	fixed := make([]byte, headerFixedLen)
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
	r := &Reader{in: in, h: h, hdrLen: uint64(n)}
	if r.status = r.unlock(o); r.status == nil {
		r.status = r.openCommit(buf, size)
	}
	return r, nil
}

// unlock derives the image's keys from the key or secret in o and checks
// them against the header's key check value.
func (r *Reader) unlock(o options) error {
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
	if off+int64(len(b)) > size {
		return corrupt("image", size, "image is truncated: need %d bytes at offset %d but it is %d bytes long", len(b), off, size)
	}
	if n, err := in.ReadAt(b, off); err != nil && !(errors.Is(err, io.EOF) && n == len(b)) {
		return fmt.Errorf("reading image at offset %d: %w", off, err)
	}
	return nil
}

func (r *Reader) openCommit(hdr []byte, size int64) error {
	if size < int64(r.hdrLen)+commitLen {
		return ErrNotCommitted
	}
	cb := make([]byte, commitLen)
	off := size - commitLen
	if err := readFull(r.in, cb, off, size); err != nil {
		return err
	}
	c, err := parseCommit(cb)
	if err != nil {
		if ce, ok := err.(*CorruptError); ok {
			ce.Offset += off
		}
		return err
	}
	if c.ID != r.h.ID {
		return ErrNotCommitted // a commit record left from another image
	}
	if c.Length != uint64(size) {
		return corrupt("commit record", off, "image length %d does not match the recorded %d: the image was truncated or extended", size, c.Length)
	}
	if c.ChunkCount != r.h.ChunkCount {
		return corrupt("commit record", off, "chunk count %d does not match the header's %d", c.ChunkCount, r.h.ChunkCount)
	}
	ilen := indexLen(c.ChunkCount)
	if c.IndexOffset < r.hdrLen || c.IndexOffset+ilen != uint64(off) {
		return corrupt("commit record", off, "index offset %d and %d chunks do not fit between header and commit record", c.IndexOffset, c.ChunkCount)
	}
	ib := make([]byte, ilen)
	if err := readFull(r.in, ib, int64(c.IndexOffset), size); err != nil {
		return err
	}
	entries, err := parseIndex(ib, c.ChunkCount, r.hdrLen, c.IndexOffset)
	if err != nil {
		return corrupt("index", int64(c.IndexOffset), "%v", err)
	}
	if c.Major != r.h.Major {
		return corrupt("commit record", off+8, "commit record version %d does not match the header's %d", c.Major, r.h.Major)
	}
	if r.keys != nil {
		if r.keys.macOf(hdr, ib, cb[:72]) != c.Digest {
			return &AuthError{What: "header, index and commit record", Chunk: -1}
		}
	} else if digest(hdr, ib) != c.Digest {
		return corrupt("commit record", off+72, "digest of header and index does not match the commit record")
	}
	if c.StoredPages+c.ZeroPages != totalSize(r.h.Ranges)/uint64(r.h.PageSize) {
		return corrupt("commit record", off+56, "stored %d + zero %d pages do not add up to the saved RAM", c.StoredPages, c.ZeroPages)
	}
	r.commit, r.entries = c, entries
	if c.State == stateInvalid {
		return ErrInvalidated
	}
	return nil
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

// usable reports whether chunks may be read: committed, or invalidated with
// WithForce.
func (r *Reader) usable(o options) error {
	if r.status == nil || (o.force && errors.Is(r.status, ErrInvalidated)) {
		return nil
	}
	return r.status
}

// Verify reads and checks every chunk (record CRC, extents, decompression,
// CRC of the pages) and the commit record. It returns nil only for a fully
// valid committed image (or an invalidated one with WithForce).
func (r *Reader) Verify(ctx context.Context, opts ...Option) (Stats, error) {
	return r.each(ctx, nil, buildOptions(opts), true)
}

// VerifyStored checks every byte of the image as stored, without
// decompressing: each chunk record's CRC, its agreement with the index,
// its header and extents, the index and the commit record (whose digest
// binds header and index, so every record CRC); for an encrypted image,
// every chunk's authentication tag. What passes is exactly what the writer
// wrote and committed. Decoding and the pages' CRC are left to Restore,
// which checks each chunk before writing its pages. It is resume's check
// before the point of no return: reading the image once, not decoding it
// twice, halves the CPU work of resuming.
func (r *Reader) VerifyStored(ctx context.Context, opts ...Option) (Stats, error) {
	return r.each(ctx, nil, buildOptions(opts), false)
}

// Restore writes every saved page to sink at its physical address, checking
// each chunk before any of its pages is written. It refuses, before writing
// anything, an image that is not committed, is invalidated (unless
// WithForce) or whose commit record or index is damaged. A chunk found
// corrupt stops the restore with a *CorruptError after other chunks may
// have been written; callers that need all-or-nothing call Verify first.
// Zero pages are not written unless WithZeroFill is given: without it the
// sink must read as zero where nothing is written (a fresh sparse file).
func (r *Reader) Restore(ctx context.Context, sink io.WriterAt, opts ...Option) (Stats, error) {
	return r.each(ctx, sink, buildOptions(opts), true)
}

// each checks every chunk on o.threads workers, decoding each (decode) and
// writing its pages to sink (non-nil).
func (r *Reader) each(ctx context.Context, sink io.WriterAt, o options, decode bool) (Stats, error) {
	start := time.Now()
	if err := r.usable(o); err != nil {
		return Stats{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := len(r.entries)
	slots := make([]uint32, n)
	headers := make([]uint32, n) // each record's header CRC
	if !decode {
		o.headers = nil // only decoding checks the payload another way
	}
	var (
		next     atomic.Int64
		done     atomic.Uint64
		firstErr error
		errOnce  sync.Once
		wg       sync.WaitGroup
		progMu   sync.Mutex
		total    uint64 // chunk bytes: progress reaches exactly 100%
		s2Chunks atomic.Int64
	)
	maxRecord := 0
	for _, e := range r.entries {
		total += uint64(e.Length)
		maxRecord = max(maxRecord, int(e.Length))
	}
	fail := func(err error) { errOnce.Do(func() { firstErr = err; cancel() }) }
	lender, _ := sink.(Lender)
	if !decode || o.headers == nil {
		lender = nil // decoding in place is for WithVerifiedStored only
	}
	for range min(o.threads, max(n, 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var dec *decoders
			if decode {
				dec = &decoders{chunkSize: int(r.h.ChunkSize)}
				defer dec.close()
			}
			var rec, raw, span []byte
			var ext []extent
			si, spans := r.in.(spanInput)
			if spans {
				span = si.SpanBuffer(maxRecord)
			}
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				e := r.entries[i]
				if spans {
					var err error
					if rec, err = si.ReadSpan(span, int64(e.Offset), int(e.Length)); err != nil {
						fail(fmt.Errorf("reading chunk %d at offset %d: %w", i, e.Offset, err))
						return
					}
				} else {
					if cap(rec) < int(e.Length) {
						rec = make([]byte, e.Length)
					}
					rec = rec[:e.Length]
					if n, err := r.in.ReadAt(rec, int64(e.Offset)); err != nil && !(errors.Is(err, io.EOF) && n == len(rec)) {
						fail(fmt.Errorf("reading chunk %d at offset %d: %w", i, e.Offset, err))
						return
					}
				}
				if raw == nil {
					raw = make([]byte, 0, r.h.ChunkSize)
				}
				var lent func()
				into := func(c *chunk) []byte {
					if lender == nil || len(c.Extents) != 1 {
						return nil
					}
					b, done, ok := lender.Lend(int64(c.Extents[0].Addr), int(c.RawLen))
					if !ok {
						return nil
					}
					lent = done
					return b
				}
				c, hc, err := r.checkChunk(rec, e, dec, raw[:0], ext[:0], o.headers == nil, into)
				release := func() {
					if lent != nil {
						lent()
						lent = nil
					}
				}
				if err == errAuth {
					release()
					fail(&AuthError{What: fmt.Sprintf("chunk %d", i), Chunk: i})
					return
				}
				if err != nil {
					release()
					fail(&CorruptError{Region: "chunk", Chunk: i, Offset: int64(e.Offset), Reason: err.Error()})
					return
				}
				ext = c.Extents
				slots[i] = c.Number
				if c.Codec == S2 {
					s2Chunks.Add(1)
				}
				headers[i] = hc
				if sink != nil {
					err := writeExtents(sink, c, r.h.PageSize, o.zeroFill, c.Slot, r.h.Meta.Discarded)
					release()
					if err != nil {
						fail(err)
						return
					}
				}
				d := done.Add(uint64(e.Length))
				if o.progress != nil {
					progMu.Lock()
					o.progress(d, total)
					progMu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return Stats{}, firstErr
	}
	if err := ctx.Err(); err != nil {
		return Stats{}, err
	}
	for i := 1; i < n; i++ {
		if slots[i] <= slots[i-1] {
			return Stats{}, &CorruptError{Region: "chunk", Chunk: i, Offset: int64(r.entries[i].Offset), Reason: "chunk slot does not follow the previous chunk's"}
		}
	}
	var hdrs uint32
	for _, hc := range headers {
		hdrs = crc32.Update(hdrs, castagnoli, le.AppendUint32(nil, hc))
	}
	if o.headers != nil && *o.headers != hdrs {
		return Stats{}, corrupt("chunk headers", 0, "the chunk headers read now (CRC %08x) differ from those checked before the restore (%08x): the storage returned different data", hdrs, *o.headers)
	}
	var zeroFill time.Duration
	var discarded uint64
	if sink != nil && o.zeroFill {
		discarded = totalSize(r.h.Meta.Discarded)
		t := time.Now()
		if err := r.zeroMissingSlots(ctx, sink, slots, o.threads); err != nil {
			return Stats{}, err
		}
		zeroFill = time.Since(t)
	}
	return Stats{
		RAMBytes:    totalSize(r.h.Ranges),
		ZeroPages:   r.commit.ZeroPages,
		StoredPages: r.commit.StoredPages,
		ImageBytes:  uint64(r.in.Size()),
		Chunks:      n,
		S2Chunks:    int(s2Chunks.Load()),
		Duration:    time.Since(start),
		ZeroFill:    zeroFill,
		Discarded:   discarded,
		Headers:     hdrs,
	}, nil
}

// checkChunk parses and checks one record, and with a decoder
// decompresses it into raw and checks the pages' CRC; c.Payload is then
// replaced by the decoded pages.
//
// into, if not nil, may lend the memory a chunk of one extent decodes to
// (the chunk is then placed: already where its pages go).
func (r *Reader) checkChunk(rec []byte, e indexEntry, dec *decoders, raw []byte, ext []extent, recordCRC bool, into func(*chunk) []byte) (*chunk, uint32, error) {
	if got := le.Uint32(rec[len(rec)-crcLen:]); got != e.CRC {
		return nil, 0, fmt.Errorf("record CRC %08x does not match the index's %08x", got, e.CRC)
	}
	c, err := parseChunk(rec, r.h, ext, recordCRC)
	if err != nil {
		return nil, 0, err
	}
	// The header: fixed part and extents, all before the payload.
	hc := crc(rec[:len(rec)-crcLen-len(c.Payload)])
	c, err = r.checkPayload(rec, c, dec, raw, into)
	return c, hc, err
}

// checkPayload decrypts, decodes and checks c's payload (decoding only
// when dec is non-nil).
func (r *Reader) checkPayload(rec []byte, c *chunk, dec *decoders, raw []byte, into func(*chunk) []byte) (*chunk, error) {
	var err error
	slot, ok := r.slot(c.Number)
	c.Slot = slot
	if !ok {
		return nil, fmt.Errorf("chunk slot %d is beyond the saved RAM", c.Number)
	}
	last := c.Extents[len(c.Extents)-1]
	if c.Extents[0].Addr < slot.Start || last.Addr+uint64(last.Pages)*uint64(r.h.PageSize) > slot.End {
		return nil, fmt.Errorf("extents lie outside the chunk's RAM %v", slot)
	}
	if r.h.Enc != nil {
		if c.RawCRC != 0 {
			return nil, fmt.Errorf("encrypted chunk stores a page CRC")
		}
		if r.keys == nil {
			return nil, &KeyRequiredError{Source: r.h.Enc.Source}
		}
		aad := rec[:len(rec)-crcLen-len(c.Payload)]
		if c.Payload, err = r.keys.aead.Open(c.Payload[:0], chunkNonce(c.Number), c.Payload, aad); err != nil {
			return nil, errAuth
		}
	}
	if dec == nil {
		return c, nil
	}
	if into != nil {
		if b := into(c); b != nil {
			raw, c.placed = b[:0], true
		}
	}
	out, err := dec.decode(c.Codec, raw, c.Payload, int(c.RawLen))
	if err != nil {
		return nil, err
	}
	if r.h.Enc != nil {
		c.Payload = out
		return c, nil
	}
	if got := crc(out); got != c.RawCRC {
		return nil, fmt.Errorf("page data CRC mismatch after decompression (stored %08x, computed %08x)", c.RawCRC, got)
	}
	c.Payload = out
	return c, nil
}

// errAuth is checkChunk's report of a GCM tag mismatch; each() names the chunk.
var errAuth = errors.New("authentication failed")

// slot returns the RAM covered by chunk slot n.
func (r *Reader) slot(n uint32) (Range, bool) {
	cs := uint64(r.h.ChunkSize)
	left := uint64(n)
	for _, rg := range r.h.Ranges {
		k := (rg.Size() + cs - 1) / cs
		if left < k {
			s := rg.Start + left*cs
			return Range{Start: s, End: min(s+cs, rg.End)}, true
		}
		left -= k
	}
	return Range{}, false
}

// writeExtents writes the decoded pages of c at their physical addresses,
// and with zeroFill the zero pages between them within the chunk's slot.
func writeExtents(sink io.WriterAt, c *chunk, pageSize uint32, zeroFill bool, slot Range, discarded []Range) error {
	p := c.Payload
	at := slot.Start
	for _, e := range c.Extents {
		if zeroFill && e.Addr > at {
			if err := zeroExcept(sink, at, e.Addr, discarded); err != nil {
				return err
			}
		}
		n := int(e.Pages) * int(pageSize)
		if c.placed {
			// Decoded in place (Lender).
		} else if _, err := sink.WriteAt(p[:n], int64(e.Addr)); err != nil {
			return fmt.Errorf("writing %d pages at physical address %#x: %w", e.Pages, e.Addr, err)
		}
		p = p[n:]
		at = e.Addr + uint64(n)
	}
	if zeroFill && at < slot.End {
		return zeroExcept(sink, at, slot.End, discarded)
	}
	return nil
}

// Lender is a sink that can lend its memory, so a chunk decodes straight
// into place (RAM mapped from /dev/mem): under emulation a copy costs as
// much as decoding (memmove 495 MB/s per vCPU under TCG). Lend returns the
// n bytes at off, writable, and done to call once the chunk is written;
// ok is false when it cannot lend them. Restore lends only with
// WithVerifiedStored, whose restore fails after pages were written anyway
// if something read back differently: a chunk decoded in place is checked
// there, after it is written.
type Lender interface {
	Lend(off int64, n int) (b []byte, done func(), ok bool)
}

// Zeroer is a sink that can clear memory itself (physical memory mapped
// from /dev/mem): clearing in place writes RAM once, where copying from a
// zero buffer also reads it.
type Zeroer interface {
	ZeroAt(off, n int64) error
}

var zeros = make([]byte, 1<<20)

func writeZeros(sink io.WriterAt, start, end uint64) error {
	if z, ok := sink.(Zeroer); ok {
		if err := z.ZeroAt(int64(start), int64(end-start)); err != nil {
			return fmt.Errorf("zeroing physical address %#x: %w", start, err)
		}
		return nil
	}
	for a := start; a < end; {
		n := min(end-a, uint64(len(zeros)))
		if _, err := sink.WriteAt(zeros[:n], int64(a)); err != nil {
			return fmt.Errorf("zeroing physical address %#x: %w", a, err)
		}
		a += n
	}
	return nil
}

// zeroExcept zeroes [start, end) but for the discarded ranges in it.
func zeroExcept(sink io.WriterAt, start, end uint64, discarded []Range) error {
	return subtractRanges(start, end, discarded, func(s, e uint64) error { return writeZeros(sink, s, e) })
}

// zeroMissingSlots zeroes the slots no chunk was stored for (all-zero RAM),
// runs of adjacent slots at once and on all threads: on a machine with
// most of its RAM free this is gigabytes. slots lists the stored ones in
// increasing order.
func (r *Reader) zeroMissingSlots(ctx context.Context, sink io.WriterAt, slots []uint32, threads int) error {
	var runs []Range
	total := maxChunks(r.h.Ranges, uint64(r.h.ChunkSize))
	next := 0
	for s := uint64(0); s < total; s++ {
		if next < len(slots) && uint64(slots[next]) == s {
			next++
			continue
		}
		rg, _ := r.slot(uint32(s))
		if k := len(runs); k > 0 && runs[k-1].End == rg.Start {
			runs[k-1].End = rg.End
		} else {
			runs = append(runs, rg)
		}
	}
	// Pieces of at most 64 MiB so threads share long runs.
	var pieces []Range
	for _, rg := range runs {
		for a := rg.Start; a < rg.End; a += zeroPiece {
			pieces = append(pieces, Range{Start: a, End: min(a+zeroPiece, rg.End)})
		}
	}
	var (
		at       atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for range min(max(threads, 1), max(len(pieces), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(at.Add(1) - 1)
				if i >= len(pieces) {
					return
				}
				if err := zeroExcept(sink, pieces[i].Start, pieces[i].End, r.h.Meta.Discarded); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

const zeroPiece = 64 << 20

// Invalidate makes the committed image in rw non-resumable by rewriting
// its commit record's state, then syncs. The data stays intact, so
// Verify/Restore WithForce can still use it. Invalidating an invalidated
// image is a no-op; an uncommitted or damaged one is left alone and its
// problem returned (it is not resumable anyway).
// An encrypted image needs its key (WithSecret or WithKey): the commit
// record's MAC covers the state.
func Invalidate(rw ReadWriter, opts ...Option) error {
	r, err := Open(rw, opts...)
	if err != nil {
		return err
	}
	if r.commit == nil {
		return r.status
	}
	if r.commit.State == stateInvalid {
		return nil
	}
	c := *r.commit
	c.State = stateInvalid
	cb := c.encode()
	if r.keys != nil {
		hdr := make([]byte, r.hdrLen)
		idx := make([]byte, indexLen(c.ChunkCount))
		if err := readFull(rw, hdr, 0, rw.Size()); err != nil {
			return err
		}
		if err := readFull(rw, idx, int64(c.IndexOffset), rw.Size()); err != nil {
			return err
		}
		cb = sealCommit(&c, r.keys, hdr, idx)
	}
	if _, err := rw.WriteAt(cb, rw.Size()-commitLen); err != nil {
		return err
	}
	return rw.Sync()
}

// ReadWriter is a stored image opened for in-place update.
type ReadWriter interface {
	Input
	io.WriterAt
	Sync() error
}
