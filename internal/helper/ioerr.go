package helper

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

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

// readKmsg returns the messages in the kernel log buffer. Raw system calls:
// an os.File opened O_NONBLOCK would wait in Go's poller for the next
// message instead of returning EAGAIN at the end of the buffer.
func readKmsg() []string {
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer unix.Close(fd)
	var lines []string
	buf := make([]byte, 8192)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EPIPE || err == unix.EINTR {
			continue // records overwritten while reading: go on with the next
		}
		if err != nil || n <= 0 {
			return lines
		}
		// "PRIO,SEQ,USEC,FLAGS;message\n" followed by dictionary lines.
		if _, msg, ok := strings.Cut(string(buf[:n]), ";"); ok {
			msg, _, _ = strings.Cut(msg, "\n")
			lines = append(lines, msg)
		}
	}
}

// watchWriteErrors calls failed once the kernel logs a failed write on dev
// (e.g. "vda"). Writes are buffered, so without it a dying disk would be
// noticed only at the final sync, after writing the whole image. stop ends
// the watch.
func watchWriteErrors(dev string, failed func(where string)) (stop func()) {
	return watchKernelLog(func(lines []string) bool {
		for _, l := range lines {
			if m := blkErrRE.FindStringSubmatch(l); m != nil && m[1] == dev && m[3] == "WRITE" {
				failed(ioErrorsIn(lines, dev))
				return true
			}
		}
		return false
	})
}

// nfsTimedOutRE matches the NFS client's report of a soft mount's request
// that got no answer in all its retransmissions (rpc_check_timeout).
var nfsTimedOutRE = regexp.MustCompile(`nfs: server (\S+) not responding, timed out`)

// watchNFSTimeouts calls failed once the kernel logs that server stopped
// answering a request. Writes go to the page cache and the failed ones
// are only reported at the final sync: without it the capture would go
// on into a dead server until the cache filled.
func watchNFSTimeouts(server string, failed func(line string)) (stop func()) {
	return watchKernelLog(func(lines []string) bool {
		for _, l := range lines {
			if m := nfsTimedOutRE.FindStringSubmatch(l); m != nil && m[1] == server {
				failed(strings.TrimSpace(m[0]))
				return true
			}
		}
		return false
	})
}

// watchKernelLog passes what the kernel logs from now on to seen, a batch
// at a time, until seen returns true or stop is called.
func watchKernelLog(seen func(lines []string) bool) (stop func()) {
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return func() {}
	}
	unix.Seek(fd, 0, unix.SEEK_END) // only what is logged from now on
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		defer unix.Close(fd)
		buf := make([]byte, 8192)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			var lines []string
			for {
				n, err := unix.Read(fd, buf)
				if err == unix.EPIPE || err == unix.EINTR {
					continue
				}
				if err != nil || n <= 0 {
					break
				}
				if _, msg, ok := strings.Cut(string(buf[:n]), ";"); ok {
					msg, _, _ = strings.Cut(msg, "\n")
					lines = append(lines, msg)
				}
			}
			if len(lines) > 0 && seen(lines) {
				return
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() { close(done); <-finished }
}
