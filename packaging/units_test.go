// Package packaging holds the tests of kjump's packaging scripts
// (install.sh, deb.sh) and of the systemd units they install.
package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/kjump/kjump/internal/setup"
)

// unitFiles are the unit files in systemd/ (drop-ins under systemd/system
// and sleep.conf.d are not units).
func unitFiles(t *testing.T) []string {
	var out []string
	for _, ext := range []string{"service", "timer", "path"} {
		m, err := filepath.Glob("../systemd/*." + ext)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range m {
			out = append(out, filepath.Base(f))
		}
	}
	sort.Strings(out)
	return out
}

func installSh(t *testing.T, arg string) []string {
	cmd := exec.Command("packaging/install.sh", arg)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "PREFIX=/usr", "DESTDIR=")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("install.sh %s: %v", arg, err)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// Every unit is installed where systemd looks; the package (postinst
// enables install.sh's 'units') and 'hibernate setup' (setup.Units)
// enable the same ones; each .path and .timer starts a unit that exists.
func TestUnitsInstalledAndEnabled(t *testing.T) {
	units := unitFiles(t)
	installed := map[string]bool{}
	for _, l := range installSh(t, "list") {
		if f := strings.Fields(l); len(f) == 3 && strings.HasPrefix(f[2], "/usr/lib/systemd/system/") {
			installed[strings.TrimPrefix(f[2], "/usr/lib/systemd/system/")] = true
		}
	}
	var withInstall []string
	for _, u := range units {
		if !installed[u] {
			t.Errorf("%s is not installed into /usr/lib/systemd/system by install.sh", u)
		}
		b, err := os.ReadFile(filepath.Join("../systemd", u))
		if err != nil {
			t.Fatal(err)
		}
		if len(setup.WantedBy(string(b))) > 0 {
			withInstall = append(withInstall, u)
		}
		if ext := filepath.Ext(u); ext == ".path" || ext == ".timer" {
			started := strings.TrimSuffix(u, ext) + ".service"
			if m := regexp.MustCompile(`(?m)^Unit=(\S+)`).FindStringSubmatch(string(b)); m != nil {
				started = m[1]
			}
			if _, err := os.Stat(filepath.Join("../systemd", started)); err != nil {
				t.Errorf("%s starts %s, which kjump does not ship", u, started)
			}
		}
	}
	byPackage := installSh(t, "units")
	sort.Strings(byPackage)
	bySetup := append([]string(nil), setup.Units...)
	sort.Strings(bySetup)
	if strings.Join(byPackage, " ") != strings.Join(withInstall, " ") || strings.Join(bySetup, " ") != strings.Join(withInstall, " ") {
		t.Errorf("units with [Install]: %q; the package enables %q; hibernate setup enables %q", withInstall, byPackage, bySetup)
	}
	if !installed["kjump-canhibernate.path"] {
		t.Error("kjump-canhibernate.path (CanHibernate follows configuration edits) is not installed")
	}
}

// systemd-analyze verify accepts every unit, installed in a root that has
// this machine's systemd units and the real hibernate binary their
// ExecStart= lines run.
func TestUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze (package systemd) is needed to verify the unit files: %v", err)
	}
	root := t.TempDir()
	sysdir := filepath.Join(root, "usr/lib/systemd/system")
	if err := os.MkdirAll(filepath.Join(root, "usr/lib/systemd"), 0o755); err != nil {
		t.Fatal(err)
	}
	host := "/usr/lib/systemd/system"
	if _, err := os.Stat(host); err != nil {
		host = "/lib/systemd/system"
	}
	if out, err := exec.Command("cp", "-a", host, filepath.Join(root, "usr/lib/systemd/")).CombinedOutput(); err != nil {
		t.Fatalf("copying this machine's units: %v %s", err, out)
	}
	gobuild := exec.Command("go", "build", "-o", filepath.Join(root, "usr/sbin/hibernate"), "./cmd/hibernate")
	gobuild.Dir = ".."
	gobuild.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := gobuild.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	args := []string{"verify", "--root=" + root, "--man=no"}
	for _, u := range unitFiles(t) {
		b, err := os.ReadFile(filepath.Join("../systemd", u))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sysdir, u), b, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, filepath.Join(sysdir, u))
	}
	out, err := exec.Command(analyze, args...).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
