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

// each is the top level of Verify, VerifyStored and Restore: refuse an
// unusable image, then check every chunk on a pool of workers fed from
// the index as it is read (decoding each with decode, writing its pages
// to sink when non-nil), check what only the whole image shows, and zero
// the RAM no chunk holds. Memory does not grow with the image: the index
// is read in pieces, and results are put back in order through a window
// as small as the pool.
func (r *Reader) each(ctx context.Context, sink io.WriterAt, opts []ReaderOption, decode bool) (Stats, error) {
	start := time.Now()
	o, err := newReaderOptions(opts)
	if err != nil {
		return Stats{}, err
	}
	if err := Usable(r.status, o.force); err != nil {
		return Stats{}, err
	}
	rs := newRestorer(r, sink, o, decode)
	if err := rs.run(ctx); err != nil {
		return Stats{}, err
	}
	hdrs, err := rs.checkHeaders()
	if err != nil {
		return Stats{}, err
	}
	st := rs.stats(hdrs)
	if sink != nil && o.zeroFill {
		st.Discarded = totalSize(r.h.Meta.Discarded)
		t := time.Now()
		if err := r.zeroMissingSlots(ctx, sink, rs.stored, o.threads); err != nil {
			return Stats{}, err
		}
		st.ZeroFill = time.Since(t)
	}
	st.Duration = time.Since(start)
	return st, nil
}

// restorer is the reading counterpart of the writer's pipeline: a
// dispatcher reads the index and hands out chunks in order; workers read
// each record, check it (and decode it), and write its pages to the sink
// in any order, since each page goes to its own address; a collector puts
// the results back in order to check what only the sequence shows (slots
// strictly increasing, the chunk headers' CRC) and, for a zero fill, to
// find the slots no chunk holds.
type restorer struct {
	r      *Reader
	sink   io.WriterAt
	o      readerOptions
	decode bool
	lender Lender // decodes in place, after the record's checks; nil if the sink cannot

	done      atomic.Uint64 // record bytes done, for progress
	total     uint64        // record bytes: progress reaches exactly 100%
	progMu    sync.Mutex
	s2Chunks  atomic.Int64
	rawChunks atomic.Int64

	// The collector's, in index order.
	chunks int
	hdrs   uint32   // CRC of the records' header CRCs
	stored []uint32 // the stored slots, for a zero fill only

	cancel   context.CancelFunc
	errOnce  sync.Once
	firstErr error
}

// restoreJob is one chunk to check; restored is what the collector needs
// of it.
type restoreJob struct {
	i int
	e indexEntry
}

type restored struct {
	i      int
	offset int64
	slot   uint32
	header uint32 // CRC of the record's header
}

func newRestorer(r *Reader, sink io.WriterAt, o readerOptions, decode bool) *restorer {
	if !decode {
		o.headers = nil // only decoding checks the payload another way
	}
	rs := &restorer{r: r, sink: sink, o: o, decode: decode, total: r.commit.IndexOffset - r.hdrLen}
	if l, ok := sink.(Lender); ok && decode {
		rs.lender = l
	}
	return rs
}

// run checks every chunk; the first failure stops dispatcher, workers and
// collector.
func (rs *restorer) run(ctx context.Context) error {
	ctx, rs.cancel = context.WithCancel(ctx)
	defer rs.cancel()
	n := rs.workers()
	jobs := make(chan restoreJob, n)
	results := make(chan restored, n)
	dispatched := make(chan struct{})
	go func() {
		defer close(dispatched)
		defer close(jobs)
		if err := rs.dispatch(ctx, jobs); err != nil {
			rs.fail(err)
		}
	}()
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := rs.newWorker()
			defer w.close()
			for j := range jobs {
				if ctx.Err() != nil {
					return
				}
				res, err := rs.restoreChunk(w, j)
				if err != nil {
					rs.fail(err)
					return
				}
				select {
				case results <- res:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(results) }()
	rs.collect(results)
	<-dispatched // nothing reads the image once run returns
	if rs.firstErr != nil {
		return rs.firstErr
	}
	return ctx.Err()
}

// dispatch reads the index again, checked against the commit record Open
// checked and its digest, and hands out its entries in order. Storage that
// returns other bytes now fails the read, at the latest once the index
// has been read to its end.
func (rs *restorer) dispatch(ctx context.Context, jobs chan<- restoreJob) error {
	r := rs.r
	c, cb, err := readCommit(r.in, r.in.Size(), r.hdrLen)
	if err != nil || *c != *r.commit {
		return corrupt("commit record", int64(r.commit.Length)-commitArea, "the commit record read now differs from the one Open checked: the storage returned different data")
	}
	return r.readIndex(r.commit, cb, func(i uint32, e indexEntry) error {
		select {
		case jobs <- restoreJob{i: int(i), e: e}:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
}

// collect takes the workers' results, puts them in index order through a
// window no larger than the work in flight, and checks the sequence.
func (rs *restorer) collect(results <-chan restored) {
	pending := map[int]restored{}
	var prev uint32
	failed := false
	for res := range results {
		if failed {
			continue // drain so the workers exit
		}
		pending[res.i] = res
		for {
			c, ok := pending[rs.chunks]
			if !ok {
				break
			}
			delete(pending, rs.chunks)
			if rs.chunks > 0 && c.slot <= prev {
				rs.fail(&CorruptError{Region: "chunk", Chunk: c.i, Offset: c.offset, Reason: "chunk slot does not follow the previous chunk's"})
				failed = true
				break
			}
			rs.hdrs = crc32.Update(rs.hdrs, castagnoli, le.AppendUint32(nil, c.header))
			if rs.sink != nil && rs.o.zeroFill {
				rs.stored = append(rs.stored, c.slot)
			}
			prev = c.slot
			rs.chunks++
		}
	}
}

// readerMemoryBudget bounds what a reader's workers hold, whatever the
// image says: each worker's record, decoded pages and zstd window are up
// to about three chunk sizes (maxChunkSize keeps one worker inside).
const readerMemoryBudget = 48 << 20

// workers is how many workers run: as asked, and no more than fit
// readerMemoryBudget.
func (rs *restorer) workers() int {
	per := maxRecordLen(rs.r.h) + 2*uint64(rs.r.h.ChunkSize)
	fit := max(1, int(readerMemoryBudget/per))
	return max(1, min(rs.o.threads, int(rs.r.commit.ChunkCount), fit))
}

func (rs *restorer) fail(err error) {
	rs.errOnce.Do(func() { rs.firstErr = err; rs.cancel() })
}

// restoreWorker is one worker's buffers and decoders, reused for every
// chunk it takes.
type restoreWorker struct {
	dec            *decoders
	rec, raw, span []byte
	ext            []extent
	spans          spanInput
}

func (rs *restorer) newWorker() *restoreWorker {
	w := &restoreWorker{}
	if rs.decode {
		w.dec = &decoders{chunkSize: int(rs.r.h.ChunkSize)}
	}
	if si, ok := rs.r.in.(spanInput); ok {
		w.spans, w.span = si, si.SpanBuffer(int(maxRecordLen(rs.r.h)))
	}
	return w
}

func (w *restoreWorker) close() {
	if w.dec != nil {
		w.dec.close()
	}
}

// read returns chunk record e, read into the worker's buffers. Index
// entries are at most maxRecordLen long (scanIndex).
func (w *restoreWorker) read(in Input, i int, e indexEntry) ([]byte, error) {
	var err error
	if w.spans != nil {
		w.rec, err = w.spans.ReadSpan(w.span, int64(e.Offset), int(e.Length))
	} else {
		if cap(w.rec) < int(e.Length) {
			w.rec = make([]byte, e.Length)
		}
		w.rec = w.rec[:e.Length]
		var n int
		if n, err = in.ReadAt(w.rec, int64(e.Offset)); errors.Is(err, io.EOF) && n == len(w.rec) {
			err = nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("reading chunk %d at offset %d: %w", i, e.Offset, err)
	}
	return w.rec, nil
}

// restoreChunk reads, checks and (with a sink) writes chunk j.
func (rs *restorer) restoreChunk(w *restoreWorker, j restoreJob) (restored, error) {
	i, e := j.i, j.e
	rec, err := w.read(rs.r.in, i, e)
	if err != nil {
		return restored{}, err
	}
	if w.raw == nil {
		w.raw = make([]byte, 0, rs.r.h.ChunkSize)
	}
	var lent func() // the lender's done, once a chunk decoded in place
	release := func() {
		if lent != nil {
			lent()
			lent = nil
		}
	}
	defer release()
	into := func(c *chunk) []byte {
		if rs.lender == nil || len(c.Extents) != 1 {
			return nil
		}
		b, done, ok := rs.lender.Lend(int64(c.Extents[0].Addr), int(c.RawLen))
		if !ok {
			return nil
		}
		lent = done
		return b
	}
	c, hc, err := rs.r.checkChunk(rec, e, w.dec, w.raw[:0], w.ext[:0], rs.o.headers == nil, into)
	if err == errAuth {
		return restored{}, &AuthError{What: fmt.Sprintf("chunk %d", i), Chunk: i}
	}
	if err != nil {
		return restored{}, &CorruptError{Region: "chunk", Chunk: i, Offset: int64(e.Offset), Reason: err.Error()}
	}
	w.ext = c.Extents
	if c.Codec == S2 {
		rs.s2Chunks.Add(1)
	}
	if c.stored {
		rs.rawChunks.Add(1)
	}
	if rs.sink != nil {
		if err := writeExtents(rs.sink, c, rs.r.h.PageSize, rs.o.zeroFill, c.Slot, rs.r.h.Meta.Discarded); err != nil {
			return restored{}, err
		}
		release()
	}
	rs.progress(e.Length)
	return restored{i: i, offset: int64(e.Offset), slot: c.Number, header: hc}, nil
}

func (rs *restorer) progress(n uint32) {
	d := rs.done.Add(uint64(n))
	if rs.o.progress != nil {
		rs.progMu.Lock()
		rs.o.progress(d, rs.total)
		rs.progMu.Unlock()
	}
}

// checkHeaders returns the CRC of the records' header CRCs in file order
// (Stats.Headers) and, with WithVerifiedStored, checks it against the one
// VerifyStored returned.
func (rs *restorer) checkHeaders() (uint32, error) {
	if rs.o.headers != nil && *rs.o.headers != rs.hdrs {
		return 0, corrupt("chunk headers", 0, "the chunk headers read now (CRC %08x) differ from those checked before the restore (%08x): the storage returned different data", rs.hdrs, *rs.o.headers)
	}
	return rs.hdrs, nil
}

func (rs *restorer) stats(hdrs uint32) Stats {
	r := rs.r
	return Stats{
		RAMBytes:    totalSize(r.h.Ranges),
		ZeroPages:   r.commit.ZeroPages,
		StoredPages: r.commit.StoredPages,
		ImageBytes:  uint64(r.in.Size()),
		Chunks:      rs.chunks,
		S2Chunks:    int(rs.s2Chunks.Load()),
		RawChunks:   int(rs.rawChunks.Load()),
		Headers:     hdrs,
	}
}

// checkChunk parses and checks one record, and with a decoder
// decompresses it into raw (a stored chunk's pages are its payload) and
// checks the pages' sum; c.Payload is then replaced by the pages.
//
// into, if not nil, may lend the memory a chunk of one extent decodes to
// (the chunk is then placed: already where its pages go).
func (r *Reader) checkChunk(rec []byte, e indexEntry, dec *decoders, raw []byte, ext []extent, recordCRC bool, into func(*chunk) []byte) (*chunk, uint32, error) {
	if got := le.Uint32(rec[len(rec)-crcLen:]); got != e.CRC {
		return nil, 0, fmt.Errorf("record sum %08x does not match the index's %08x", got, e.CRC)
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
	if err := r.checkExtentsInRAM(c); err != nil {
		return nil, err
	}
	if r.h.Enc != nil {
		if c.RawSum != 0 {
			return nil, fmt.Errorf("encrypted chunk stores a page sum")
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
	var out []byte
	c.stored = len(c.Payload) == int(c.RawLen)
	switch {
	case c.stored && c.placed:
		out = raw[:copy(raw[:c.RawLen], c.Payload)] // stored as they are
	case c.stored:
		out = c.Payload
	default:
		if out, err = dec.decode(c.Codec, raw, c.Payload, int(c.RawLen)); err != nil {
			return nil, err
		}
	}
	if r.h.Enc != nil {
		c.Payload = out
		return c, nil
	}
	if got := sum(out); got != c.RawSum {
		return nil, fmt.Errorf("page data checksum mismatch after decompression (stored %08x, computed %08x)", c.RawSum, got)
	}
	c.Payload = out
	return c, nil
}

// checkExtentsInRAM checks, with WithMachineRAM, that every page of c and
// the slot a zero fill clears lie in the machine's RAM. Open checked the
// image's ranges, which hold every slot, against it already; this repeats
// the check where pages are written, so no path can reach the reserved
// region or a hole (MMIO, firmware) of the machine being restored.
func (r *Reader) checkExtentsInRAM(c *chunk) error {
	if r.ram == nil {
		return nil
	}
	if !inRanges(r.ram, c.Slot.Start, c.Slot.Size()) {
		return fmt.Errorf("chunk RAM %v is not RAM of this machine", c.Slot)
	}
	for _, e := range c.Extents {
		if !inRanges(r.ram, e.Addr, uint64(e.Pages)*uint64(r.h.PageSize)) {
			return fmt.Errorf("extent at %#x (%d pages) is not RAM of this machine", e.Addr, e.Pages)
		}
	}
	return nil
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
