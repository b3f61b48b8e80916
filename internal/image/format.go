package image

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"time"

	"github.com/cespare/xxhash/v2"
)

// On-disk layout; docs/image-format.md is the specification and must change
// together with this file. All integers are little endian.
const (
	versionMajor    = 5 // plain images; readers refuse majors they do not know
	versionMajorEnc = 6 // encrypted images: major 5 plus the encryption block
	versionMinor    = 0 // readers accept newer minors (additions only)
	// Majors 1 (plain) and 2 (encrypted) had one commit record that a
	// torn write could corrupt; 3 and 4 checked chunk records with CRC32C
	// and had no stored chunks. All are refused by name (VersionError).
	oldMajorPlain   = 1
	oldMajorEnc     = 2
	crc32MajorPlain = 3
	crc32MajorEnc   = 4

	headerMagic = "KJUMPIMG"
	chunkMagic  = "KJCK"
	indexMagic  = "KJIX"
	commitMagic = "KJCOMMIT"

	headerFixedLen = 64
	chunkFixedLen  = 32
	extentLen      = 12 // paddr uint64, pages uint32
	indexFixedLen  = 16
	indexEntryLen  = 16  // offset uint64, length uint32, crc uint32
	commitLen      = 128 // one copy of the commit record
	crcLen         = 4
	// commitBlock is the block each of the commit record's two copies has
	// to itself (the record, then zeros): 4 KiB, the largest physical
	// sector in use, so a write torn by power loss can damage at most the
	// copy being written. The image ends with the two blocks, aligned to
	// commitBlock, after zero padding behind the index.
	commitBlock = 4096
	commitArea  = 2 * commitBlock

	defaultPageSize  = 4096
	defaultChunkSize = 2 << 20

	// Parser limits: far above anything Write produces, low enough that a
	// damaged length field cannot make a reader allocate without bound.
	maxRanges      = 1 << 16
	maxMetadataLen = 1 << 20
	// maxChunkSize keeps a reader worker (record, decoded pages, zstd
	// window) near 3 chunk sizes: readerMemoryBudget holds at least one.
	maxChunkSize  = 8 << 20
	minChunkSize  = 4096
	maxPageSize   = 1 << 21
	maxChunkCount = 1 << 28
	// maxPhysAddr is the top of x86-64's 52-bit physical address space:
	// no RAM range of a real machine ends above it, and sums of ranges
	// below it cannot overflow.
	maxPhysAddr = 1 << 52
	// minRecordLen is the smallest chunk record: one extent, no payload.
	minRecordLen    = chunkFixedLen + extentLen + crcLen
	stateCommitted  = 1
	stateInvalid    = 2 // spent: resumed, refused, or invalidated by hand
	stateRestoring  = 3 // a restore started at boot and has not finished
	commitDigestLen = 32
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// sum is the checksum of chunk records and of the pages they hold: the low
// 32 bits of XXH64 (seed 0). It covers the image's bulk (every stored
// byte, twice), where CRC32C cost too much on CPUs without SSE4.2 (QEMU's
// default model, so most guests): 0.5 GB/s under TCG against XXH64's 4,
// 2.6 against 17 natively (BenchmarkPerByte). The small records (header,
// index, commit) keep CRC32C.
func sum(b []byte) uint32 { return uint32(xxhash.Sum64(b)) }

var le = binary.LittleEndian

// Metadata describes the saved system. It is stored as JSON inside the
// checksummed header so fields can be added without a format change;
// readers ignore fields they do not know.
type Metadata struct {
	KernelRelease string    `json:"kernel_release"`
	BootID        string    `json:"boot_id"`
	Hostname      string    `json:"hostname"`
	Created       time.Time `json:"created"`
	// PageSize is the saved kernel's page size; 0 means 4096.
	PageSize    uint32        `json:"page_size"`
	JumpBack    JumpBack      `json:"jump_back"`
	Filesystems []Fingerprint `json:"filesystems,omitempty"`
	// FreePages is how many pages Write left out because the saved kernel
	// had them free (WithExclude); they are restored as zeros.
	FreePages uint64 `json:"free_pages,omitempty"`
	// Discarded are free pages (of FreePages) whose contents the saved
	// kernel does not care about, because it does not zero free pages
	// (init_on_free off): Restore leaves them as they are instead of
	// zeroing them (WithDiscard).
	Discarded PageRanges `json:"discarded,omitempty"`
	// Extra holds anything else a caller wants to carry (tool versions,
	// kernel command line); the image does not interpret it.
	Extra map[string]string `json:"extra,omitempty"`
}

// JumpBack is where the helper kernel re-enters the original kernel and the
// GDT descriptor it needs; the image stores it without interpreting it.
type JumpBack struct {
	Entry    uint64 `json:"entry"`
	GDTLimit uint16 `json:"gdt_limit"`
	GDTBase  uint64 `json:"gdt_base"`
	Flags    uint32 `json:"flags"`
}

// Fingerprint identifies the state of a mounted filesystem at hibernation,
// so resume can refuse when the disk changed underneath the image.
type Fingerprint struct {
	Device     string `json:"device"`
	UUID       string `json:"uuid"`
	Type       string `json:"type"`
	Generation string `json:"generation"` // e.g. ext4 s_wtime/s_mtime, btrfs generation
}

// header is the first record of an image.
//
//	off len field
//	  0   8 magic "KJUMPIMG"
//	  8   2 version major
//	 10   2 version minor
//	 12   4 header length (whole record incl. CRC)
//	 16  16 image id (random; the commit record repeats it)
//	 32   4 page size
//	 36   4 chunk size (RAM bytes covered by one chunk)
//	 40   4 compression (1 = zstd, 2 = s2, 3 = auto: each chunk names its own)
//	 44   4 range count
//	 48   4 metadata length
//	 52   4 chunk count (0 until the writer finishes)
//	 56   8 RAM bytes (sum of ranges)
//	 64 128 encryption block (major 2 only, see encodeEncBlock)
//	  .  16*n ranges (start, end)
//	  .   m metadata JSON
//	  .   4 CRC32C of all preceding header bytes
type header struct {
	Major       uint16 // versionMajor, or versionMajorEnc when Enc is set
	Enc         *encParams
	ID          [16]byte
	PageSize    uint32
	ChunkSize   uint32
	Compression Compression
	ChunkCount  uint32
	Ranges      []Range
	Meta        Metadata
	metaJSON    []byte
	Minor       uint16
}

func (h *header) encode() ([]byte, error) {
	meta, err := json.Marshal(h.Meta)
	if err != nil {
		return nil, fmt.Errorf("encoding metadata: %w", err)
	}
	if len(meta) > maxMetadataLen {
		return nil, fmt.Errorf("metadata is %d bytes, more than the %d allowed: drop Extra entries or filesystem fingerprints", len(meta), maxMetadataLen)
	}
	if len(h.Ranges) > maxRanges {
		return nil, fmt.Errorf("%d RAM ranges, more than the %d an image can hold", len(h.Ranges), maxRanges)
	}
	major, encLen := uint16(versionMajor), 0
	if h.Enc != nil {
		major, encLen = versionMajorEnc, encBlockLen
	}
	h.Major = major
	n := headerFixedLen + encLen + 16*len(h.Ranges) + len(meta) + crcLen
	b := make([]byte, n)
	copy(b, headerMagic)
	le.PutUint16(b[8:], major)
	le.PutUint16(b[10:], versionMinor)
	le.PutUint32(b[12:], uint32(n))
	copy(b[16:32], h.ID[:])
	le.PutUint32(b[32:], h.PageSize)
	le.PutUint32(b[36:], h.ChunkSize)
	le.PutUint32(b[40:], uint32(h.Compression))
	le.PutUint32(b[44:], uint32(len(h.Ranges)))
	le.PutUint32(b[48:], uint32(len(meta)))
	le.PutUint32(b[52:], h.ChunkCount)
	le.PutUint64(b[56:], totalSize(h.Ranges))
	if h.Enc != nil {
		encodeEncBlock(b[headerFixedLen:], h.Enc)
	}
	p := b[headerFixedLen+encLen:]
	for _, r := range h.Ranges {
		le.PutUint64(p, r.Start)
		le.PutUint64(p[8:], r.End)
		p = p[16:]
	}
	copy(p, meta)
	le.PutUint32(b[n-crcLen:], crc(b[:n-crcLen]))
	h.metaJSON = meta
	return b, nil
}

// headerLen validates the fixed part of a header and returns the length of
// the whole record, so a reader knows how much to read.
func headerLen(b []byte) (int, error) {
	if len(b) < headerFixedLen {
		return 0, corrupt("header", 0, "image is %d bytes, shorter than a header", len(b))
	}
	if string(b[:8]) != headerMagic {
		return 0, ErrNotImage
	}
	enc, err := encLenOf(b)
	if err != nil {
		return 0, err
	}
	n := int64(le.Uint32(b[12:]))
	nr, nm := int64(le.Uint32(b[44:])), int64(le.Uint32(b[48:]))
	if nr > maxRanges || nm > maxMetadataLen || n != headerFixedLen+int64(enc)+16*nr+nm+crcLen {
		return 0, corrupt("header", 12, "header length %d does not match %d ranges and %d metadata bytes", n, nr, nm)
	}
	return int(n), nil
}

// encLenOf is the length of the encryption block a header of this major
// version carries.
func encLenOf(b []byte) (int, error) {
	switch major := le.Uint16(b[8:]); major {
	case versionMajor:
		return 0, nil
	case versionMajorEnc:
		return encBlockLen, nil
	default:
		return 0, &VersionError{Major: major, Minor: le.Uint16(b[10:])}
	}
}

// parseHeader checks and decodes a complete header record.
func parseHeader(b []byte) (*header, error) {
	n, err := headerLen(b)
	if err != nil {
		return nil, err
	}
	if len(b) < n {
		return nil, corrupt("header", int64(len(b)), "header is truncated: %d of %d bytes", len(b), n)
	}
	b = b[:n]
	if got, want := crc(b[:n-crcLen]), le.Uint32(b[n-crcLen:]); got != want {
		return nil, corrupt("header", 0, "header checksum mismatch (stored %08x, computed %08x)", want, got)
	}
	h := &header{
		PageSize:    le.Uint32(b[32:]),
		ChunkSize:   le.Uint32(b[36:]),
		Compression: Compression(le.Uint32(b[40:])),
		ChunkCount:  le.Uint32(b[52:]),
		Minor:       le.Uint16(b[10:]),
		Major:       le.Uint16(b[8:]),
	}
	copy(h.ID[:], b[16:32])
	encLen, _ := encLenOf(b)
	if encLen > 0 {
		if h.Enc, err = parseEncBlock(b[headerFixedLen:]); err != nil {
			return nil, err
		}
	}
	if h.PageSize < 512 || h.PageSize > maxPageSize || h.PageSize&(h.PageSize-1) != 0 {
		return nil, corrupt("header", 32, "page size %d is not a power of two between 512 and %d", h.PageSize, maxPageSize)
	}
	if h.ChunkSize < minChunkSize || h.ChunkSize > maxChunkSize || h.ChunkSize%h.PageSize != 0 {
		return nil, corrupt("header", 36, "chunk size %d is not a multiple of the page size within [%d, %d]", h.ChunkSize, minChunkSize, maxChunkSize)
	}
	if !h.Compression.known() {
		return nil, corrupt("header", 40, "unknown compression %d: this image needs a newer kjump", uint32(h.Compression))
	}
	nr := int(le.Uint32(b[44:]))
	p := b[headerFixedLen+encLen:]
	h.Ranges = make([]Range, nr) // at most maxRanges: headerLen checked nr
	for i := range h.Ranges {
		h.Ranges[i] = Range{Start: le.Uint64(p), End: le.Uint64(p[8:])}
		p = p[16:]
	}
	if err := checkRanges(h.Ranges, uint64(h.PageSize)); err != nil {
		return nil, corrupt("header", headerFixedLen, "%v", err)
	}
	if ram := le.Uint64(b[56:]); ram != totalSize(h.Ranges) {
		return nil, corrupt("header", 56, "RAM size %d does not match the ranges (%d)", ram, totalSize(h.Ranges))
	}
	if max := maxChunks(h.Ranges, uint64(h.ChunkSize)); uint64(h.ChunkCount) > max {
		return nil, corrupt("header", 52, "chunk count %d exceeds the %d chunks the ranges allow", h.ChunkCount, max)
	}
	h.metaJSON = p[:len(p)-crcLen]
	if err := json.Unmarshal(h.metaJSON, &h.Meta); err != nil {
		return nil, corrupt("header", int64(n-crcLen-len(h.metaJSON)), "metadata is not valid JSON: %v", err)
	}
	return h, nil
}

// maxRecordLen bounds a chunk record of h: every page stored, in extents
// of one page, compressed as badly as a codec can, sealed. Readers refuse
// index entries above it, so a record buffer never exceeds it.
func maxRecordLen(h *header) uint64 {
	return uint64(chunkOverhead(int(h.ChunkSize/h.PageSize))) + uint64(payloadBound(int(h.ChunkSize))) + gcmTagLen
}

// maxChunks is the number of chunks Write cuts ranges into; all-zero chunks
// are not stored, so an image has at most this many. Ranges are below
// maxPhysAddr (checkRanges), so nothing overflows.
func maxChunks(rs []Range, chunkSize uint64) uint64 {
	var n uint64
	for _, r := range rs {
		n += (r.Size() + chunkSize - 1) / chunkSize
	}
	return n
}

// extent is a run of consecutive non-zero pages stored in a chunk.
type extent struct {
	Addr  uint64
	Pages uint32
}

// chunk record, one per stored chunk, back to back after the header.
//
//	off len field
//	  0   4 magic "KJCK"
//	  4   4 chunk slot: index of the chunkSize piece of RAM it covers
//	        (ranges cut in order); strictly increasing in file order
//	  8   4 extent count
//	 12   4 compressed payload length
//	 16   4 raw length (stored pages * page size)
//	 20   4 sum (XXH64, low 32 bits) of the raw (decompressed) pages
//	 24   4 codec of the payload (1 zstd, 2 S2) in an Auto image; zero otherwise
//	 28   4 reserved, zero
//	 32  12*n extents (paddr, page count)
//	  .   c the pages, in extent order, compressed: a zstd frame or an S2
//	        block; or, when c is the raw length, the pages as they are (a
//	        chunk the codec did not shrink; a coded payload is always shorter)
//	  .   4 sum (XXH64, low 32 bits) of all preceding record bytes
type chunk struct {
	Number  uint32
	Extents []extent
	RawLen  uint32
	RawSum  uint32
	Codec   Compression // Zstd or S2: the header's, or the record's in an Auto image
	Payload []byte      // aliases the record buffer
	Slot    Range       // RAM the chunk covers, set by the reader
	placed  bool        // decoded into the sink's memory (Lender)
	stored  bool        // the payload was the pages as they are
}

func chunkOverhead(extents int) int { return chunkFixedLen + extents*extentLen + crcLen }

// putChunkHeader writes the fixed part and extents into b, which must have
// room for chunkOverhead(len(c.Extents)) - crcLen bytes; the payload follows.
// The record names c.Codec only in an Auto image (tagged).
func putChunkHeader(b []byte, c *chunk, payloadLen int, tagged bool) int {
	copy(b, chunkMagic)
	le.PutUint32(b[4:], c.Number)
	le.PutUint32(b[8:], uint32(len(c.Extents)))
	le.PutUint32(b[12:], uint32(payloadLen))
	le.PutUint32(b[16:], c.RawLen)
	le.PutUint32(b[20:], c.RawSum)
	le.PutUint64(b[24:], 0)
	if tagged {
		le.PutUint32(b[24:], uint32(c.Codec))
	}
	p := chunkFixedLen
	for _, e := range c.Extents {
		le.PutUint64(b[p:], e.Addr)
		le.PutUint32(b[p+8:], e.Pages)
		p += extentLen
	}
	return p
}

// parseChunk checks a chunk record's framing and CRC (unless recordCRC is
// false: see WithVerifiedStored) and decodes its extents, validating them
// against the image geometry. It does not decompress; the caller checks
// RawSum after decoding.
func parseChunk(b []byte, h *header, ext []extent, recordCRC bool) (*chunk, error) {
	if len(b) < chunkFixedLen+crcLen {
		return nil, fmt.Errorf("record is %d bytes, shorter than a chunk header", len(b))
	}
	if string(b[:4]) != chunkMagic {
		return nil, fmt.Errorf("bad chunk magic %q", b[:4])
	}
	if recordCRC {
		if got, want := sum(b[:len(b)-crcLen]), le.Uint32(b[len(b)-crcLen:]); got != want {
			return nil, fmt.Errorf("chunk checksum mismatch (stored %08x, computed %08x)", want, got)
		}
	}
	c := &chunk{Number: le.Uint32(b[4:]), RawLen: le.Uint32(b[16:]), RawSum: le.Uint32(b[20:])}
	ne, nc := uint64(le.Uint32(b[8:])), uint64(le.Uint32(b[12:]))
	maxPages := uint64(h.ChunkSize / h.PageSize)
	if ne == 0 || ne > maxPages {
		return nil, fmt.Errorf("extent count %d outside [1, %d]", ne, maxPages)
	}
	if uint64(chunkOverhead(int(ne)))+nc != uint64(len(b)) {
		return nil, fmt.Errorf("record length %d does not match %d extents and %d payload bytes", len(b), ne, nc)
	}
	c.Codec = h.Compression
	if h.Compression == Auto {
		c.Codec = Compression(le.Uint32(b[24:]))
		if !c.Codec.chunkCodec() {
			return nil, fmt.Errorf("chunk codec %d is neither zstd (1) nor s2 (2)", uint32(c.Codec))
		}
	} else if le.Uint32(b[24:]) != 0 {
		return nil, fmt.Errorf("reserved field is not zero")
	}
	if le.Uint32(b[28:]) != 0 {
		return nil, fmt.Errorf("reserved field is not zero")
	}
	ext = ext[:0]
	var pages uint64
	p := chunkFixedLen
	for i := uint64(0); i < ne; i++ {
		e := extent{Addr: le.Uint64(b[p:]), Pages: le.Uint32(b[p+8:])}
		p += extentLen
		if e.Pages == 0 || e.Addr%uint64(h.PageSize) != 0 {
			return nil, fmt.Errorf("extent %d at %#x: empty or not page aligned", i, e.Addr)
		}
		if i > 0 {
			prev := ext[i-1]
			if e.Addr < prev.Addr+uint64(prev.Pages)*uint64(h.PageSize) {
				return nil, fmt.Errorf("extent %d at %#x overlaps or precedes the previous one", i, e.Addr)
			}
		}
		if !inRanges(h.Ranges, e.Addr, uint64(e.Pages)*uint64(h.PageSize)) {
			return nil, fmt.Errorf("extent %d [%#x, +%d pages) lies outside the saved RAM ranges", i, e.Addr, e.Pages)
		}
		pages += uint64(e.Pages)
		ext = append(ext, e)
	}
	if pages > maxPages || pages*uint64(h.PageSize) != uint64(c.RawLen) {
		return nil, fmt.Errorf("raw length %d does not match %d pages in the extents", c.RawLen, pages)
	}
	c.Extents = ext
	c.Payload = b[p : p+int(nc)]
	return c, nil
}

// inRanges reports whether [addr, addr+n) lies inside one of rs (sorted).
func inRanges(rs []Range, addr, n uint64) bool {
	lo, hi := 0, len(rs)
	for lo < hi {
		m := (lo + hi) / 2
		if rs[m].End <= addr {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == len(rs) {
		return false
	}
	r := rs[lo]
	return addr >= r.Start && n <= r.End-addr
}

// indexEntry locates one chunk record.
type indexEntry struct {
	Offset uint64
	Length uint32
	CRC    uint32 // the record's trailing CRC, repeated
}

// index follows the last chunk.
//
//	off len field
//	  0   4 magic "KJIX"
//	  4   4 entry count
//	  8   8 reserved, zero
//	 16  16*n entries (record offset, record length, record sum)
//	  .   4 CRC32C of all preceding index bytes
func encodeIndex(entries []indexEntry) []byte {
	b := make([]byte, indexFixedLen+indexEntryLen*len(entries)+crcLen)
	copy(b, indexMagic)
	le.PutUint32(b[4:], uint32(len(entries)))
	p := indexFixedLen
	for _, e := range entries {
		le.PutUint64(b[p:], e.Offset)
		le.PutUint32(b[p+8:], e.Length)
		le.PutUint32(b[p+12:], e.CRC)
		p += indexEntryLen
	}
	le.PutUint32(b[p:], crc(b[:p]))
	return b
}

func indexLen(n uint32) uint64 { return indexFixedLen + indexEntryLen*uint64(n) + crcLen }

// indexPiece is how much of an index a reader holds at a time: a multiple
// of indexEntryLen, so no entry straddles two pieces.
const indexPiece = 64 << 10

// scanIndex reads the index of c from in, piece by piece, feeding every
// byte to d (the commit digest), and checks its framing and CRC and that
// its records, each at most maxRecord bytes, tile [start, c.IndexOffset)
// exactly, so every byte between the header and the index belongs to a
// checked chunk. The caller has checked that the index, indexLen(count)
// bytes, ends where the commit record starts. Each entry that passes is
// handed to visit (if not nil) as it is read; an error from visit ends
// the scan. A CRC mismatch is reported before any other fault, as the
// likelier cause.
func scanIndex(in Input, c *commit, start, maxRecord uint64, d io.Writer, visit func(uint32, indexEntry) error) error {
	n, end, count := indexLen(c.ChunkCount), c.IndexOffset, c.ChunkCount
	fault := func(format string, args ...any) error {
		return corrupt("index", int64(end), format, args...)
	}
	var firstFault error
	var sum, stored uint32
	off, i := start, uint32(0)
	buf := make([]byte, min(n, indexPiece))
	for pos := uint64(0); pos < n; {
		piece := buf[:min(uint64(len(buf)), n-pos)]
		if err := readFull(in, piece, int64(end+pos), in.Size()); err != nil {
			return err
		}
		d.Write(piece)
		body := piece
		if pos+uint64(len(piece)) == n { // the last piece holds the CRC (n-pos is 4 mod 16)
			body, stored = piece[:len(piece)-crcLen], le.Uint32(piece[len(piece)-crcLen:])
		}
		sum = crc32.Update(sum, castagnoli, body)
		if pos == 0 {
			switch {
			case string(body[:4]) != indexMagic:
				firstFault = fault("bad index magic %q", body[:4])
			case le.Uint32(body[4:]) != count || le.Uint64(body[8:]) != 0:
				firstFault = fault("index entry count %d does not match the commit record's %d", le.Uint32(body[4:]), count)
			}
			body = body[indexFixedLen:]
		}
		pos += uint64(len(piece))
		for ; firstFault == nil && len(body) >= indexEntryLen; body = body[indexEntryLen:] {
			e := indexEntry{Offset: le.Uint64(body), Length: le.Uint32(body[8:]), CRC: le.Uint32(body[12:])}
			if e.Offset != off || e.Length < minRecordLen || uint64(e.Length) > end-off {
				firstFault = fault("index entry %d (offset %d, length %d) does not continue the previous record at %d", i, e.Offset, e.Length, off)
			} else if uint64(e.Length) > maxRecord {
				firstFault = fault("index entry %d: record length %d exceeds the %d bytes a chunk of this image can take", i, e.Length, maxRecord)
			}
			if visit != nil && firstFault == nil {
				if err := visit(i, e); err != nil {
					return err
				}
			}
			off += uint64(e.Length)
			i++
		}
	}
	if sum != stored {
		return fault("index checksum mismatch (stored %08x, computed %08x)", stored, sum)
	}
	if firstFault != nil {
		return firstFault
	}
	if off != end {
		return fault("chunks end at %d but the index starts at %d", off, end)
	}
	return nil
}

// commit is the last record of an image; an image without a valid one was
// never completely written.
//
//	off len field
//	  0   8 magic "KJCOMMIT"
//	  8   2 version major
//	 10   2 version minor
//	 12   4 state (1 committed, 2 invalidated)
//	 16  16 image id (must equal the header's)
//	 32   8 image length (this record ends the image)
//	 40   8 index offset
//	 48   4 chunk count
//	 52   4 sequence: 1 when written, +1 with every state change
//	 56   8 stored pages
//	 64   8 zero pages
//	 72  32 SHA-256 of header record || index record; encrypted images:
//	        HMAC-SHA256 (MAC key) of header || index || commit bytes 0..71
//	104  20 reserved, zero
//	124   4 CRC32C of bytes 0..123
//
// The image ends with two copies, each at the start of its own
// commitBlock (see readCommit for which one counts).
type commit struct {
	Major       uint16 // the header's
	State       uint32
	ID          [16]byte
	Length      uint64
	IndexOffset uint64
	ChunkCount  uint32
	Seq         uint32
	StoredPages uint64
	ZeroPages   uint64
	Digest      [commitDigestLen]byte
}

func (c *commit) encode() []byte {
	b := make([]byte, commitLen)
	copy(b, commitMagic)
	le.PutUint16(b[8:], c.Major)
	le.PutUint16(b[10:], versionMinor)
	le.PutUint32(b[12:], c.State)
	copy(b[16:32], c.ID[:])
	le.PutUint64(b[32:], c.Length)
	le.PutUint64(b[40:], c.IndexOffset)
	le.PutUint32(b[48:], c.ChunkCount)
	le.PutUint32(b[52:], c.Seq)
	le.PutUint64(b[56:], c.StoredPages)
	le.PutUint64(b[64:], c.ZeroPages)
	copy(b[72:104], c.Digest[:])
	le.PutUint32(b[124:], crc(b[:124]))
	return b
}

// parseCommit decodes a commit record. A missing magic means the image was
// never committed; anything else wrong is corruption.
func parseCommit(b []byte) (*commit, error) {
	if len(b) != commitLen || string(b[:8]) != commitMagic {
		return nil, ErrNotCommitted
	}
	if got, want := crc(b[:124]), le.Uint32(b[124:]); got != want {
		return nil, corrupt("commit record", 124, "commit record checksum mismatch (stored %08x, computed %08x)", want, got)
	}
	if major := le.Uint16(b[8:]); major != versionMajor && major != versionMajorEnc {
		return nil, corrupt("commit record", 8, "commit record version %d is unknown", major)
	}
	if !allZero(b[104:124]) {
		return nil, corrupt("commit record", 104, "reserved commit record bytes are not zero")
	}
	c := &commit{
		Major:       le.Uint16(b[8:]),
		State:       le.Uint32(b[12:]),
		Length:      le.Uint64(b[32:]),
		IndexOffset: le.Uint64(b[40:]),
		ChunkCount:  le.Uint32(b[48:]),
		Seq:         le.Uint32(b[52:]),
		StoredPages: le.Uint64(b[56:]),
		ZeroPages:   le.Uint64(b[64:]),
	}
	copy(c.ID[:], b[16:32])
	copy(c.Digest[:], b[72:104])
	if c.State != stateCommitted && c.State != stateInvalid && c.State != stateRestoring {
		return nil, corrupt("commit record", 12, "unknown commit state %d", c.State)
	}
	if c.Seq == 0 {
		return nil, corrupt("commit record", 52, "commit record sequence is 0")
	}
	if c.ChunkCount > maxChunkCount {
		return nil, corrupt("commit record", 48, "chunk count %d is implausible", c.ChunkCount)
	}
	return c, nil
}

// commitPad is the zero padding between an index ending at end and the
// commit area, which starts at the next multiple of commitBlock.
func commitPad(end uint64) uint64 { return (commitBlock - end%commitBlock) % commitBlock }

// sameImage reports whether two commit records describe the same image,
// whatever their state and sequence (and so, encrypted, their MAC).
func sameImage(a, b *commit) bool {
	return a.Major == b.Major && a.ID == b.ID && a.Length == b.Length && a.IndexOffset == b.IndexOffset &&
		a.ChunkCount == b.ChunkCount && a.StoredPages == b.StoredPages && a.ZeroPages == b.ZeroPages
}
