package status

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSaveLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "var/lib/kjump")
	if o, err := Load(dir, Hibernate); o != nil || err != nil {
		t.Fatalf("no record: %v %v", o, err)
	}
	in := Outcome{Command: "hibernate now", Result: Resumed, Time: time.Unix(1700000000, 0).UTC(), Target: "/dev/vdb",
		ImageID: "abc", Figures: map[string]string{"away": "1m0s"}}
	if err := Save(dir, Hibernate, in); err != nil {
		t.Fatal(err)
	}
	in.Result = Refused
	in.Detail = "target missing"
	if err := Save(dir, Hibernate, in); err != nil {
		t.Fatal(err)
	}
	o, err := Load(dir, Hibernate)
	if err != nil || o.Result != Refused || o.Detail != "target missing" || o.Figures["away"] != "1m0s" || !o.Time.Equal(in.Time) {
		t.Fatalf("%+v %v", o, err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("left behind: %v", ents)
	}
	os.WriteFile(filepath.Join(dir, Resume), []byte("{truncated"), 0o644)
	if _, err := Load(dir, Resume); err == nil {
		t.Fatal("a damaged record read as good")
	}
}
