// Package config reads /etc/kjump.conf, the settings hibernate and resume
// share. The file is TOML, parsed by github.com/BurntSushi/toml: a format
// users know from other system tools, with a maintained parser that reports
// syntax errors by line, instead of a home-grown key=value reader.
//
// A missing file means every default. Unknown keys are an error naming the
// key and its line: a misspelt option must not be silently ignored.
package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/kjump/kjump/internal/layout"
)

// DefaultPath is where the commands look unless told otherwise.
const DefaultPath = "/etc/kjump.conf"

// Config is the whole file. Every field is documented in
// docs/kjump.conf.5.md and systemd/kjump.conf; keep the three in step.
type Config struct {
	// Targets are image targets in order of preference: the first one
	// that is reachable when hibernating is used; resume tries each.
	Targets []string `toml:"targets"`
	// KeyFile encrypts images (hibernate) and decrypts them (resume)
	// when no key option is given; see docs/security.md.
	KeyFile string `toml:"key_file"`

	Image   Image   `toml:"image"`
	Helper  Helper  `toml:"helper"`
	Network Network `toml:"network"`
	Resume  Resume  `toml:"resume"`

	// Path is the file this came from ("" when defaults only).
	Path string `toml:"-"`
}

// Image is how images are written.
type Image struct {
	Level       string `toml:"level"`       // fastest, fast, default or best
	Compression string `toml:"compression"` // auto, zstd or s2
	Threads     int    `toml:"threads"`     // compression workers in the helper; 0: one per CPU
	// FreePages is "exclude" (leave out what the kernel has free) or "keep".
	FreePages string `toml:"free_pages"`
}

// Helper is the helper kernel and its memory.
type Helper struct {
	Kernel  string   `toml:"kernel"`  // bzImage
	Initrd  string   `toml:"initrd"`  // built by 'hibernate prepare'
	Args    string   `toml:"args"`    // extra helper kernel command line
	Reserve string   `toml:"reserve"` // smallest reserved region accepted, e.g. "128M"
	Modules []string `toml:"modules"` // extra kernel modules for the helper initramfs
	// Watchdog is how many seconds the helper's capture may go without
	// progress before the helper aborts it and jumps back.
	Watchdog int `toml:"watchdog"`
}

// Watchdog bounds for helper.watchdog, in seconds.
const (
	DefaultWatchdog = 60
	MinWatchdog     = 10
	MaxWatchdog     = 3600
)

// Network is how the helper reaches an NFS target. Empty fields are
// derived from the interface the running system uses to reach the server.
type Network struct {
	Interface string `toml:"interface"` // interface name on this system (its MAC identifies it in the helper)
	Address   string `toml:"address"`   // IPv4 address/prefix for the helper, e.g. 192.168.1.50/24
}

// Resume is the early-boot policy.
type Resume struct {
	Policy string `toml:"policy"` // auto: resume from a committed image; never: always boot normally
	Force  bool   `toml:"force"`  // also resume images invalidated by an earlier failed attempt
	// AllowUnproven accepts mounted block filesystems whose on-disk state
	// kjump cannot check (see fsstate); changes it can see still refuse.
	AllowUnproven bool `toml:"allow_unproven"`
}

// Default returns the settings used when the file or a key is absent.
func Default() Config {
	return Config{
		Image:  Image{Level: "fast", Compression: "auto", FreePages: "exclude"},
		Helper: Helper{Kernel: "/boot/kjump/helper.bzImage", Initrd: "/boot/kjump/helper.cpio.gz", Reserve: "128M", Watchdog: DefaultWatchdog},
		Resume: Resume{Policy: "auto"},
	}
}

// Load reads path; a missing file gives Default().
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Default(), nil
	}
	if err != nil {
		return Config{}, err
	}
	c, err := Parse(b)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	c.Path = path
	return c, nil
}

// Parse decodes a config file over the defaults and validates it.
func Parse(data []byte) (Config, error) {
	c := Default()
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return Config{}, fmt.Errorf("line %d: %s (see kjump.conf(5))", pe.Position.Line, pe.Message)
		}
		return Config{}, fmt.Errorf("%v (see kjump.conf(5))", strings.TrimPrefix(err.Error(), "toml: "))
	}
	if u := md.Undecoded(); len(u) > 0 {
		k := u[0]
		where := ""
		if n := keyLine(data, k); n > 0 {
			where = fmt.Sprintf("line %d: ", n)
		}
		return Config{}, fmt.Errorf("%sunknown key %q: remove it or fix its spelling (keys: %s; see kjump.conf(5))",
			where, k.String(), knownKeys)
	}
	return c, c.Validate()
}

const knownKeys = "targets, key_file, image.level, image.compression, image.threads, image.free_pages, helper.kernel, helper.initrd, helper.args, " +
	"helper.reserve, helper.modules, helper.watchdog, network.interface, network.address, resume.policy, resume.force"

// Validate checks values the types alone do not.
func (c Config) Validate() error {
	switch c.Image.Level {
	case "fastest", "fast", "default", "best":
	default:
		return fmt.Errorf("image.level = %q: use fastest, fast, default or best", c.Image.Level)
	}
	switch c.Image.Compression {
	case "auto", "zstd", "s2":
	default:
		return fmt.Errorf("image.compression = %q: use auto, zstd or s2", c.Image.Compression)
	}
	switch c.Image.FreePages {
	case "exclude", "keep":
	default:
		return fmt.Errorf("image.free_pages = %q: use exclude or keep", c.Image.FreePages)
	}
	if c.Image.Threads < 0 {
		return fmt.Errorf("image.threads = %d: use 0 (one per CPU) or a positive number", c.Image.Threads)
	}
	switch c.Resume.Policy {
	case "auto", "never":
	default:
		return fmt.Errorf("resume.policy = %q: use auto or never", c.Resume.Policy)
	}
	if w := c.Helper.Watchdog; w < MinWatchdog || w > MaxWatchdog {
		return fmt.Errorf("helper.watchdog = %d: give the seconds without progress after which the helper aborts and jumps back, %d to %d (default %d)",
			w, MinWatchdog, MaxWatchdog, DefaultWatchdog)
	}
	if _, err := c.ReserveBytes(); err != nil {
		return err
	}
	for i, t := range c.Targets {
		if strings.TrimSpace(t) == "" {
			return fmt.Errorf("targets[%d] is empty: give a partition, UUID=, LABEL=, PARTUUID= or an NFS path", i)
		}
	}
	if c.Network.Address != "" && !strings.Contains(c.Network.Address, "/") {
		return fmt.Errorf("network.address = %q: give address/prefix, e.g. 192.168.1.50/24", c.Network.Address)
	}
	return nil
}

// ReserveBytes is helper.reserve in bytes (memparse syntax: 128M, 1G, 0x8000000).
func (c Config) ReserveBytes() (uint64, error) {
	s := c.Helper.Reserve
	if s == "" {
		return 0, fmt.Errorf("helper.reserve is empty: give the reserved region's size, e.g. \"128M\"")
	}
	v, err := layout.ParseMemSize(s)
	if err != nil {
		return 0, fmt.Errorf("helper.reserve = %q: give a size such as \"128M\" or \"1G\"", s)
	}
	if v > 1<<40 {
		return 0, fmt.Errorf("helper.reserve = %q is larger than 1 TiB", s)
	}
	return v, nil
}

// keyLine finds the line that sets key k: the TOML library reports
// positions only for errors, not for keys it did not decode.
func keyLine(data []byte, k toml.Key) int {
	if len(k) == 0 {
		return 0
	}
	table := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	full := k.String()
	parent := toml.Key(k[:len(k)-1]).String()
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") {
			h := strings.Trim(line, "[] \t")
			if i := strings.Index(h, "#"); i >= 0 {
				h = strings.TrimSpace(strings.Trim(h[:i], "[] \t"))
			}
			table = strings.ReplaceAll(h, " ", "")
			if table == full { // an unknown [table]
				return n
			}
			continue
		}
		name, _, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		name = strings.ReplaceAll(strings.TrimSpace(name), " ", "")
		if name == full && table == "" || table == parent && name == k[len(k)-1] ||
			table != "" && table+"."+name == full || strings.HasPrefix(full, joinKey(table, name)+".") {
			return n
		}
	}
	return 0
}

func joinKey(table, name string) string {
	if table == "" {
		return name
	}
	return table + "." + name
}

// PathFromArgs finds --config in a command's arguments before its flags
// are parsed: the file's values are the flags' defaults.
func PathFromArgs(args []string) string {
	for i, a := range args {
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if v, ok := strings.CutPrefix(a, "config="); ok {
			return v
		}
		if a == "config" && i+1 < len(args) {
			return args[i+1]
		}
		if a == "" { // "--": no more options
			break
		}
	}
	return DefaultPath
}
