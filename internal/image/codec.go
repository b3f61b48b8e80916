package image

import (
	"fmt"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// Compression is the codec of an image's chunks, recorded in its header.
type Compression uint32

const (
	// Zstd is the default: the smallest image per CPU second.
	Zstd Compression = 1
	// S2 (klauspost/compress/s2) is LZ77 without entropy coding, the class
	// of the LZO the kernel's own hibernation uses: 2.5 times zstd's speed
	// per core natively and 5 times under emulation, for about 30 % more
	// output on real pages. For captures the CPUs limit: few or slow cores
	// and a target that writes faster than they compress with zstd.
	S2 Compression = 2
	// Auto chooses zstd or S2 for each chunk while writing, and the chunk
	// record names its codec: zstd while the storage is what limits the
	// capture (CPU spent shrinking the bytes then costs no time), S2 while
	// the CPUs are (the faster codec then shortens it). A USB stick gets a
	// zstd image, a fast disk behind slow cores mostly S2.
	Auto Compression = 3
)

// ParseCompression accepts "auto", "zstd" and "s2".
func ParseCompression(s string) (Compression, error) {
	switch s {
	case "auto":
		return Auto, nil
	case "zstd":
		return Zstd, nil
	case "s2":
		return S2, nil
	}
	return 0, fmt.Errorf("unknown compression %q: use auto, zstd or s2", s)
}

func (c Compression) String() string {
	switch c {
	case Zstd:
		return "zstd"
	case S2:
		return "s2"
	case Auto:
		return "auto"
	}
	return fmt.Sprintf("Compression(%d)", uint32(c))
}

// MarshalText names the codec in JSON (image info --json).
func (c Compression) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// known reports whether c may stand in an image header.
func (c Compression) known() bool { return c == Zstd || c == S2 || c == Auto }

// chunkCodec reports whether c may code a chunk's payload.
func (c Compression) chunkCodec() bool { return c == Zstd || c == S2 }

// encoder compresses one chunk's packed pages at a time; each worker owns one.
type encoder interface {
	// appendEncoded appends the encoding of raw to dst, which has room for
	// payloadBound(len(raw)) more bytes.
	appendEncoded(dst, raw []byte) []byte
	// reset forgets a chunk abandoned midway (a fault reading mapped RAM).
	reset()
	close()
}

// decoder reverses an encoder; each reader worker owns one.
type decoder interface {
	// decode decodes payload into dst (cap(dst) >= rawLen) and fails
	// unless it decodes to exactly rawLen bytes.
	decode(dst, payload []byte, rawLen int) ([]byte, error)
	close()
}

// payloadBound is more than the largest payload either codec makes of n
// bytes: zstd's bound is n + n/256 + a 128 KiB margin for small inputs, S2's
// n + 10.
func payloadBound(n int) int { return n + n>>7 + 1024 }

func newEncoder(c Compression, l Level, chunkSize int) (encoder, error) {
	switch c {
	case S2:
		switch l {
		case LevelDefault:
			return s2Encoder(s2.EncodeBetter), nil
		case LevelBest:
			return s2Encoder(s2.EncodeBest), nil
		}
		return s2Encoder(s2.Encode), nil
	case Zstd:
		e, err := zstd.NewWriter(nil,
			zstd.WithEncoderLevel(l.zstd()),
			zstd.WithNoEntropyCompression(l == LevelFastest),
			zstd.WithEncoderConcurrency(1),
			zstd.WithEncoderCRC(false), // the record carries a sum of the raw pages
			zstd.WithWindowSize(windowFor(chunkSize)),
		)
		if err != nil {
			return nil, err
		}
		return zstdEncoder{e}, nil
	}
	return nil, fmt.Errorf("unknown compression %v", c)
}

func newDecoder(c Compression, chunkSize int) (decoder, error) {
	switch c {
	case S2:
		return s2Decoder{}, nil
	case Zstd:
		d, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxMemory(uint64(chunkSize)),
			zstd.WithDecodeAllCapLimit(true),
		)
		if err != nil {
			return nil, err
		}
		return zstdDecoder{d}, nil
	}
	return nil, fmt.Errorf("unknown compression %v", c)
}

type zstdEncoder struct{ e *zstd.Encoder }

func (z zstdEncoder) appendEncoded(dst, raw []byte) []byte { return z.e.EncodeAll(raw, dst) }
func (z zstdEncoder) reset()                               { z.e.Reset(nil) }
func (z zstdEncoder) close()                               { z.e.Close() }

type zstdDecoder struct{ d *zstd.Decoder }

func (z zstdDecoder) decode(dst, payload []byte, rawLen int) ([]byte, error) {
	out, err := z.d.DecodeAll(payload, dst[:0:rawLen])
	if err != nil {
		return nil, fmt.Errorf("decompressing: %v", err)
	}
	if len(out) != rawLen {
		return nil, fmt.Errorf("decompressed to %d bytes, want %d", len(out), rawLen)
	}
	return out, nil
}
func (z zstdDecoder) close() { z.d.Close() }

// s2Encoder is one of s2.Encode, EncodeBetter, EncodeBest: S2 blocks, each
// led by its decoded length.
type s2Encoder func(dst, src []byte) []byte

func (s s2Encoder) appendEncoded(dst, raw []byte) []byte {
	free := dst[len(dst):cap(dst)]
	out := s(free, raw)
	if cap(free) >= s2.MaxEncodedLen(len(raw)) {
		return dst[:len(dst)+len(out)] // encoded in place
	}
	return append(dst, out...)
}
func (s2Encoder) reset() {}
func (s2Encoder) close() {}

type s2Decoder struct{}

func (s2Decoder) decode(dst, payload []byte, rawLen int) ([]byte, error) {
	// The length comes first: checked before decoding, it bounds memory.
	n, err := s2.DecodedLen(payload)
	if err != nil {
		return nil, fmt.Errorf("decompressing: %v", err)
	}
	if n != rawLen {
		return nil, fmt.Errorf("decompresses to %d bytes, want %d", n, rawLen)
	}
	out, err := s2.Decode(dst[:rawLen], payload)
	if err != nil {
		return nil, fmt.Errorf("decompressing: %v", err)
	}
	return out, nil
}
func (s2Decoder) close() {}

// encoders makes a worker's encoder for each codec on first use: a worker
// writing an Auto image meets both.
type encoders struct {
	level     Level
	chunkSize int
	e         [S2 + 1]encoder
}

func (es *encoders) get(c Compression) (encoder, error) {
	if !c.chunkCodec() {
		return nil, fmt.Errorf("unknown chunk codec %v", c)
	}
	if es.e[c] == nil {
		e, err := newEncoder(c, es.level, es.chunkSize)
		if err != nil {
			return nil, err
		}
		es.e[c] = e
	}
	return es.e[c], nil
}

// reset forgets a chunk abandoned midway in every encoder.
func (es *encoders) reset() {
	for _, e := range es.e {
		if e != nil {
			e.reset()
		}
	}
}

func (es *encoders) close() {
	for _, e := range es.e {
		if e != nil {
			e.close()
		}
	}
}

// decoders is encoders' counterpart for a reader worker.
type decoders struct {
	chunkSize int
	d         [S2 + 1]decoder
}

// decode decodes a payload of codec c; see decoder.decode.
func (ds *decoders) decode(c Compression, dst, payload []byte, rawLen int) ([]byte, error) {
	if !c.chunkCodec() {
		return nil, fmt.Errorf("unknown chunk codec %v", c)
	}
	if ds.d[c] == nil {
		d, err := newDecoder(c, ds.chunkSize)
		if err != nil {
			return nil, err
		}
		ds.d[c] = d
	}
	return ds.d[c].decode(dst, payload, rawLen)
}

func (ds *decoders) close() {
	for _, d := range ds.d {
		if d != nil {
			d.close()
		}
	}
}
