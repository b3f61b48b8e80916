package config

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/BurntSushi/toml"
)

// FuzzParse: no input panics; whatever parses is valid and survives a
// round trip through the TOML encoder unchanged.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted an invalid config: %v", err)
		}
		var buf bytes.Buffer
		if err := toml.NewEncoder(&buf).Encode(c); err != nil {
			t.Fatalf("encode: %v", err)
		}
		c2, err := Parse(buf.Bytes())
		if err != nil {
			t.Fatalf("re-parse of\n%s\nfailed: %v", buf.Bytes(), err)
		}
		if !reflect.DeepEqual(normal(c), normal(c2)) {
			t.Fatalf("round trip changed\n%+v\nto\n%+v", c, c2)
		}
	})
}

// normal treats an empty list and no list alike (the encoder drops both).
func normal(c Config) Config {
	if len(c.Targets) == 0 {
		c.Targets = nil
	}
	if len(c.Helper.Modules) == 0 {
		c.Helper.Modules = nil
	}
	return c
}
