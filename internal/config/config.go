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
	"reflect"
	"regexp"
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
	// Direct is auto: on a GRUB machine 'hibernate setup' prepared, the
	// power-on after 'hibernate now' boots the helper kernel straight into
	// the restore (docs/design.md, "Direct restore"); never: it always
	// boots normally first.
	Direct string `toml:"direct"`
}

// DirectRestore reports whether 'hibernate now' may arm the direct
// restore: resume.direct = auto, and images are resumed at all.
func (r Resume) DirectRestore() bool { return r.Direct == "auto" && r.Policy == "auto" }

// Default returns the settings used when the file or a key is absent.
func Default() Config {
	return Config{
		Image:  Image{Level: "fast", Compression: "auto", FreePages: "exclude"},
		Helper: Helper{Kernel: "/boot/kjump/helper.bzImage", Initrd: "/boot/kjump/helper.cpio.gz", Reserve: "128M", Watchdog: DefaultWatchdog},
		Resume: Resume{Policy: "auto", Direct: "auto"},
	}
}

// Load reads path; a missing file gives Default().
func Load(path string) (Config, error) { return load(path, false) }

// LoadArgs reads the file a command's --config names, else DefaultPath.
// Only the default may be missing (every default then applies): a file
// named on the command line that is not there is an error, not a silent
// fallback to defaults.
func LoadArgs(args []string) (Config, error) {
	return load(PathFromArgsExplicit(args))
}

// load reads and parses path; a missing file gives Default() unless the
// user named it (explicit).
func load(path string, explicit bool) (Config, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if explicit {
			return Config{}, fmt.Errorf("--config %s: no such file (without --config, %s is read if it exists)", path, DefaultPath)
		}
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
			if te := typeError(pe); te != "" {
				return Config{}, fmt.Errorf("line %d: %s (see kjump.conf(5))", pe.Position.Line, te)
			}
			return Config{}, fmt.Errorf("line %d: %s (see kjump.conf(5))", pe.Position.Line, pe.Message)
		}
		msg := strings.TrimPrefix(err.Error(), "toml: ")
		// Type mismatches come as `line N (last key "K"): MESSAGE`.
		if m := lastKeyError.FindStringSubmatch(msg); m != nil {
			if te := typeError(toml.ParseError{Message: m[3], LastKey: m[2]}); te != "" {
				return Config{}, fmt.Errorf("line %s: %s (see kjump.conf(5))", m[1], te)
			}
		}
		return Config{}, fmt.Errorf("%v (see kjump.conf(5))", msg)
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
	"helper.reserve, helper.modules, helper.watchdog, network.interface, network.address, resume.policy, resume.force, resume.allow_unproven, resume.direct"

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
	switch c.Resume.Direct {
	case "auto", "never":
	default:
		return fmt.Errorf("resume.direct = %q: use auto or never", c.Resume.Direct)
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
	p, _ := PathFromArgsExplicit(args)
	return p
}

// PathFromArgsExplicit is PathFromArgs, and whether --config was given.
func PathFromArgsExplicit(args []string) (string, bool) {
	for i, a := range args {
		if !strings.HasPrefix(a, "-") {
			continue
		}
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if v, ok := strings.CutPrefix(a, "config="); ok {
			return v, true
		}
		if a == "config" && i+1 < len(args) {
			return args[i+1], true
		}
		if a == "" { // "--": no more options
			break
		}
	}
	return DefaultPath, false
}

var lastKeyError = regexp.MustCompile(`^line (\d+) \(last key "([^"]+)"\): (.*)$`)

// typeError rewrites the TOML library's type mismatch ("incompatible
// types: TOML value has type int64; destination has type string") as the
// key, what it takes and what it got; "" for other errors.
func typeError(pe toml.ParseError) string {
	m := pe.Message
	var got string
	switch {
	case strings.Contains(m, "TOML value has type "):
		got, _, _ = strings.Cut(strings.SplitN(m, "TOML value has type ", 2)[1], ";")
	case strings.Contains(m, "but found "):
		got = strings.SplitN(m, "but found ", 2)[1]
	default:
		return ""
	}
	want := expectedType(pe.LastKey)
	if want == "" {
		return ""
	}
	return fmt.Sprintf("%s must be %s, not %s", pe.LastKey, want, tomlTypeName(strings.TrimSpace(got)))
}

// expectedType describes what the key holds, from Config's field types.
func expectedType(key string) string {
	t := reflect.TypeOf(Config{})
	for _, part := range strings.Split(key, ".") {
		if t.Kind() != reflect.Struct {
			return ""
		}
		found := false
		for i := 0; i < t.NumField(); i++ {
			if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ","); tag == part {
				t, found = t.Field(i).Type, true
				break
			}
		}
		if !found {
			return ""
		}
	}
	switch t.Kind() {
	case reflect.String:
		return "a string in quotes, e.g. " + key[strings.LastIndex(key, ".")+1:] + ` = "..."`
	case reflect.Int, reflect.Int64, reflect.Uint64:
		return "a whole number without quotes"
	case reflect.Bool:
		return "true or false (without quotes)"
	case reflect.Slice:
		return `a list of strings, e.g. ["a", "b"]`
	case reflect.Struct:
		return "a table ([" + key + "])"
	}
	return ""
}

func tomlTypeName(t string) string {
	switch {
	case t == "string":
		return "a string"
	case strings.HasPrefix(t, "int"):
		return "a number"
	case strings.HasPrefix(t, "float"):
		return "a decimal number"
	case t == "bool":
		return "a boolean"
	case strings.Contains(t, "[]") || strings.Contains(t, "slice"):
		return "a list"
	case strings.Contains(t, "map"):
		return "a table"
	}
	return t
}
