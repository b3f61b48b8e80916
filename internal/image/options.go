package image

import (
	"encoding/hex"
	"errors"
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

// Options are validated when applied: Write, Open and the Reader's methods
// return the first option's error before doing anything (the model is
// klauspost/compress zstd's encoder options). A WriterOption configures
// Write, WriteTarget and MaxImageSize; a ReaderOption configures Open,
// OpenTarget, Invalidate, InvalidateTarget, Verify, VerifyStored and
// Restore. WithThreads, WithProgress and WithKey are both (CommonOption).

// WriterOption configures Write and WriteTarget.
type WriterOption interface {
	applyWriter(*writerOptions) error
}

// ReaderOption configures Open and the reading of an image.
type ReaderOption interface {
	applyReader(*readerOptions) error
}

// writerOption and readerOption are the options of one side only.
type writerOption func(*writerOptions) error
type readerOption func(*readerOptions) error

func (f writerOption) applyWriter(o *writerOptions) error { return f(o) }
func (f readerOption) applyReader(o *readerOptions) error { return f(o) }

// CommonOption is an option meaning the same to writers and readers.
type CommonOption struct {
	w writerOption
	r readerOption
}

func (c CommonOption) applyWriter(o *writerOptions) error { return c.w(o) }
func (c CommonOption) applyReader(o *readerOptions) error { return c.r(o) }

type writerOptions struct {
	compression Compression
	// pick, set only by tests, replaces Auto's choice of each chunk's codec
	// so that an image mixes codecs in a known way.
	pick      func(slot int) Compression
	level     Level
	threads   int
	chunkSize int
	progress  func(done, total uint64)
	key       *Key
	exclude   []Range
	discard   bool // exclude is WithDiscard's
}

type readerOptions struct {
	threads  int
	progress func(done, total uint64)
	force    bool
	zeroFill bool
	key      *Key
	secret   *Secret
	// headers is WithVerifiedStored's Stats.Headers; nil without it.
	headers *uint32
	// machineRAM is WithMachineRAM's; nil without it.
	machineRAM []Range
	// digest is WithDigest's; nil without it.
	digest *[32]byte
}

func newWriterOptions(opts []WriterOption) (writerOptions, error) {
	o := writerOptions{compression: Auto, level: LevelFast, chunkSize: defaultChunkSize}
	for _, opt := range opts {
		if err := opt.applyWriter(&o); err != nil {
			return writerOptions{}, err
		}
	}
	o.threads = threadsOrCPUs(o.threads)
	return o, nil
}

func newReaderOptions(opts []ReaderOption) (readerOptions, error) {
	var o readerOptions
	for _, opt := range opts {
		if err := opt.applyReader(&o); err != nil {
			return readerOptions{}, err
		}
	}
	o.threads = threadsOrCPUs(o.threads)
	return o, nil
}

func threadsOrCPUs(n int) int {
	if n <= 0 {
		n = runtime.NumCPU()
	}
	return min(n, MaxThreads)
}

// WithVerifiedStored tells Restore that VerifyStored checked this image's
// stored bytes and returned headers as Stats.Headers: Restore then skips
// each record's sum, a second pass over every stored byte. What that sum
// guarded is still checked: the payload by the pages' sum (or, encrypted,
// by the GCM tag, which covers the header too) before any page of the
// chunk is written (after, for a sink that lends its memory: Lender), the
// headers (extents: where the pages go) against headers once all chunks
// are read. A header read back differently fails
// the restore then, after pages may have gone to the wrong addresses:
// for the restore kernel, which reboots on any failure and whose
// original was invalidated before it started, that is the same outcome.
func WithVerifiedStored(headers uint32) ReaderOption {
	return readerOption(func(o *readerOptions) error { o.headers = &headers; return nil })
}

// WithCompression selects the codec; the default is Auto.
func WithCompression(c Compression) WriterOption {
	return writerOption(func(o *writerOptions) error {
		if !c.known() {
			return fmt.Errorf("image: unknown compression %v: use Zstd, S2 or Auto", c)
		}
		o.compression = c
		return nil
	})
}

// WithLevel selects the compression level. For S2, fastest and fast are
// s2.Encode, default EncodeBetter and best EncodeBest.
func WithLevel(l Level) WriterOption {
	return writerOption(func(o *writerOptions) error {
		if l < LevelFast || l > LevelFastest {
			return fmt.Errorf("image: unknown compression level %v: use LevelFastest, LevelFast, LevelDefault or LevelBest", l)
		}
		o.level = l
		return nil
	})
}

// WithThreads sets the number of compression or decompression workers;
// 0 means one per CPU. Threads are capped so memory stays under
// MemoryCeiling.
func WithThreads(n int) CommonOption {
	check := func() error {
		if n < 0 {
			return fmt.Errorf("image: %d threads: give a positive count, or 0 for one per CPU", n)
		}
		return nil
	}
	return CommonOption{
		w: func(o *writerOptions) error { o.threads = n; return check() },
		r: func(o *readerOptions) error { o.threads = n; return check() },
	}
}

// WithProgress calls fn, never concurrently, as work completes, with bytes
// of RAM (Write) or of chunk records (Verify, Restore) done so far.
func WithProgress(fn func(done, total uint64)) CommonOption {
	return CommonOption{
		w: func(o *writerOptions) error { o.progress = fn; return nil },
		r: func(o *readerOptions) error { o.progress = fn; return nil },
	}
}

// WithChunkSize sets how many bytes of RAM one chunk covers (a multiple of
// the page size, default 2 MiB). Tests use small chunks.
func WithChunkSize(n int) WriterOption {
	return writerOption(func(o *writerOptions) error {
		if n < minChunkSize || n > maxChunkSize || n%minChunkSize != 0 {
			return fmt.Errorf("image: chunk size %d must be a multiple of %d within [%d, %d]", n, minChunkSize, minChunkSize, maxChunkSize)
		}
		o.chunkSize = n
		return nil
	})
}

// WithForce lets Verify and Restore accept an invalidated image (resume
// --force). It never accepts an uncommitted or corrupt one.
func WithForce() ReaderOption {
	return readerOption(func(o *readerOptions) error { o.force = true; return nil })
}

// WithZeroFill makes Restore also write the zero pages, for sinks that do
// not read as zero where nothing is written (/dev/mem: the booted kernel's
// RAM holds its own data, and the saved kernel expects its zero pages).
func WithZeroFill() ReaderOption {
	return readerOption(func(o *readerOptions) error { o.zeroFill = true; return nil })
}

// WithExclude makes Write leave out the pages in rs (sorted, page
// aligned, not overlapping: the free pages internal/freepages finds)
// without reading them. They count as zero pages: Restore with
// WithZeroFill writes them as zeros.
func WithExclude(rs []Range) WriterOption {
	return writerOption(func(o *writerOptions) error {
		o.exclude, o.discard = rs, false
		return checkOptionRanges("excluded", rs)
	})
}

// WithDiscard is WithExclude for pages whose contents do not matter at all
// (free pages of a kernel that does not zero free pages): the image lists
// them (Metadata.Discarded, up to 256 KiB of list) and Restore with
// WithZeroFill leaves them as they are instead of zeroing them.
func WithDiscard(rs []Range) WriterOption {
	return writerOption(func(o *writerOptions) error {
		o.exclude, o.discard = rs, true
		return checkOptionRanges("discarded", rs)
	})
}

// checkOptionRanges checks what can be checked before the page size is
// known: sorted, disjoint, not empty (Write checks the alignment).
func checkOptionRanges(what string, rs []Range) error {
	if err := checkRanges(rs, 1); err != nil {
		return fmt.Errorf("image: %s ranges: %w", what, err)
	}
	return nil
}

// WithKey encrypts a new image with k (Write; see NewKey), or unlocks an
// encrypted one with an already derived key (Open: the restore kernel gets
// the key resume derived). A reader given a key refuses a plain image.
func WithKey(k *Key) CommonOption {
	check := func() error {
		if k == nil || len(k.Master) != keyLen {
			return errors.New("image: WithKey needs a derived key (NewKey, or Reader.Key)")
		}
		_, err := k.params()
		return err
	}
	return CommonOption{
		w: func(o *writerOptions) error { o.key = k; return check() },
		r: func(o *readerOptions) error { o.key = k; return check() },
	}
}

// WithSecret unlocks an encrypted image with the user's key file or
// passphrase, derived with the parameters in the image's header (Open,
// OpenTarget, Invalidate). A reader given a secret refuses a plain image.
func WithSecret(s Secret) ReaderOption {
	return readerOption(func(o *readerOptions) error {
		if s.source != KeySourceFile && s.source != KeySourcePassphrase {
			return errors.New("image: WithSecret needs a KeyFileSecret or PassphraseSecret")
		}
		o.secret = &s
		return nil
	})
}

// WithMachineRAM gives Open the RAM of the machine the image is to be
// restored on (at boot: the original kernel's RAM as resume sees it,
// without the helper's reserved region). Every RAM range the image's
// header lists must lie inside rs, checked before the index is read, so
// an image can make a reader allocate only what this machine's chunk
// count needs; an image that does not fit gets a *ForeignRAMError status.
func WithMachineRAM(rs []Range) ReaderOption {
	return readerOption(func(o *readerOptions) error {
		if len(rs) == 0 {
			return errors.New("image: WithMachineRAM needs the machine's RAM ranges, got none")
		}
		if err := checkOptionRanges("machine RAM", rs); err != nil {
			return err
		}
		o.machineRAM = rs
		return nil
	})
}

// WithDigest makes Open accept only the image whose header and index have
// this SHA-256 (Reader.Digest, hex): the one resume checked, for the
// restore kernel, which reads the image again. Another image gets a
// *SwappedError status, which Restore refuses before writing anything.
func WithDigest(hexDigest string) ReaderOption {
	return readerOption(func(o *readerOptions) error {
		var d [32]byte
		b, err := hex.DecodeString(hexDigest)
		if err != nil || len(b) != len(d) {
			return fmt.Errorf("image: WithDigest needs a hex SHA-256, got %q", hexDigest)
		}
		copy(d[:], b)
		o.digest = &d
		return nil
	})
}

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

// MemoryForThreads is the free memory ThreadsFor wants for n workers: a
// helper with less than MemoryForThreads(1) cannot write an image.
func MemoryForThreads(n int) uint64 { return processReserve + uint64(n)*perThreadMemory }

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
