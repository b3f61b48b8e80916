// Command kjump-workload is the memory workload of the VM scenarios. It fills
// a locked buffer with a deterministic pattern and keeps a counter ticking,
// so a scenario can prove that a process's memory and its execution survived
// a hibernate/resume: after resume, `verify` must report the same checksum
// and a counter that continued rather than restarted.
//
//	kjump-workload run [-mib N] [-seed S] [-state DIR] [-print-every SECONDS]
//	kjump-workload verify [-state DIR] [-timeout D]    # exit 0 only if intact
//	kjump-workload corrupt [-state DIR] [-pages K]     # damage K pages (negative tests)
//	kjump-workload kexec-load-other                    # load a foreign (plain) kexec image
//
// Console lines (all start with "WORKLOAD "):
//
//	WORKLOAD ready mib=N seed=S checksum=X addr=0x... pid=P
//	WORKLOAD tick counter=N
//	WORKLOAD VERIFY ok checksum=X counter=N
//	WORKLOAD VERIFY CORRUPT pages=K first=I checksum=X counter=N
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const pageSize = 4096

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kjump-workload run|verify|corrupt [options]")
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "run":
		err = run(args)
	case "verify":
		err = verify(args)
	case "corrupt":
		err = corrupt(args)
	case "kexec-load-other":
		err = kexecLoadOther()
	default:
		err = fmt.Errorf("unknown command %q", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kjump-workload:", err)
		os.Exit(1)
	}
}

// word is the pattern's value for 64-bit word i (splitmix64 of seed and i):
// any page can be regenerated on its own, so verify can name bad pages.
func word(seed, i uint64) uint64 {
	z := seed + (i+1)*0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// checksum is FNV-1a over the 64-bit words: cheap enough for a GiB under TCG.
func checksum(buf []uint64) uint64 {
	h := uint64(0xcbf29ce484222325)
	for _, w := range buf {
		h = (h ^ w) * 0x100000001b3
	}
	return h
}

type state struct{ dir string }

func (s state) path(name string) string { return filepath.Join(s.dir, name) }

func (s state) write(name, value string) error {
	tmp := s.path(name + ".tmp")
	if err := os.WriteFile(tmp, []byte(value+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, s.path(name))
}

func (s state) read(name string) (string, error) {
	b, err := os.ReadFile(s.path(name))
	return strings.TrimSpace(string(b)), err
}

func (s state) readUint(name string) (uint64, error) {
	v, err := s.read(name)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(v, 0, 64)
}

func stateFlag(fs *flag.FlagSet) *string {
	return fs.String("state", "/run/kjump-workload", "directory for pid, counter and verify results")
}

func run(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	mib := fs.Int("mib", 64, "buffer size in MiB")
	seed := fs.Uint64("seed", 1, "pattern seed")
	printEvery := fs.Int("print-every", 10, "print the counter every N seconds (0: never)")
	dir := stateFlag(fs)
	fs.Parse(args)
	st := state{*dir}
	if err := os.MkdirAll(st.dir, 0o755); err != nil {
		return err
	}

	size := *mib << 20
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return fmt.Errorf("mmap %d MiB: %w", *mib, err)
	}
	buf := unsafe.Slice((*uint64)(unsafe.Pointer(&mem[0])), size/8)
	for i := range buf {
		buf[i] = word(*seed, uint64(i))
	}
	// Locked so the pages stay resident: what is checked is RAM contents,
	// not swap.
	if err := unix.Mlock(mem); err != nil {
		return fmt.Errorf("mlock: %w", err)
	}
	sum := checksum(buf)
	addr := uintptr(unsafe.Pointer(&mem[0]))
	for name, v := range map[string]string{
		"pid": strconv.Itoa(os.Getpid()), "addr": fmt.Sprintf("%#x", addr),
		"mib": strconv.Itoa(*mib), "seed": strconv.FormatUint(*seed, 10), "counter": "0",
	} {
		if err := st.write(name, v); err != nil {
			return err
		}
	}
	fmt.Printf("WORKLOAD ready mib=%d seed=%d checksum=%016x addr=%#x pid=%d\n", *mib, *seed, sum, addr, os.Getpid())

	var counter atomic.Uint64
	go func() {
		for range time.Tick(time.Second) {
			n := counter.Add(1)
			st.write("counter", strconv.FormatUint(n, 10))
			if *printEvery > 0 && n%uint64(*printEvery) == 0 {
				fmt.Printf("WORKLOAD tick counter=%d\n", n)
			}
		}
	}()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGINT)
	seq := 0
	for s := range sig {
		if s != syscall.SIGUSR1 {
			return nil
		}
		seq++
		line := check(buf, *seed, counter.Load())
		fmt.Println(line)
		if err := st.write("verify", fmt.Sprintf("%d %s", seq, line)); err != nil {
			return err
		}
	}
	return nil
}

// check regenerates the pattern page by page and reports the result line.
func check(buf []uint64, seed, counter uint64) string {
	const words = pageSize / 8
	bad, first := 0, -1
	for p := 0; p < len(buf)/words; p++ {
		for i := p * words; i < (p+1)*words; i++ {
			if buf[i] != word(seed, uint64(i)) {
				if first < 0 {
					first = p
				}
				bad++
				break
			}
		}
	}
	sum := checksum(buf)
	if bad > 0 {
		return fmt.Sprintf("WORKLOAD VERIFY CORRUPT pages=%d first=%d checksum=%016x counter=%d", bad, first, sum, counter)
	}
	return fmt.Sprintf("WORKLOAD VERIFY ok checksum=%016x counter=%d", sum, counter)
}

// verify asks the running workload to check its buffer and waits for the
// answer, which it prints; the exit status says whether memory is intact.
func verify(args []string) error {
	fs := flag.NewFlagSet("verify", flag.ExitOnError)
	dir := stateFlag(fs)
	timeout := fs.Duration("timeout", 60*time.Second, "how long to wait for the result")
	fs.Parse(args)
	st := state{*dir}
	pid, err := st.readUint("pid")
	if err != nil {
		return fmt.Errorf("no running workload: %w", err)
	}
	last := verifySeq(st)
	if err := syscall.Kill(int(pid), syscall.SIGUSR1); err != nil {
		return fmt.Errorf("signal workload %d: %w", pid, err)
	}
	for end := time.Now().Add(*timeout); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if verifySeq(st) > last {
			v, _ := st.read("verify")
			_, line, _ := strings.Cut(v, " ")
			if !strings.Contains(line, "VERIFY ok ") {
				return errors.New(line)
			}
			return nil
		}
	}
	return fmt.Errorf("workload %d gave no verify result within %v", pid, *timeout)
}

func verifySeq(st state) int {
	v, err := st.read("verify")
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.SplitN(v, " ", 2)[0])
	return n
}

// corrupt flips bits in K pages of the running workload's buffer through
// /proc/PID/mem, to show that verify notices damage.
func corrupt(args []string) error {
	fs := flag.NewFlagSet("corrupt", flag.ExitOnError)
	dir := stateFlag(fs)
	pages := fs.Int("pages", 1, "number of pages to damage")
	fs.Parse(args)
	st := state{*dir}
	pid, err := st.readUint("pid")
	if err != nil {
		return err
	}
	addr, err := st.readUint("addr")
	if err != nil {
		return err
	}
	mib, err := st.readUint("mib")
	if err != nil {
		return err
	}
	total := int(mib << 20 / pageSize)
	if *pages < 1 || *pages > total {
		return fmt.Errorf("-pages must be 1..%d", total)
	}
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/mem", pid), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	for k := 0; k < *pages; k++ {
		off := int64(addr) + int64(k*(total / *pages))*pageSize + 8*int64(k%(pageSize/8))
		b := make([]byte, 8)
		if _, err := f.ReadAt(b, off); err != nil {
			return err
		}
		for i := range b {
			b[i] ^= 0xa5
		}
		if _, err := f.WriteAt(b, off); err != nil {
			return err
		}
	}
	fmt.Printf("WORKLOAD corrupted pages=%d\n", *pages)
	return nil
}

// kexecLoadOther plays another tool (kexec -l): it loads a one-page image
// without KEXEC_PRESERVE_CONTEXT, replacing whatever was loaded. kjump must
// notice and never jump into it.
func kexecLoadOther() error {
	page := make([]byte, pageSize)
	seg := struct {
		buf   unsafe.Pointer
		bufsz uintptr
		mem   uintptr
		memsz uintptr
	}{unsafe.Pointer(&page[0]), pageSize, 16 << 20, pageSize}
	const archX86_64 = 62 << 16
	_, _, errno := unix.Syscall6(unix.SYS_KEXEC_LOAD, 16<<20, 1, uintptr(unsafe.Pointer(&seg)), archX86_64, 0, 0)
	runtime.KeepAlive(page)
	if errno != 0 {
		return fmt.Errorf("kexec_load: %w", errno)
	}
	fmt.Println("WORKLOAD kexec-load-other loaded")
	return nil
}
