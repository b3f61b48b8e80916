package vm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Config describes one QEMU machine.
type Config struct {
	Name string // names the run directory; default "vm"
	// Kernel is the bzImage/vmlinuz for -kernel. Empty: the firmware
	// boots the first disk, as a real machine does (see BootDisk).
	Kernel string
	Initrd string // optional -initrd
	// Append is the kernel command line. "console=ttyS0", "panic=-1"
	// (reboot at once, which ends QEMU because of -no-reboot) and
	// "no_timer_check" are added unless the line sets them itself.
	Append string
	MemMiB int    // default 1024
	SMP    int    // default 1
	CPU    string // -cpu model; default QEMU's (qemu64)

	Disks []string // raw images attached as virtio-blk (vda, vdb, ...)
	// Bus puts disks behind another controller than virtio: BusUSB,
	// BusNVMe or BusAHCI (see bus.go). WriteBPS and DirectIO apply to them
	// too; a USB stick can be pulled with UnplugDisk.
	Bus map[string]string
	// WriteEIO makes every write that touches byte offset WriteEIO[disk]
	// of that disk fail with EIO, as a bad sector would: QEMU's blkdebug
	// driver sits between the virtio disk and its file, so every kernel
	// the machine runs (original, helper) sees the same failing device.
	WriteEIO map[string]int64
	// DirectIO attaches these disks with cache=none (O_DIRECT on the host):
	// the guest's reads and writes reach the host's disk, as on a real
	// machine, instead of the host's page cache (benchmarks).
	DirectIO map[string]bool
	// WriteBPS caps these disks' writes at so many bytes per second
	// (QEMU's throttling.bps-write): a USB stick or a busy NFS server.
	WriteBPS map[string]int64
	// Unpluggable attaches the disks as virtio-blk PCI devices with ids,
	// which Machine.UnplugDisk can hot-unplug (not with WriteEIO or
	// WriteBPS).
	Unpluggable bool
	Net         *Net // optional NIC on a 127.0.0.1 socket
	Monitor     bool // HMP monitor on a unix socket, see Machine.Monitor
	// Display adds a graphics device (DisplayVGA, DisplayBochs,
	// DisplayVirtioGPU); "" has none. See Machine.Screendump.
	Display string
	// Debug adds guest errors to qemu-debug.log in the run directory,
	// which always logs CPU resets (triple faults); KJUMP_QEMU_DEBUG=1
	// forces it.
	Debug bool
	Extra []string // further QEMU arguments
	// SingleThreadTCG runs all vCPUs on one host thread. Linux 7.x's
	// int3-based code patching at boot can trip over a stale translated
	// block under multi-threaded TCG on a loaded host ("Oops: int3" in
	// sched_clock_cpu); one thread cannot race with itself.
	SingleThreadTCG bool

	RunDir string // where logs go; default NewRunDir(Name)
}

// Net connects the machine's NIC to another VM through a QEMU socket
// netdev on 127.0.0.1: one VM listens on Port, the other connects.
// Nothing else is reachable.
type Net struct {
	Listen bool
	Port   int
	MAC    string // default 52:54:00:12:34:56 (listener) / :57 (connector)
	Model  string // NICVirtio (default) or NICE1000e
}

// Machine is a running QEMU.
type Machine struct {
	RunDir string

	cmd     *exec.Cmd
	stdin   io.WriteCloser
	console *console
	sockDir string
	monitor string // monitor socket path, "" without Config.Monitor

	exited  chan struct{} // closed when QEMU has exited and the console is drained
	waitErr error         // QEMU's exit status, valid after exited
	stderr  *tailBuffer
	killed  bool // by Kill, a timeout or ctx, not by the guest
	mu      sync.Mutex
}

// Start boots a machine. The context bounds its whole life: when ctx is done
// QEMU is killed. Call Kill (or Wait) when done with it.
func Start(ctx context.Context, cfg Config) (*Machine, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	// Unix socket paths are limited to 108 bytes, so they live in a short
	// temporary directory rather than the run directory.
	sockDir, err := os.MkdirTemp("", "kjvm")
	if err != nil {
		return nil, err
	}
	m := &Machine{RunDir: cfg.RunDir, sockDir: sockDir, exited: make(chan struct{}), stderr: &tailBuffer{max: 8192}}
	var logf, errf *os.File
	started := false
	defer func() { // the one cleanup exit: undo whatever a failed start left
		if started {
			return
		}
		for _, f := range []*os.File{logf, errf} {
			if f != nil {
				f.Close()
			}
		}
		os.RemoveAll(sockDir)
	}()
	args, err := m.args(cfg)
	if err != nil {
		return nil, err
	}
	os.WriteFile(filepath.Join(cfg.RunDir, "qemu.cmd"), []byte(shellQuote(append([]string{"qemu-system-x86_64"}, args...))+"\n"), 0o644)
	if logf, err = os.Create(filepath.Join(cfg.RunDir, "console.log")); err != nil {
		return nil, err
	}
	if errf, err = os.Create(filepath.Join(cfg.RunDir, "qemu.stderr")); err != nil {
		return nil, err
	}
	m.cmd = exec.Command("qemu-system-x86_64", args...)
	// QEMU must not outlive a crashed or interrupted test run.
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	m.cmd.Stderr = io.MultiWriter(errf, m.stderr)
	stdout, err := m.cmd.StdoutPipe()
	if err == nil {
		m.stdin, err = m.cmd.StdinPipe()
	}
	if err == nil {
		err = m.cmd.Start()
	}
	if err != nil {
		return nil, fmt.Errorf("vm: starting qemu-system-x86_64 (apt-get install qemu-system-x86): %w", err)
	}
	started = true // from here the reader goroutine owns the files and sockDir
	m.console = newConsole(logf, filepath.Join(cfg.RunDir, "console.log"))
	m.console.exitMsg = m.exitMsg
	go func() {
		m.console.read(stdout, m.onLine)
		m.waitErr = m.cmd.Wait()
		logf.Close()
		errf.Close()
		os.RemoveAll(sockDir)
		close(m.exited)
	}()
	go func() {
		select {
		case <-ctx.Done():
			m.Kill()
		case <-m.exited:
		}
	}()
	return m, nil
}

// setDefaults fills in what Config leaves out, creating the run directory.
func (cfg *Config) setDefaults() error {
	if cfg.Kernel == "" && len(cfg.Disks) == 0 {
		return errors.New("vm: Config.Kernel is empty and there is no disk to boot from")
	}
	if cfg.Name == "" {
		cfg.Name = "vm"
	}
	if cfg.MemMiB == 0 {
		cfg.MemMiB = 1024
	}
	if cfg.SMP == 0 {
		cfg.SMP = 1
	}
	if cfg.RunDir == "" {
		d, err := NewRunDir(cfg.Name)
		if err != nil {
			return err
		}
		cfg.RunDir = d
	}
	return nil
}

// exitMsg explains why QEMU ended, for errors of Expect after the exit.
func (m *Machine) exitMsg() string {
	m.mu.Lock()
	killed := m.killed
	m.mu.Unlock()
	for _, l := range m.console.lines() {
		if panicRE.MatchString(l) {
			return " (guest kernel panic: " + strings.TrimSpace(l) + ")"
		}
	}
	switch {
	case killed:
		return " (killed: Kill called or the context ended)"
	case m.waitErr != nil:
		return fmt.Sprintf(" (qemu: %v: %s)", m.waitErr, lastLine(m.stderr.String()))
	}
	if log, err := os.ReadFile(filepath.Join(m.RunDir, debugLog)); err == nil && bytes.Contains(log, []byte("Triple fault")) {
		return " (the guest CPU triple-faulted: " + debugLog + " has its registers)"
	}
	return " (the guest powered off or reset itself; a panic while its consoles were suspended prints nothing)"
}

// debugLog is QEMU's log (CPU resets, and guest errors with Debug) in
// the run directory.
const debugLog = "qemu-debug.log"

func (m *Machine) args(cfg Config) ([]string, error) {
	appendLine := cfg.Append
	if !hasParam(appendLine, "console") {
		appendLine += " console=ttyS0"
	}
	if !hasParam(appendLine, "panic") {
		appendLine += " panic=-1"
	}
	// TCG on a loaded host can miss the IO-APIC timer check at boot
	// ("IO-APIC + timer doesn't work!" panic); the timer itself works.
	if !hasParam(appendLine, "no_timer_check") {
		appendLine += " no_timer_check"
	}
	accel := "tcg" // KVM hangs on the CI machines
	if cfg.SingleThreadTCG {
		accel = "tcg,thread=single"
	}
	a := []string{
		"-accel", accel,
		"-m", fmt.Sprint(cfg.MemMiB),
		// Guest RAM is reserved only as the guest touches it, so a guest
		// may have more RAM than the host when most of it stays free (the
		// 32 GiB scenario on a 24 GiB host; the kernel's overcommit
		// heuristic refuses such a mapping otherwise).
		"-object", fmt.Sprintf("memory-backend-ram,id=ram0,size=%dM,reserve=off", cfg.MemMiB),
		"-machine", "memory-backend=ram0",
		"-smp", fmt.Sprint(cfg.SMP),
	}
	a = append(a, bootArgs(cfg, strings.TrimSpace(appendLine))...)
	a = append(a, "-nodefaults", "-display", "none", "-no-reboot", "-serial", "stdio")
	display, err := displayArgs(cfg.Display)
	if err != nil {
		return nil, err
	}
	a = append(a, display...)
	if cfg.CPU != "" {
		a = append(a, "-cpu", cfg.CPU)
	}
	if cfg.Initrd != "" && cfg.Kernel != "" {
		a = append(a, "-initrd", cfg.Initrd)
	}
	for i, d := range cfg.Disks {
		if strings.Contains(d, ",") {
			return nil, fmt.Errorf("vm: disk path %q contains a comma", d)
		}
		if cfg.onBus(d) {
			continue // busArgs
		}
		if cfg.Unpluggable {
			cache := "unsafe"
			if cfg.DirectIO[d] {
				cache = "none"
			}
			a = append(a, unpluggableDisk(i, d, cache)...)
			continue
		}
		if off, ok := cfg.WriteEIO[d]; ok {
			a = append(a, "-drive", failingDrive(d, off))
			continue
		}
		cache := "unsafe"
		if cfg.DirectIO[d] {
			cache = "none"
		}
		drive := "file=" + d + ",format=raw,if=virtio,cache=" + cache
		if bps := cfg.WriteBPS[d]; bps > 0 {
			drive += fmt.Sprintf(",throttling.bps-write=%d", bps)
		}
		a = append(a, "-drive", drive)
	}
	bus, err := busArgs(cfg)
	if err != nil {
		return nil, err
	}
	a = append(a, bus...)
	if n := cfg.Net; n != nil {
		mode, mac := "connect", "52:54:00:12:34:57"
		if n.Listen {
			mode, mac = "listen", "52:54:00:12:34:56"
		}
		if n.MAC != "" {
			mac = n.MAC
		}
		nic, err := n.nicDevice("n0", mac)
		if err != nil {
			return nil, err
		}
		a = append(a, "-netdev", fmt.Sprintf("socket,id=n0,%s=127.0.0.1:%d", mode, n.Port), "-device", nic)
	}
	if cfg.Monitor {
		m.monitor = filepath.Join(m.sockDir, "monitor.sock")
		a = append(a, "-monitor", "unix:"+m.monitor+",server=on,wait=off")
	}
	// A guest that resets itself ends QEMU (-no-reboot) without a word;
	// QEMU's reset log tells a triple fault (and where the CPU was) from a
	// reset the guest asked for, such as a panic with consoles suspended.
	logs := "cpu_reset"
	if cfg.Debug || os.Getenv("KJUMP_QEMU_DEBUG") == "1" {
		logs += ",guest_errors"
	}
	a = append(a, "-d", logs, "-D", filepath.Join(cfg.RunDir, debugLog))
	return append(a, cfg.Extra...), nil
}

// failingDrive is a virtio disk whose writes covering byte offset off fail
// with EIO (errno 5; QEMU passes it to the guest, werror=report).
func failingDrive(path string, off int64) string {
	spec, _ := json.Marshal(map[string]any{
		"driver": "raw",
		"file": map[string]any{
			"driver": "blkdebug",
			"inject-error": []map[string]any{{
				"event": "write_aio", "iotype": "write", "errno": 5, "sector": off / 512,
			}},
			"image": map[string]any{"driver": "file", "filename": path},
		},
	})
	return "file=json:" + strings.ReplaceAll(string(spec), ",", ",,") + ",if=virtio,cache=unsafe,werror=report"
}

func hasParam(cmdline, name string) bool {
	for _, f := range strings.Fields(cmdline) {
		if f == name || strings.HasPrefix(f, name+"=") {
			return true
		}
	}
	return false
}

// Messages the kernel prints as its very last words.
var (
	powerDownRE = regexp.MustCompile(`reboot: (Power down|Restarting system)|System halted`)
	panicRE     = regexp.MustCompile(`Kernel panic - not syncing`)
)

// onLine runs for each console line. A guest that said it powers down but
// whose QEMU stays (no ACPI in that kernel, say) is ended after a grace period.
func (m *Machine) onLine(line string) {
	if powerDownRE.MatchString(line) {
		time.AfterFunc(10*time.Second, func() {
			select {
			case <-m.exited:
			default:
				m.cmd.Process.Kill()
			}
		})
	}
}

// Console returns the console output so far, without the log's timestamps.
func (m *Machine) Console() string { return m.console.text() }

// ConsolePath is the console log file (each line prefixed with host seconds
// since start).
func (m *Machine) ConsolePath() string { return m.console.path }

// Expect waits until a console line after the previous match matches the
// regular expression re and returns its submatches. On timeout or QEMU exit
// the error names the pattern and carries the last console lines.
func (m *Machine) Expect(re string, timeout time.Duration) ([]string, error) {
	rx, err := regexp.Compile(re)
	if err != nil {
		return nil, err
	}
	return m.console.expect(rx, re, timeout, m.exited)
}

// ExpectString waits for a console line containing s and returns the line.
func (m *Machine) ExpectString(s string, timeout time.Duration) (string, error) {
	rx := regexp.MustCompile(".*" + regexp.QuoteMeta(s) + ".*")
	sm, err := m.console.expect(rx, s, timeout, m.exited)
	if err != nil {
		return "", err
	}
	return sm[0], nil
}

// SendConsole types s on the serial console.
func (m *Machine) SendConsole(s string) error {
	_, err := io.WriteString(m.stdin, s)
	return err
}

// Exit says how a machine ended.
type Exit struct {
	PowerDown bool   // the kernel printed "reboot: Power down"
	Panic     string // the kernel panic line, if any
	Killed    bool   // ended by Kill, timeout or context, not by the guest
	Status    error  // QEMU's exit status (nil = 0)
}

// WaitExit waits up to timeout for QEMU to end (killing it after that) and
// reports how it ended. The error is only for the timeout.
func (m *Machine) WaitExit(timeout time.Duration) (Exit, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	var err error
	select {
	case <-m.exited:
	case <-t.C:
		err = fmt.Errorf("vm: QEMU still running after %v; killed%s", timeout, m.console.tail(40))
		m.Kill()
	}
	<-m.exited
	m.mu.Lock()
	killed := m.killed
	m.mu.Unlock()
	e := Exit{Killed: killed, Status: m.waitErr}
	for _, l := range m.console.lines() {
		if strings.Contains(l, "reboot: Power down") {
			e.PowerDown = true
		}
		if e.Panic == "" && panicRE.MatchString(l) {
			e.Panic = l
		}
	}
	return e, err
}

// Wait waits for the guest to power off and QEMU to exit. Anything else — a
// panic, a reset without power-down (a triple fault ends QEMU too, because of
// -no-reboot), QEMU failing or the timeout — is an error.
func (m *Machine) Wait(timeout time.Duration) error {
	e, err := m.WaitExit(timeout)
	switch {
	case err != nil:
		return err
	case e.Panic != "":
		return fmt.Errorf("vm: guest kernel panic: %s%s", strings.TrimSpace(e.Panic), m.console.tail(40))
	case e.Killed:
		return fmt.Errorf("vm: QEMU was killed before the guest powered off%s", m.console.tail(40))
	case e.Status != nil && !e.PowerDown:
		return fmt.Errorf("vm: QEMU failed: %v: %s%s", e.Status, lastLine(m.stderr.String()), m.console.tail(40))
	case !e.PowerDown:
		return fmt.Errorf("vm: guest reset without powering off (triple fault? rerun with KJUMP_QEMU_DEBUG=1)%s", m.console.tail(40))
	}
	return nil
}

// Kill ends QEMU (if still running) and waits for it. It is safe to call
// more than once and after the guest powered off.
func (m *Machine) Kill() {
	select {
	case <-m.exited:
		return
	default:
	}
	m.mu.Lock()
	m.killed = true
	m.mu.Unlock()
	m.cmd.Process.Kill()
	<-m.exited
}

// Exited is closed once QEMU has exited.
func (m *Machine) Exited() <-chan struct{} { return m.exited }

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=/.,:") == "" {
			q[i] = a
		} else {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	b   []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
