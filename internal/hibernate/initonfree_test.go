package hibernate

import (
	"strings"
	"testing"

	"github.com/kjump/kjump/internal/sysinfo"
)

func TestZeroesFreePages(t *testing.T) {
	config := func(text string) sysinfo.KernelConfig {
		c, err := sysinfo.ParseKernelConfig(strings.NewReader(text))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	off := config("CONFIG_X=y\n# CONFIG_INIT_ON_FREE_DEFAULT_ON is not set\n")
	on := config("CONFIG_INIT_ON_FREE_DEFAULT_ON=y\n")
	silent := config("CONFIG_X=y\n")
	for _, tc := range []struct {
		cmdline string
		cfg     sysinfo.KernelConfig
		found   bool
		want    bool
	}{
		{"quiet init_on_free=1", off, true, true},
		{"init_on_free=0", on, true, false},
		{"init_on_free=off", sysinfo.KernelConfig{}, false, false},
		{"quiet", on, true, true},
		{"quiet", off, true, false},
		{"quiet", silent, true, true},
		{"quiet", sysinfo.KernelConfig{}, false, true},
	} {
		if got, why := zeroesFreePages(tc.cmdline, tc.cfg, tc.found); got != tc.want || why == "" {
			t.Errorf("%q (config found %v): %v (%s), want %v", tc.cmdline, tc.found, got, why, tc.want)
		}
	}
}
