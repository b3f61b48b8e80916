package image

import (
	"encoding/json"
	"testing"
)

func TestLevelAndCompressionText(t *testing.T) {
	type wire struct {
		Level       Level       `json:"level"`
		Compression Compression `json:"compression"`
	}
	for _, l := range []Level{LevelFastest, LevelFast, LevelDefault, LevelBest} {
		for _, c := range []Compression{Auto, Zstd, S2} {
			js, err := json.Marshal(wire{l, c})
			if err != nil {
				t.Fatal(err)
			}
			var got wire
			if err := json.Unmarshal(js, &got); err != nil || got != (wire{l, c}) {
				t.Errorf("%s: got %+v, %v", js, got, err)
			}
		}
	}
	for _, bad := range []string{`{"level":"fastish"}`, `{"compression":"lz4"}`, `{"level":""}`, `{"compression":"ZSTD"}`} {
		var w wire
		if err := json.Unmarshal([]byte(bad), &w); err == nil {
			t.Errorf("%s accepted as %+v", bad, w)
		}
	}
	if _, err := json.Marshal(wire{Level: 42, Compression: Zstd}); err == nil {
		t.Error("unknown level marshalled")
	}
}
