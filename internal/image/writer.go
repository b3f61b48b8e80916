package image

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime/debug"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Output is where Write puts an image: offset 0 is the image start. Write
// issues sequential WriteAt calls, rewrites the header at the end, and
// calls Sync before and after the commit record.
type Output interface {
	io.WriterAt
	Sync() error
}

// Stats summarizes a Write, Verify or Restore.
type Stats struct {
	RAMBytes  uint64 // bytes in the saved ranges
	ZeroPages uint64 // pages not stored because they were all zero or excluded
	// ExcludedPages are the ZeroPages left out unread (WithExclude).
	ExcludedPages uint64
	StoredPages   uint64 // pages stored (compressed) in chunks
	ImageBytes    uint64 // total image length
	Chunks        int
	// S2Chunks counts the chunks coded with S2 (all of an S2 image's, those
	// the writer chose in an Auto one); the other chunks are zstd.
	S2Chunks int
	// RawChunks counts the chunks stored as they are because their codec
	// did not shrink them (counted with that codec as well).
	RawChunks int
	Duration  time.Duration
	// ZeroFill is the part of a restore's Duration spent zeroing chunks
	// that were never stored (WithZeroFill).
	ZeroFill time.Duration
	// Discarded is the RAM a restore left as it was (Metadata.Discarded).
	Discarded uint64
	// Headers is the CRC32C of the chunk records' header CRCs in file
	// order (VerifyStored, Verify, Restore): what WithVerifiedStored takes.
	Headers uint32
}

// CodecMix says how many chunks each codec coded: "120 zstd + 30 s2
// chunks", or "150 zstd chunks" when one coded them all.
func (s Stats) CodecMix() string {
	z := s.Chunks - s.S2Chunks
	switch {
	case s.S2Chunks == 0:
		return fmt.Sprintf("%d zstd chunks", z) + s.rawMix()
	case z == 0:
		return fmt.Sprintf("%d s2 chunks", s.S2Chunks) + s.rawMix()
	}
	return fmt.Sprintf("%d zstd + %d s2 chunks", z, s.S2Chunks) + s.rawMix()
}

func (s Stats) rawMix() string {
	if s.RawChunks == 0 {
		return ""
	}
	return fmt.Sprintf(", %d of them stored as they are", s.RawChunks)
}

// MaxImageSize bounds the length of an image of src: every page stored
// incompressible plus framing. Storage checks free space against it. With
// an invalid option it bounds an image with the default options (Write
// then reports the option).
func MaxImageSize(src Source, md Metadata, opts ...WriterOption) uint64 {
	o, err := newWriterOptions(opts)
	if err != nil {
		o, _ = newWriterOptions(nil)
	}
	return maxImageSize(src, md, o)
}

func maxImageSize(src Source, md Metadata, o writerOptions) uint64 {
	rs := src.Ranges()
	chunks := maxChunks(rs, uint64(o.chunkSize))
	pages := uint64(o.chunkSize) / pageSizeOf(md)
	perChunk := uint64(chunkOverhead(int(pages))) + uint64(payloadBound(o.chunkSize)-o.chunkSize) + gcmTagLen
	meta := uint64(headerFixedLen + encBlockLen + 16*len(rs) + maxMetadataLen + crcLen)
	return meta + totalSize(rs) + chunks*perChunk + indexLen(uint32(chunks)) + commitBlock - 1 + commitArea
}

func pageSizeOf(md Metadata) uint64 {
	if md.PageSize == 0 {
		return defaultPageSize
	}
	return uint64(md.PageSize)
}

// Write saves the RAM of src into out as a complete image: header, one
// chunk per chunkSize bytes of RAM that holds any non-zero page, index,
// and, after a Sync, the commit record followed by another Sync. Until Write
// returns nil the image is not resumable. Chunks are compressed by a bounded
// pool of workers and written in order.
func Write(ctx context.Context, out Output, src Source, md Metadata, opts ...WriterOption) (Stats, error) {
	start := time.Now()
	o, err := newWriterOptions(opts)
	if err != nil {
		return Stats{}, err
	}
	w, err := newImageWriter(src, md, o, start)
	if err != nil {
		return Stats{}, err
	}
	// The phases, in order (the shape of the kernel's swsusp_write): the
	// first failure ends the write with no commit record, so nothing
	// resumable, and the pipeline has stopped its workers.
	err = w.writeHeader(out)
	if err == nil {
		err = w.writeChunks(ctx, out)
	}
	if err == nil {
		err = w.writeIndex(out)
	}
	if err == nil {
		err = w.commit(out)
	}
	if err != nil {
		return Stats{}, err
	}
	w.st.Duration = time.Since(start)
	return w.st, nil
}

// imageWriter is one Write: the geometry and header decided up front, then
// what each phase leaves for the next.
type imageWriter struct {
	o       writerOptions
	src     Source
	ranges  []Range
	ps      uint64
	h       *header
	keys    *imageKeys // nil: plain image
	hdr     []byte     // the header as last written
	entries []indexEntry
	idx     []byte
	idxOff  uint64
	st      Stats
}

// newImageWriter checks the geometry, completes the metadata and builds
// the header (with the image's keys when encrypting).
func newImageWriter(src Source, md Metadata, o writerOptions, start time.Time) (*imageWriter, error) {
	ps := pageSizeOf(md)
	md.PageSize = uint32(ps)
	if md.Created.IsZero() {
		md.Created = start
	}
	ranges := src.Ranges()
	if err := checkGeometry(ranges, ps, o); err != nil {
		return nil, err
	}
	md.FreePages = totalSize(o.exclude) / ps
	md.Discarded = nil
	if o.discard {
		md.Discarded = discardList(o.exclude)
	}
	h := &header{PageSize: uint32(ps), ChunkSize: uint32(o.chunkSize), Compression: o.compression, Ranges: ranges, Meta: md}
	if _, err := rand.Read(h.ID[:]); err != nil {
		return nil, fmt.Errorf("image id: %w", err)
	}
	w := &imageWriter{o: o, src: src, ranges: ranges, ps: ps, h: h}
	if o.key != nil {
		p, err := o.key.params()
		if err != nil {
			return nil, err
		}
		if w.keys, err = newImageKeys(o.key.Master, h.ID); err != nil {
			return nil, err
		}
		p.KCV = w.keys.kcv
		h.Enc = &p
	}
	return w, nil
}

// checkGeometry checks page size, chunk size and ranges against what
// readers accept.
func checkGeometry(ranges []Range, ps uint64, o writerOptions) error {
	if ps < 512 || ps > maxPageSize || ps&(ps-1) != 0 {
		return fmt.Errorf("page size %d is not a power of two between 512 and %d", ps, maxPageSize)
	}
	if o.chunkSize < minChunkSize || o.chunkSize > maxChunkSize || uint64(o.chunkSize)%ps != 0 {
		return fmt.Errorf("chunk size %d must be a multiple of the %d-byte page size within [%d, %d]", o.chunkSize, ps, minChunkSize, maxChunkSize)
	}
	if err := checkRanges(ranges, ps); err != nil {
		return fmt.Errorf("source ranges: %w", err)
	}
	if len(ranges) == 0 {
		return errors.New("source has no RAM ranges: nothing to save")
	}
	if err := checkRanges(o.exclude, ps); err != nil {
		return fmt.Errorf("excluded ranges: %w", err)
	}
	if uint64(maxChunks(ranges, uint64(o.chunkSize))) > maxChunkCount {
		return fmt.Errorf("%d bytes of RAM need more than %d chunks: use a larger chunk size", totalSize(ranges), maxChunkCount)
	}
	return nil
}

// writeHeader writes the header with no chunk count yet.
func (w *imageWriter) writeHeader(out Output) error {
	hdr, err := w.h.encode()
	if err != nil {
		return err
	}
	w.hdr = hdr
	_, err = out.WriteAt(hdr, 0)
	return err
}

// writeChunks runs the capture pipeline: every chunk, in order, after
// the header.
func (w *imageWriter) writeChunks(ctx context.Context, out Output) error {
	p := &pipeline{o: w.o, src: w.src, ps: w.ps, ranges: w.ranges, keys: w.keys}
	entries, st, err := p.run(ctx, out, uint64(len(w.hdr)))
	w.entries, w.st = entries, st
	return err
}

// writeIndex writes the index after the last chunk, then the header again
// with the final chunk count (same length), and syncs both.
func (w *imageWriter) writeIndex(out Output) error {
	w.idxOff = uint64(len(w.hdr))
	if n := len(w.entries); n > 0 {
		w.idxOff = w.entries[n-1].Offset + uint64(w.entries[n-1].Length)
	}
	w.idx = encodeIndex(w.entries)
	if _, err := out.WriteAt(w.idx, int64(w.idxOff)); err != nil {
		return err
	}
	w.h.ChunkCount = uint32(len(w.entries))
	hdr, err := w.h.encode()
	if err != nil {
		return err
	}
	w.hdr = hdr
	if _, err := out.WriteAt(hdr, 0); err != nil {
		return err
	}
	return out.Sync()
}

// commit writes the commit area (zero padding to a commitBlock boundary,
// then the commit record's two copies, each in a block of its own), whose
// digest binds header and index, and syncs: from here the image is
// resumable.
func (w *imageWriter) commit(out Output) error {
	end := w.idxOff + uint64(len(w.idx))
	c := &commit{
		Major:       w.h.Major,
		State:       stateCommitted,
		Seq:         1,
		ID:          w.h.ID,
		IndexOffset: w.idxOff,
		Length:      end + commitPad(end) + commitArea,
		ChunkCount:  uint32(len(w.entries)),
		StoredPages: w.st.StoredPages,
		ZeroPages:   w.st.ZeroPages,
	}
	cb := sealCommit(c, w.keys, w.hdr, w.idx)
	area := make([]byte, commitPad(end)+commitArea)
	copy(area[len(area)-commitArea:], cb)
	copy(area[len(area)-commitBlock:], cb)
	if _, err := out.WriteAt(area, int64(end)); err != nil {
		return err
	}
	if err := out.Sync(); err != nil {
		return err
	}
	w.st.RAMBytes = totalSize(w.ranges)
	w.st.ImageBytes = c.Length
	w.st.Chunks = len(w.entries)
	return nil
}

// sealCommit fills in the commit record's digest (a MAC for encrypted
// images) and encodes it.
func sealCommit(c *commit, keys *imageKeys, hdr, idx []byte) []byte {
	if keys == nil {
		c.Digest = digest(hdr, idx)
		return c.encode()
	}
	c.Digest = [commitDigestLen]byte{}
	c.Digest = keys.macOf(hdr, idx, c.encode()[:72])
	return c.encode()
}

func digest(hdr, idx []byte) [32]byte {
	d := sha256.New()
	d.Write(hdr)
	d.Write(idx)
	var out [32]byte
	d.Sum(out[:0])
	return out
}

// pipeline is the capture worker pool. A dispatcher hands out chunk jobs in
// order, each carrying an output buffer taken from a fixed pool; workers
// read, drop zero pages and compress; the caller's goroutine writes records
// in chunk order and returns the buffers. Because a job gets its buffer
// before it is handed out, the oldest unwritten job always holds one, so the
// bounded pool cannot deadlock and memory stays at
// threads*(input chunk + zstd state) + (threads+spareRecords) output buffers.
type pipeline struct {
	o      writerOptions
	src    Source
	ps     uint64
	ranges []Range
	keys   *imageKeys // nil: plain image
}

// idleHorizon is the time constant over which a worker weighs its recent
// waiting against its recent work: long enough that one flush of the
// O_DIRECT stage to a slow target (0.5 s at 16 MiB/s) outweighs the work
// that follows it, short enough to follow a target that slows down.
const idleHorizon = 200 * time.Millisecond

// zstdIdle is the share of its recent time a worker must have spent
// waiting for work for Auto to code its next chunk with zstd. Waiting means
// the CPUs have room while the target is what limits the capture, so CPU
// spent shrinking the bytes costs no time; busy workers mean the CPUs
// limit it, and S2 shortens the capture. The mix settles where the
// workers wait about this much.
const zstdIdle = 0.3

// codecFor picks the codec of the chunk in slot, coded by a worker that
// spent the share idle of its recent time waiting for work.
func (p *pipeline) codecFor(slot int, idle float64) Compression {
	if p.o.compression != Auto {
		return p.o.compression
	}
	if p.o.pick != nil {
		return p.o.pick(slot)
	}
	if idle >= zstdIdle {
		return Zstd
	}
	return S2
}

// idleMeter is a worker's share of recent time spent waiting, an average
// over time that decays with idleHorizon.
type idleMeter struct {
	share float64
	mark  time.Time
}

// add accounts the time since the last call as waiting or working.
func (m *idleMeter) add(waiting bool) {
	now := time.Now()
	w := 1 - math.Exp(-float64(now.Sub(m.mark))/float64(idleHorizon))
	target := 0.0
	if waiting {
		target = 1
	}
	m.share += (target - m.share) * w
	m.mark = now
}

type job struct {
	seq  int
	addr uint64
	size int
	out  []byte
	skip []Range // excluded ranges overlapping the chunk, in order
	idle float64 // share of its recent time the worker waited (codecFor)
}

type result struct {
	seq         int
	rec         []byte // nil: chunk held only zero pages
	out         []byte // buffer to recycle
	ram         uint64
	zero, store uint64
	excluded    uint64
	s2          bool // rec is coded with S2
	raw         bool // rec holds the pages as they are
	err         error
}

func (p *pipeline) run(ctx context.Context, out Output, off uint64) ([]indexEntry, Stats, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	nthreads := p.o.threads
	maxRec := chunkOverhead(p.o.chunkSize/int(p.ps)) + payloadBound(p.o.chunkSize) + gcmTagLen
	pool := make(chan []byte, nthreads+spareRecords)
	for range cap(pool) {
		pool <- make([]byte, maxRec)
	}
	jobs := make(chan job)
	results := make(chan result, nthreads+spareRecords)
	go p.dispatch(ctx, pool, jobs)
	var wg sync.WaitGroup
	for range nthreads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.worker(ctx, jobs, results)
		}()
	}
	go func() { wg.Wait(); close(results) }()
	return p.collect(ctx, cancel, out, off, pool, results)
}

// dispatch hands out the chunk jobs in order, each with an output buffer
// from pool, until all are out or ctx ends.
func (p *pipeline) dispatch(ctx context.Context, pool chan []byte, jobs chan<- job) {
	defer close(jobs)
	seq := 0
	ex := p.o.exclude
	for _, r := range p.ranges {
		for a := r.Start; a < r.End; a += uint64(p.o.chunkSize) {
			end := min(a+uint64(p.o.chunkSize), r.End)
			for len(ex) > 0 && ex[0].End <= a {
				ex = ex[1:]
			}
			n := 0
			for n < len(ex) && ex[n].Start < end {
				n++
			}
			var buf []byte
			select {
			case buf = <-pool:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- job{seq: seq, addr: a, size: int(end - a), out: buf, skip: ex[:n]}:
			case <-ctx.Done():
				return
			}
			seq++
		}
	}
}

// collect writes the workers' records in chunk order from off, returns
// their buffers to pool, and drains results after a failure so the
// workers exit.
func (p *pipeline) collect(ctx context.Context, cancel context.CancelFunc, out Output, off uint64, pool chan<- []byte, results <-chan result) ([]indexEntry, Stats, error) {
	var (
		entries []indexEntry
		st      Stats
		pending = map[int]result{}
		next    = 0
		done    uint64
		total   = totalSize(p.ranges)
		firstE  error
		flushed = off // start of the bytes not yet handed to writeback
	)
	wb, _ := out.(writebacker)
	for r := range results {
		if firstE != nil {
			continue // drain so workers exit
		}
		if r.err != nil {
			firstE = r.err
			cancel()
			continue
		}
		pending[r.seq] = r
		for {
			r, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			if r.rec != nil {
				if _, err := out.WriteAt(r.rec, int64(off)); err != nil {
					firstE = err
					cancel()
					break
				}
				entries = append(entries, indexEntry{Offset: off, Length: uint32(len(r.rec)), CRC: le.Uint32(r.rec[len(r.rec)-crcLen:])})
				off += uint64(len(r.rec))
				if wb != nil && off-flushed >= writebackBatch {
					wb.StartWriteback(int64(flushed), int64(off-flushed))
					flushed = off
				}
				if r.s2 {
					st.S2Chunks++
				}
				if r.raw {
					st.RawChunks++
				}
			}
			st.ZeroPages += r.zero
			st.ExcludedPages += r.excluded
			st.StoredPages += r.store
			done += r.ram
			pool <- r.out
			if p.o.progress != nil {
				p.o.progress(done, total)
			}
		}
	}
	if firstE == nil {
		firstE = ctx.Err()
	}
	if firstE != nil {
		return nil, Stats{}, firstE
	}
	return entries, st, nil
}

// writebacker is an Output that can start writing data to stable storage
// without waiting for it. Write hands it each writebackBatch of records as
// they are written, so the disk works while later chunks compress and the
// Sync before the commit only waits for the tail.
type writebacker interface {
	StartWriteback(off, n int64)
}

const writebackBatch = 8 << 20

// worker compresses jobs. Each worker owns its input buffer and an
// encoder reused across chunks.
func (p *pipeline) worker(ctx context.Context, jobs <-chan job, results chan<- result) {
	enc := &encoders{level: p.o.level, chunkSize: p.o.chunkSize}
	defer enc.close()
	in := make([]byte, p.o.chunkSize)
	zero := make([]byte, p.ps)
	var ext []extent
	v, canView := p.src.(viewer)
	idle := idleMeter{mark: time.Now()}
	for j := range jobs {
		idle.add(true)
		j.idle = idle.share
		r := result{seq: j.seq, out: j.out, ram: uint64(j.size)}
		buf := in[:j.size]
		if p.excludedAll(j) {
			r.zero = uint64(j.size) / p.ps
			r.excluded = r.zero
			goto send
		}
		if canView {
			if m, done, ok := v.view(j.addr, j.size); ok {
				mapped := p.compressMapped(&r, enc, m, buf, j, zero, ext[:0])
				done()
				if mapped {
					goto send
				}
			}
		}
		if n, err := p.src.ReadAt(buf, int64(j.addr)); err != nil && !(errors.Is(err, io.EOF) && n == len(buf)) {
			r.err = fmt.Errorf("reading RAM at %#x: %w", j.addr, err)
		} else {
			p.compress(&r, enc, buf, buf, j, zero, ext[:0])
		}
	send:
		idle.add(false)
		select {
		case results <- r:
		case <-ctx.Done():
			return
		}
	}
}

// compressMapped compresses mapped memory. A page the kernel cannot
// provide (a core file truncated under us, a poisoned page in
// /proc/vmcore) faults; with SetPanicOnFault that is a recoverable panic,
// and the caller falls back to ReadAt, which reports the error properly.
func (p *pipeline) compressMapped(r *result, enc *encoders, m, buf []byte, j job, zero []byte, ext []extent) (ok bool) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if e := recover(); e != nil {
			if _, fault := e.(interface{ Addr() uintptr }); !fault {
				panic(e)
			}
			// The encoder may have stopped mid-chunk, and the page
			// counts start again with the ReadAt fallback.
			enc.reset()
			*r = result{seq: r.seq, out: r.out, ram: r.ram}
			ok = false
		}
	}()
	p.compress(r, enc, m, buf, j, zero, ext)
	return true
}

// viewer is a Source that can lend its memory without copying (mmap).
type viewer interface {
	view(addr uint64, n int) (b []byte, done func(), ok bool)
}

// compress drops zero pages from src, packs the rest into buf (src itself
// for sources read with ReadAt: compaction in place, so each page is read
// once and copied at most once) and builds the chunk record in j.out, with
// the codec codecFor picks now. It fills in r's record and page counts.
// The extents are found first so that a chunk of one run needs no copy.
func (p *pipeline) compress(r *result, encs *encoders, src, buf []byte, j job, zero []byte, ext []extent) {
	ps := int(p.ps)
	skip := j.skip
	for off := 0; off < len(src); off += ps {
		addr := j.addr + uint64(off)
		for len(skip) > 0 && skip[0].End <= addr {
			skip = skip[1:]
		}
		if len(skip) > 0 && skip[0].Start <= addr {
			// Excluded: not read, not stored, restored as zero.
			n := min(skip[0].End-addr, uint64(len(src)-off)) / p.ps
			r.zero += n
			r.excluded += n
			off += int(n-1) * ps
			continue
		}
		page := src[off : off+ps]
		if bytes.Equal(page, zero) {
			r.zero++
			continue
		}
		if k := len(ext); k > 0 && ext[k-1].Addr+uint64(ext[k-1].Pages)*p.ps == addr {
			ext[k-1].Pages++
		} else {
			ext = append(ext, extent{Addr: addr, Pages: 1})
		}
	}
	if len(ext) == 0 {
		return
	}
	// One run of pages (the common case for busy RAM) is compressed where it
	// is; otherwise the runs are packed into buf, in place when src is buf.
	var raw []byte
	if len(ext) == 1 {
		start := int(ext[0].Addr - j.addr)
		raw = src[start : start+int(ext[0].Pages)*ps]
	} else {
		n := 0
		for _, e := range ext {
			start, size := int(e.Addr-j.addr), int(e.Pages)*ps
			n += copy(buf[n:], src[start:start+size]) // copy is memmove: safe in place, n <= start
		}
		raw = buf[:n]
	}
	n := len(raw)
	c := &chunk{Number: uint32(j.seq), Extents: ext, RawLen: uint32(n), Codec: p.codecFor(j.seq, j.idle)}
	enc, err := encs.get(c.Codec)
	if err != nil {
		r.err = err
		return
	}
	tagged := p.o.compression == Auto
	hdrLen := chunkOverhead(len(ext)) - crcLen
	rec := enc.appendEncoded(j.out[:hdrLen], raw)
	if len(rec)-hdrLen >= n {
		// Not shrunk (random or already compressed pages): stored as they
		// are, which a reader copies instead of decoding.
		rec = append(rec[:hdrLen], raw...)
		r.raw = true
	}
	if p.keys == nil {
		c.RawSum = sum(raw)
		putChunkHeader(rec, c, len(rec)-hdrLen, tagged)
	} else {
		// Sealed in place; the record header (slot, extents, lengths) is
		// the additional data. A sum of the pages would let anyone confirm
		// a guess of them, so none is stored: the GCM tag checks them.
		putChunkHeader(rec, c, len(rec)-hdrLen+gcmTagLen, tagged)
		rec = p.keys.aead.Seal(rec[:hdrLen], chunkNonce(c.Number), rec[hdrLen:], rec[:hdrLen])
	}
	r.rec = le.AppendUint32(rec, sum(rec))
	r.store = uint64(n / ps)
	r.s2 = c.Codec == S2
}

// excludedAll reports whether WithExclude covers all of j.
func (p *pipeline) excludedAll(j job) bool {
	return len(j.skip) == 1 && j.skip[0].Start <= j.addr && j.skip[0].End >= j.addr+uint64(j.size)
}

// windowFor picks a zstd window covering a whole chunk (chunks are
// independent frames, so a larger window would only cost memory).
func windowFor(chunkSize int) int {
	w := zstd.MinWindowSize
	for w < chunkSize && w < zstd.MaxWindowSize {
		w <<= 1
	}
	return w
}
