package helper

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// blkErrRE matches the block layer's report of a failed request
// (blk_print_req_error): "I/O error, dev vda, sector 204800 op 0x1:(WRITE) ...".
var blkErrRE = regexp.MustCompile(`I/O error, dev (\S+), sector (\d+) op 0x[0-9a-f]+:\((\w+)\)`)

// withKernelIOErrors adds where the device failed to an I/O error. Image
// writes go through the page cache, so EIO surfaces at the next sync,
// which cannot say which write failed; the kernel log can.
func withKernelIOErrors(err error, dev string) error {
	if err == nil || dev == "" || !errors.Is(err, unix.EIO) {
		return err
	}
	if where := ioErrorsIn(readKmsg(), filepath.Base(dev)); where != "" {
		return fmt.Errorf("%w (kernel log: %s)", err, where)
	}
	return err
}

// ioErrorsIn summarizes the failed requests on dev in kernel log lines:
// the first failing sector, its byte offset, and how many requests failed.
func ioErrorsIn(lines []string, dev string) string {
	var first []string
	n := 0
	for _, l := range lines {
		m := blkErrRE.FindStringSubmatch(l)
		if m == nil || m[1] != dev {
			continue
		}
		if n == 0 {
			first = m
		}
		n++
	}
	if n == 0 {
		return ""
	}
	sector, _ := strconv.ParseUint(first[2], 10, 64)
	s := fmt.Sprintf("%s failed on /dev/%s at sector %d, byte offset %d", first[3], dev, sector, sector*512)
	if n > 1 {
		s += fmt.Sprintf(", %d failed requests in all", n)
	}
	return s
}

// readKmsg returns the messages in the kernel log buffer.
func readKmsg() []string {
	f, err := os.OpenFile("/dev/kmsg", os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil
	}
	defer f.Close()
	var lines []string
	buf := make([]byte, 8192)
	for {
		n, err := f.Read(buf)
		if errors.Is(err, unix.EPIPE) {
			continue // records overwritten while reading: skip ahead
		}
		if err != nil || n == 0 {
			return lines
		}
		// "PRIO,SEQ,USEC,FLAGS;message\n" followed by dictionary lines.
		rec := string(buf[:n])
		if _, msg, ok := strings.Cut(rec, ";"); ok {
			msg, _, _ = strings.Cut(msg, "\n")
			lines = append(lines, msg)
		}
	}
}
