// Package cmdline reads kernel command lines (/proc/cmdline) the way the
// kernel itself splits them, for kjump.resume=, kjump.handoff= and friends.
package cmdline

import "strings"

// Params splits a kernel command line into name=value words the way
// the kernel does: whitespace separates words except inside double quotes,
// and quotes around a value ("kjump.resume=\"LABEL=my disk\"") or around
// the whole word are dropped. Words after a lone "--" belong to init and
// are not returned. A word without '=' has the value "".
func Params(cmdline string) [][2]string {
	var out [][2]string
	s := cmdline
	for {
		s = strings.TrimLeft(s, " \t\n\r\v\f")
		if s == "" {
			return out
		}
		word, rest := nextWord(s)
		s = rest
		if word == "--" {
			return out
		}
		name, val, _ := strings.Cut(word, "=")
		name = strings.Trim(name, `"`)
		if len(val) > 0 && val[0] == '"' {
			val = strings.TrimSuffix(val[1:], `"`)
		} else {
			val = strings.TrimSuffix(val, `"`) // the closing quote of a quoted word
		}
		out = append(out, [2]string{name, val})
	}
}

// nextWord returns the word at the start of s (quotes kept) and the rest.
func nextWord(s string) (string, string) {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			quoted = !quoted
		case !quoted && strings.IndexByte(" \t\n\r\v\f", c) >= 0:
			return s[:i], s[i:]
		}
	}
	return s, ""
}

// Value returns the value of the last name= word (the last one wins, as
// for the kernel's own parameters) and whether there was one.
func Value(line, name string) (string, bool) {
	v, found := "", false
	for _, p := range Params(line) {
		if p[0] == name {
			v, found = p[1], true
		}
	}
	return v, found
}

// Switch reports whether word is on line alone or as word=1, word=y,
// word=yes or word=true (the last occurrence decides).
func Switch(line, word string) bool {
	on := false
	for _, p := range Params(line) {
		if p[0] == word {
			switch p[1] {
			case "", "1", "y", "yes", "true":
				on = true
			default:
				on = false
			}
		}
	}
	return on
}
