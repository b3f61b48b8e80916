package hibernate

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"testing"
)

func TestZeroesFreePages(t *testing.T) {
	dir := t.TempDir()
	off := filepath.Join(dir, "config-off")
	os.WriteFile(off, []byte("CONFIG_X=y\n# CONFIG_INIT_ON_FREE_DEFAULT_ON is not set\n"), 0o644)
	on := filepath.Join(dir, "config.gz")
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write([]byte("CONFIG_INIT_ON_FREE_DEFAULT_ON=y\n"))
	w.Close()
	os.WriteFile(on, gz.Bytes(), 0o644)
	silent := filepath.Join(dir, "config-silent")
	os.WriteFile(silent, []byte("CONFIG_X=y\n"), 0o644)
	for _, tc := range []struct {
		cmdline string
		configs []string
		want    bool
	}{
		{"quiet init_on_free=1", []string{off}, true},
		{"init_on_free=0", []string{on}, false},
		{"init_on_free=off", nil, false},
		{"quiet", []string{on, off}, true},
		{"quiet", []string{filepath.Join(dir, "none"), off}, false},
		{"quiet", []string{silent}, true},
		{"quiet", nil, true},
	} {
		if got, why := zeroesFreePages(tc.cmdline, tc.configs...); got != tc.want || why == "" {
			t.Errorf("%q %v: %v (%s), want %v", tc.cmdline, tc.configs, got, why, tc.want)
		}
	}
}
