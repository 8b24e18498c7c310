package kombu

import (
	"bytes"
	"compress/bzip2"
	"compress/zlib"
	"errors"
	"fmt"
	"io"

	"github.com/andybalholm/brotli"
	dsbzip2 "github.com/dsnet/compress/bzip2"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"
)

// Compression header values (the "compression" message header), as kombu
// registers them in kombu/compression.py.
const (
	CompressionZlib   = "application/x-gzip" // a zlib stream, despite the name
	CompressionBzip2  = "application/x-bz2"
	CompressionLZMA   = "application/x-lzma" // an xz container
	CompressionBrotli = "application/x-brotli"
	CompressionZstd   = "application/zstd"
)

// MaxDecompressedSize bounds the output of Decompress (and so DecodeBody) to
// protect against decompression bombs. Set it before use; it is read
// without synchronisation.
var MaxDecompressedSize int64 = 256 << 20

// ErrTooLarge is returned (wrapped) when decompressed output would exceed
// MaxDecompressedSize.
var ErrTooLarge = errors.New("kombu: decompressed body exceeds MaxDecompressedSize")

// compressionAliases maps kombu's compression names and header values to
// the header value.
var compressionAliases = map[string]string{
	"zlib":            CompressionZlib,
	"gzip":            CompressionZlib,
	CompressionZlib:   CompressionZlib,
	"bzip2":           CompressionBzip2,
	"bzip":            CompressionBzip2,
	CompressionBzip2:  CompressionBzip2,
	"lzma":            CompressionLZMA,
	"xz":              CompressionLZMA,
	CompressionLZMA:   CompressionLZMA,
	"brotli":          CompressionBrotli,
	CompressionBrotli: CompressionBrotli,
	"zstd":            CompressionZstd,
	"zstandard":       CompressionZstd,
	CompressionZstd:   CompressionZstd,
}

// Compress compresses data with the named method (zlib/gzip, bzip2/bzip,
// lzma/xz, brotli, zstd/zstandard, or a header value) the way kombu does
// and returns the value for the "compression" header.
func Compress(name string, data []byte) (header string, out []byte, err error) {
	header, ok := compressionAliases[name]
	if !ok {
		return "", nil, fmt.Errorf("kombu: unknown compression %q", name)
	}
	if header == CompressionZstd {
		// A one-shot single-segment frame always records the content size, which
		// python-zstandard's ZstdDecompressor().decompress (kombu's
		// decoder) requires; by default small frames leave it out.
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithSingleSegment(true))
		if err != nil {
			return "", nil, fmt.Errorf("kombu: %s: %w", name, err)
		}
		defer enc.Close()
		return header, enc.EncodeAll(data, nil), nil
	}
	var buf bytes.Buffer
	var w io.WriteCloser
	switch header {
	case CompressionZlib:
		w = zlib.NewWriter(&buf) // level 6 = zlib.compress default, header 78 9c
	case CompressionBzip2:
		w, err = dsbzip2.NewWriter(&buf, &dsbzip2.WriterConfig{Level: 9})
	case CompressionLZMA:
		w, err = xz.NewWriter(&buf)
	case CompressionBrotli:
		w = brotli.NewWriterLevel(&buf, brotli.BestCompression)
	}
	if err != nil {
		return "", nil, fmt.Errorf("kombu: %s: %w", name, err)
	}
	if _, err = w.Write(data); err == nil {
		err = w.Close()
	}
	if err != nil {
		return "", nil, fmt.Errorf("kombu: %s: %w", name, err)
	}
	return header, buf.Bytes(), nil
}

// Decompress reverses Compress. header is the "compression" header value
// (aliases such as "zlib" are accepted too, as kombu does). Output larger
// than MaxDecompressedSize is refused with ErrTooLarge.
func Decompress(header string, data []byte) ([]byte, error) {
	h, ok := compressionAliases[header]
	if !ok {
		return nil, fmt.Errorf("kombu: unknown compression %q", header)
	}
	limit := MaxDecompressedSize
	var r io.Reader
	var err error
	src := bytes.NewReader(data)
	switch h {
	case CompressionZlib:
		var zr io.ReadCloser
		if zr, err = zlib.NewReader(src); err == nil {
			defer zr.Close()
			r = zr
		}
	case CompressionBzip2:
		r = bzip2.NewReader(src)
	case CompressionLZMA:
		r, err = newLZMAReader(data, limit)
	case CompressionBrotli:
		r = brotli.NewReader(src)
	case CompressionZstd:
		var zr *zstd.Decoder
		window := uint64(limit)
		if window < zstd.MinWindowSize {
			window = zstd.MinWindowSize
		}
		if window > 1<<30 {
			window = 1 << 30
		}
		zr, err = zstd.NewReader(src, zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxMemory(uint64(limit)+1), zstd.WithDecoderMaxWindow(window))
		if err == nil {
			defer zr.Close()
			r = zr
		}
	}
	if err != nil {
		return nil, fmt.Errorf("kombu: decompress %s: %w", h, err)
	}
	out, err := readLimited(r, limit)
	if errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		err = fmt.Errorf("%w (%v)", ErrTooLarge, err)
	}
	if err != nil {
		return nil, fmt.Errorf("kombu: decompress %s: %w", h, err)
	}
	return out, nil
}

func readLimited(r io.Reader, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if n > limit {
		return nil, ErrTooLarge
	}
	return buf.Bytes(), nil
}

var xzMagic = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}

// newLZMAReader opens an xz container or, like Python's lzma FORMAT_AUTO, a
// legacy .lzma ("alone") stream. Dictionary sizes are capped so a forged
// header cannot make the decoder allocate more than the output limit.
func newLZMAReader(data []byte, limit int64) (io.Reader, error) {
	dictCap := int64(64 << 20)
	if limit > dictCap {
		dictCap = limit
	}
	if dictCap > 1<<30 {
		dictCap = 1 << 30
	}
	if bytes.HasPrefix(data, xzMagic) {
		if err := checkXZDict(data, dictCap); err != nil {
			return nil, err
		}
		return xz.NewReader(bytes.NewReader(data))
	}
	return lzma.ReaderConfig{DictCap: int(dictCap)}.NewReader(bytes.NewReader(data))
}

// checkXZDict inspects the first block header of an xz stream and refuses
// an LZMA2 dictionary larger than dictCap (the xz reader would allocate it
// up front).
func checkXZDict(data []byte, dictCap int64) error {
	const streamHeaderLen = 12
	if len(data) < streamHeaderLen+2 {
		return nil // the reader reports the truncation
	}
	bh := data[streamHeaderLen:]
	size := (int(bh[0]) + 1) * 4
	if bh[0] == 0 || len(bh) < size {
		return nil // index (empty stream) or truncated: left to the reader
	}
	bh = bh[:size]
	flags := bh[1]
	p := 2
	readVarint := func() (uint64, bool) {
		var v uint64
		for i := 0; i < 9 && p < len(bh); i++ {
			c := bh[p]
			p++
			v |= uint64(c&0x7f) << (7 * i)
			if c&0x80 == 0 {
				return v, true
			}
		}
		return 0, false
	}
	if flags&0x40 != 0 {
		if _, ok := readVarint(); !ok {
			return nil
		}
	}
	if flags&0x80 != 0 {
		if _, ok := readVarint(); !ok {
			return nil
		}
	}
	nfilters := int(flags&3) + 1
	for i := 0; i < nfilters; i++ {
		id, ok1 := readVarint()
		psize, ok2 := readVarint()
		if !ok1 || !ok2 || p+int(psize) > len(bh) {
			return nil
		}
		if id == 0x21 && psize == 1 {
			c := bh[p]
			if c > 40 {
				return nil
			}
			var dict int64
			if c == 40 {
				dict = 1<<32 - 1
			} else {
				dict = int64(2|(c&1)) << (c/2 + 11)
			}
			if dict > dictCap {
				return fmt.Errorf("xz dictionary size %d exceeds limit %d", dict, dictCap)
			}
		}
		p += int(psize)
	}
	return nil
}
