package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestMissingFileIsDefaults(t *testing.T) {
	c, err := Load(filepath.Join(t.TempDir(), "absent.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Fatalf("got %+v, want defaults", c)
	}
}

func TestParseFull(t *testing.T) {
	c, err := Parse([]byte(`
# comment
targets = ["PARTLABEL=kjump", "/mnt/nfs/kjump"]
key_file = "/etc/kjump/key"

[image]
level = "best"
compression = "s2"
threads = 3
free_pages = "keep"

[helper]
kernel = "/boot/vmlinuz-x"
initrd = "/boot/kjump/h.cpio.gz"
args = "loglevel=7"
reserve = "256M"
modules = ["virtio_net"]
watchdog = 45

[network]
interface = "eth0"
address = "10.0.2.50/24"

[resume]
policy = "never"
force = true
direct = "never"
`))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Targets: []string{"PARTLABEL=kjump", "/mnt/nfs/kjump"}, KeyFile: "/etc/kjump/key",
		Image:   Image{Level: "best", Compression: "s2", Threads: 3, FreePages: "keep"},
		Helper:  Helper{Kernel: "/boot/vmlinuz-x", Initrd: "/boot/kjump/h.cpio.gz", Args: "loglevel=7", Reserve: "256M", Modules: []string{"virtio_net"}, Watchdog: 45},
		Network: Network{Interface: "eth0", Address: "10.0.2.50/24"},
		Resume:  Resume{Policy: "never", Force: true, Direct: "never"}}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
	if n, _ := c.ReserveBytes(); n != 256<<20 {
		t.Fatalf("reserve %d", n)
	}
}

func TestPartialKeepsDefaults(t *testing.T) {
	c, err := Parse([]byte("[image]\nthreads = 2\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Image.Level != "fast" || c.Helper.Kernel != "/boot/kjump/helper.bzImage" || c.Resume.Policy != "auto" || c.Image.Threads != 2 || c.Helper.Watchdog != DefaultWatchdog {
		t.Fatalf("%+v", c)
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"targets = [\"/dev/sdb2\"]\n\n[image]\nlevle = \"best\"\n", `line 4: unknown key "image.levle"`},
		{"tragets = [\"/dev/sdb2\"]\n", `line 1: unknown key "tragets"`},
		{"[image]\nlevel = \"fast\"\n[imagine]\nx = 1\n", `line 3: unknown key "imagine"`},
		{"[image]\nlevel = \"ultra\"\n", `image.level = "ultra": use fastest, fast, default or best`},
		{"[image]\ncompression = \"lz4\"\n", `image.compression = "lz4": use auto, zstd or s2`},
		{"[image]\nthreads = -1\n", "image.threads = -1"},
		{"[image]\nthreads = \"four\"\n", "line 2"},
		{"[resume]\npolicy = \"sometimes\"\n", "resume.policy"},
		{"[helper]\nreserve = \"lots\"\n", `helper.reserve = "lots"`},
		{"targets = [\"\"]\n", "targets[0] is empty"},
		{"[helper]\nwatchdog = 0\n", "helper.watchdog = 0: give the seconds without progress"},
		{"[helper]\nwatchdog = 9\n", "10 to 3600 (default 60)"},
		{"[helper]\nwatchdog = 86400\n", "helper.watchdog = 86400"},
		{"[helper]\nwatchdog = \"60s\"\n", "line 2"},
		{"[network]\naddress = \"10.0.0.5\"\n", "address/prefix"},
		{"targets = [\"/dev/sdb2\"\n", "line "},
	} {
		_, err := Parse([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to contain %q", tc.in, err, tc.want)
		}
	}
}

func TestLoadNamesFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "kjump.conf")
	os.WriteFile(p, []byte("bogus = 1\n"), 0o644)
	_, err := Load(p)
	if err == nil || !strings.HasPrefix(err.Error(), p+": line 1: unknown key \"bogus\"") {
		t.Fatalf("%v", err)
	}
}

// The example shipped in systemd/ must parse and name every key.
func TestExampleFile(t *testing.T) {
	b, err := os.ReadFile("../../systemd/kjump.conf")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(b); err != nil {
		t.Fatalf("systemd/kjump.conf: %v", err)
	}
	doc, err := os.ReadFile("../../docs/kjump.conf.5.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range strings.Split(knownKeys, ", ") {
		leaf := k[strings.LastIndex(k, ".")+1:]
		if !strings.Contains(string(b), leaf) {
			t.Errorf("systemd/kjump.conf does not mention %s", k)
		}
		if !strings.Contains(string(doc), "`"+k+"`") {
			t.Errorf("docs/kjump.conf.5.md does not document `%s`", k)
		}
	}
}

// A value of the wrong type names the key, what it takes and what it got,
// in kjump's words rather than the TOML library's Go types.
func TestTypeErrors(t *testing.T) {
	for in, want := range map[string]string{
		"[image]\nthreads = \"4\"\n":   `line 2: image.threads must be a whole number without quotes, not a string`,
		"targets = \"/dev/sdb\"\n":     `line 1: targets must be a list of strings, e.g. ["a", "b"], not a string`,
		"[resume]\nforce = 1\n":        `line 2: resume.force must be true or false (without quotes), not a number`,
		"[helper]\nreserve = 128\n":    `line 2: helper.reserve must be a string in quotes, e.g. reserve = "...", not a number`,
		"image = 3\n":                  `line 1: image must be a table ([image]), not a number`,
		"[helper]\nmodules = [1, 2]\n": `line 2: helper.modules must be a list of strings`,
	} {
		_, err := Parse([]byte(in))
		if err == nil || !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "int64") {
			t.Errorf("%q: %v\nwant %s", in, err, want)
		}
	}
}

// Only the default file may be missing; one named by --config must exist.
func TestLoadArgsMissingExplicit(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "k.conf")
	if _, err := LoadArgs([]string{"--config", missing}); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("--config missing: %v", err)
	}
	if _, err := LoadArgs([]string{"-config=" + missing}); err == nil {
		t.Fatal("-config= missing accepted")
	}
	os.WriteFile(missing, []byte("targets = [\"/dev/x\"]\n"), 0o644)
	if c, err := LoadArgs([]string{"--json", "--config", missing}); err != nil || c.Targets[0] != "/dev/x" {
		t.Fatalf("%v %v", c, err)
	}
}
