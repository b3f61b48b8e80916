//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/kjump/kjump/internal/vm"
)

func init() {
	register(Scenario{Name: "deb-roundtrip", Exclusive: makeDeb, Timeout: 20 * time.Minute, Run: debRoundTrip})
}

// debRoundTrip builds the .deb and installs and removes it in a Debian
// chroot (packaging/test-deb.sh), with the test kernel as helper kernel so
// the postinst really runs 'hibernate prepare'.
func debRoundTrip(s *S) error {
	kernel, err := testKernel("")
	if err != nil {
		return err
	}
	root, err := vm.RepoRoot()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(s.Ctx, "packaging/test-deb.sh", kernel)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "KJUMP_CACHE="+vm.CacheDir())
	out, err := cmd.CombinedOutput()
	s.T.Logf("packaging/test-deb.sh:\n%s", out)
	if err != nil {
		return fmt.Errorf("packaging/test-deb.sh: %v: %s", err, lastLines(string(out), 15))
	}
	return nil
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
