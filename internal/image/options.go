package image

import (
	"fmt"
	"runtime"

	"github.com/klauspost/compress/zstd"
)

// Level trades capture speed against image size.
type Level int

const (
	LevelFast    Level = iota + 1 // zstd "fastest": about zstd -1, the hibernate default
	LevelDefault                  // zstd "default": about zstd -3
	LevelBest                     // zstd "better": about zstd -7; "best" proper is too slow for hibernation
	// LevelFastest is "fast" without Huffman coding of literals: the
	// matches are found the same way, so about 10 % more output buys
	// 10-15 % less CPU (more under emulation). For CPU-bound captures, where
	// the target writes faster than the cores compress.
	LevelFastest
)

// ParseLevel accepts "fastest", "fast", "default" and "best".
func ParseLevel(s string) (Level, error) {
	switch s {
	case "fastest":
		return LevelFastest, nil
	case "fast":
		return LevelFast, nil
	case "default":
		return LevelDefault, nil
	case "best":
		return LevelBest, nil
	}
	return 0, fmt.Errorf("unknown compression level %q: use fastest, fast, default or best", s)
}

func (l Level) String() string {
	switch l {
	case LevelFastest:
		return "fastest"
	case LevelFast:
		return "fast"
	case LevelDefault:
		return "default"
	case LevelBest:
		return "best"
	}
	return fmt.Sprintf("Level(%d)", int(l))
}

func (l Level) zstd() zstd.EncoderLevel {
	switch l {
	case LevelDefault:
		return zstd.SpeedDefault
	case LevelBest:
		return zstd.SpeedBetterCompression
	}
	return zstd.SpeedFastest
}

// Option configures Write, Verify and Restore.
type Option func(*options)

type options struct {
	compression Compression
	// pick, set only by tests, replaces Auto's choice of each chunk's codec
	// so that an image mixes codecs in a known way.
	pick      func(slot int) Compression
	level     Level
	threads   int
	chunkSize int
	progress  func(done, total uint64)
	force     bool
	zeroFill  bool
	key       *Key
	secret    *Secret
	exclude   []Range
	discard   bool // exclude is WithDiscard's
	// headers is WithVerifiedStored's Stats.Headers; nil without it.
	headers *uint32
}

// WithVerifiedStored tells Restore that VerifyStored checked this image's
// stored bytes and returned headers as Stats.Headers: Restore then skips
// each record's CRC32C, a second pass over every stored byte. What that CRC
// guarded is still checked: the payload by the pages' CRC (or, encrypted,
// by the GCM tag, which covers the header too) before any page of the
// chunk is written (after, for a sink that lends its memory: Lender), the
// headers (extents: where the pages go) against headers once all chunks
// are read. A header read back differently fails
// the restore then, after pages may have gone to the wrong addresses:
// for the restore kernel, which reboots on any failure and whose
// original was invalidated before it started, that is the same outcome.
func WithVerifiedStored(headers uint32) Option {
	return func(o *options) { o.headers = &headers }
}

// WithCompression selects the codec (Write only); the default is Auto.
func WithCompression(c Compression) Option { return func(o *options) { o.compression = c } }

// WithLevel selects the compression level (Write only). For S2, fastest and
// fast are s2.Encode, default EncodeBetter and best EncodeBest.
func WithLevel(l Level) Option { return func(o *options) { o.level = l } }

// WithThreads sets the number of compression or decompression workers;
// n <= 0 means one per CPU. Threads are capped so memory stays under
// MemoryCeiling.
func WithThreads(n int) Option { return func(o *options) { o.threads = n } }

// WithProgress calls fn, never concurrently, as work completes, with bytes
// of RAM (Write) or of chunk records (Verify, Restore) done so far.
func WithProgress(fn func(done, total uint64)) Option { return func(o *options) { o.progress = fn } }

// WithChunkSize sets how many bytes of RAM one chunk covers (Write only; a
// multiple of the page size, default 2 MiB). Tests use small chunks.
func WithChunkSize(n int) Option { return func(o *options) { o.chunkSize = n } }

// WithForce lets Verify and Restore accept an invalidated image (resume
// --force). It never accepts an uncommitted or corrupt one.
func WithForce() Option { return func(o *options) { o.force = true } }

// WithZeroFill makes Restore also write the zero pages, for sinks that do
// not read as zero where nothing is written (/dev/mem: the booted kernel's
// RAM holds its own data, and the saved kernel expects its zero pages).
func WithZeroFill() Option { return func(o *options) { o.zeroFill = true } }

// WithExclude makes Write leave out the pages in rs (sorted, page
// aligned, not overlapping: the free pages internal/freepages finds)
// without reading them. They count as zero pages: Restore with
// WithZeroFill writes them as zeros.
func WithExclude(rs []Range) Option { return func(o *options) { o.exclude, o.discard = rs, false } }

// WithDiscard is WithExclude for pages whose contents do not matter at all
// (free pages of a kernel that does not zero free pages): the image lists
// them (Metadata.Discarded, up to 256 KiB of list) and Restore with
// WithZeroFill leaves them as they are instead of zeroing them.
func WithDiscard(rs []Range) Option { return func(o *options) { o.exclude, o.discard = rs, true } }

// WithKey encrypts a new image with k (Write; see NewKey), or unlocks an
// encrypted one with an already derived key (Open: the restore kernel gets
// the key resume derived). A reader given a key refuses a plain image.
func WithKey(k *Key) Option { return func(o *options) { o.key = k } }

// WithSecret unlocks an encrypted image with the user's key file or
// passphrase, derived with the parameters in the image's header (Open,
// OpenTarget, Invalidate). A reader given a secret refuses a plain image.
func WithSecret(s Secret) Option { return func(o *options) { o.secret = &s } }

// MaxThreads bounds the worker count so the pipeline fits in MemoryCeiling,
// small enough for a helper kernel with ~100 MiB of RAM.
const MaxThreads = 4

// MemoryCeiling is the most memory the Write and Restore pipelines hold in
// buffers and codec state at the default chunk size, whatever the input
// size: per worker one chunk of input, one output record and the codec's
// state, plus spareRecords records waiting to be written in order (see
// docs/image-format.md). The process's resident set adds the Go runtime
// and, for mmapped sources, the chunks being read.
const MemoryCeiling = MaxThreads*perThreadMemory + spareRecords*defaultChunkSize

const (
	perThreadMemory = 2*defaultChunkSize + 5<<20 // zstd encoder state at a 2 MiB window: ~4.5 MiB
	spareRecords    = 2
	// processReserve is what a pipeline's process needs besides its
	// workers: the Go runtime, the binary's pages, spare records, and a
	// block target's 8 MiB O_DIRECT stage.
	processReserve = 24 << 20
)

// ThreadsFor returns how many workers, at most want and at least one,
// fit their buffers and codec state in avail bytes of free memory (the
// helper kernel's MemAvailable): a helper that runs out of memory panics,
// and the hibernation is lost.
func ThreadsFor(want int, avail uint64) int {
	fit := 0
	if avail > processReserve {
		fit = int((avail - processReserve) / perThreadMemory)
	}
	return max(1, min(want, fit, MaxThreads))
}

func buildOptions(opts []Option) options {
	o := options{compression: Auto, level: LevelFast, chunkSize: defaultChunkSize}
	for _, f := range opts {
		f(&o)
	}
	if o.threads <= 0 {
		o.threads = runtime.NumCPU()
	}
	o.threads = min(o.threads, MaxThreads)
	return o
}
