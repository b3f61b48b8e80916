package image

import "fmt"

// Levels and codecs cross process boundaries as stable text tokens (the
// handoff area, configuration): ParseLevel's and ParseCompression's names.
// An unknown token is an error, never a fallback to a default.

// MarshalText writes the level's token ("fastest", "fast", "default",
// "best").
func (l Level) MarshalText() ([]byte, error) {
	switch l {
	case LevelFastest, LevelFast, LevelDefault, LevelBest:
		return []byte(l.String()), nil
	}
	return nil, fmt.Errorf("unknown compression level %d", int(l))
}

// UnmarshalText reads a level's token.
func (l *Level) UnmarshalText(b []byte) error {
	v, err := ParseLevel(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// UnmarshalText reads a codec's token ("auto", "zstd", "s2"), as
// MarshalText writes it.
func (c *Compression) UnmarshalText(b []byte) error {
	v, err := ParseCompression(string(b))
	if err != nil {
		return err
	}
	*c = v
	return nil
}
