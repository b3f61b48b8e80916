package purgatory

import (
	"fmt"
	"os/exec"
)

func runGen(out string) error {
	cmd := exec.Command("go", "run", "gen.go", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go run gen.go: %v\n%s", err, b)
	}
	return nil
}
