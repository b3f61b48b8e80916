package vm

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"
)

const hmpPrompt = "(qemu) "

var ansiRE = regexp.MustCompile("\x1b\\[[0-9;]*[A-Za-z]")

// Monitor runs one HMP (human monitor) command, e.g. "info status",
// "dump-guest-memory -z /path" or "quit", and returns its output. The machine
// needs Config.Monitor.
func (m *Machine) Monitor(cmd string, timeout time.Duration) (string, error) {
	if m.monitor == "" {
		return "", errors.New("vm: machine started without Config.Monitor")
	}
	conn, err := net.DialTimeout("unix", m.monitor, timeout)
	if err != nil {
		return "", fmt.Errorf("vm: monitor: %w", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	if _, err := readUntilPrompt(conn); err != nil {
		return "", fmt.Errorf("vm: monitor greeting: %w", err)
	}
	if _, err := conn.Write([]byte(cmd + "\n")); err != nil {
		return "", fmt.Errorf("vm: monitor: %w", err)
	}
	out, err := readUntilPrompt(conn)
	if err != nil && !(cmd == "quit" || cmd == "q") {
		return "", fmt.Errorf("vm: monitor command %q: %w", cmd, err)
	}
	// HMP echoes the command with line-editing escapes; drop that line.
	out = ansiRE.ReplaceAllString(strings.ReplaceAll(out, "\r", ""), "")
	if i := strings.IndexByte(out, '\n'); i >= 0 && strings.Contains(out[:i], cmd) {
		out = out[i+1:]
	}
	return strings.TrimSpace(out), nil
}

// readUntilPrompt reads until the HMP prompt and returns what came before it.
func readUntilPrompt(c net.Conn) (string, error) {
	var buf bytes.Buffer
	b := make([]byte, 4096)
	for {
		n, err := c.Read(b)
		buf.Write(b[:n])
		if s := buf.String(); strings.HasSuffix(s, hmpPrompt) {
			return strings.TrimSuffix(s, hmpPrompt), nil
		}
		if err != nil {
			return buf.String(), err
		}
	}
}
