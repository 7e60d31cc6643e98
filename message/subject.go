package message

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrBadToken is returned (wrapped) by ValidateToken and ValidatePrefix.
var ErrBadToken = errors.New("not a valid NATS subject token")

// DefaultPrefix is the subject prefix used when none is configured.
const DefaultPrefix = "sestream"

// MaxTokenLen is the longest subject token ValidateToken accepts, in bytes: stream names, prefix tokens and
// JetStream stream names stay short enough for every subject, message id and metric label built from them.
const MaxTokenLen = 64

// ValidateToken checks that name can be one NATS subject token: 1 to MaxTokenLen bytes of letters, digits,
// '-' and '_' (letters and digits may be any Unicode ones). Dots, whitespace, control characters, the
// wildcards '*' and '>' and every other character are refused. Stream names must pass it; a bad name is an
// error, never silently rewritten.
func ValidateToken(name string) error {
	if name == "" {
		return fmt.Errorf("name is empty: %w", ErrBadToken)
	}
	if len(name) > MaxTokenLen {
		return fmt.Errorf("name %q is %d bytes long, longer than %d: %w", clipToken(name), len(name), MaxTokenLen, ErrBadToken)
	}
	for i := 0; i < len(name); {
		r, size := utf8.DecodeRuneInString(name[i:])
		var why string
		switch {
		case r == utf8.RuneError && size == 1:
			why = "invalid UTF-8"
		case r == '.':
			why = "a dot"
		case r == '*' || r == '>':
			why = "the wildcard " + string(r)
		case unicode.IsSpace(r):
			why = "whitespace"
		case unicode.IsControl(r):
			why = "a control character"
		case !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '-' && r != '_':
			return fmt.Errorf("name %q contains %q at byte %d, which is not a letter, digit, '-' or '_': %w", name, r, i, ErrBadToken)
		}
		if why != "" {
			return fmt.Errorf("name %q contains %s at byte %d: %w", name, why, i, ErrBadToken)
		}
		i += size
	}
	return nil
}

// clipToken shortens a long name for an error message.
func clipToken(name string) string {
	if len(name) <= 24 {
		return name
	}
	cut := 24
	for cut > 0 && !utf8.RuneStart(name[cut]) {
		cut--
	}
	return name[:cut] + "..."
}

// ValidatePrefix checks a subject prefix: one or more tokens joined by dots, each passing ValidateToken.
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return fmt.Errorf("prefix is empty: %w", ErrBadToken)
	}
	for _, tok := range strings.Split(prefix, ".") {
		if err := ValidateToken(tok); err != nil {
			return fmt.Errorf("prefix %q: %w", prefix, err)
		}
	}
	return nil
}

// Subject returns the subject of a per-stream message: <prefix>.<stream>.<kind>.
// For KindStatus it returns StatusSubject(prefix). Names are assumed validated.
func Subject(prefix, stream string, kind Kind) string {
	if kind == KindStatus {
		return StatusSubject(prefix)
	}
	return prefix + "." + stream + "." + kind.String()
}

// StatusSubject returns <prefix>.status.
func StatusSubject(prefix string) string { return prefix + ".status" }

// AllSubjects returns the wildcard subject covering everything published under prefix: <prefix>.>.
func AllSubjects(prefix string) string { return prefix + ".>" }

// ParseSubject splits a subject published under prefix into its stream and kind.
// The status subject yields stream "".
func ParseSubject(prefix, subject string) (stream string, kind Kind, err error) {
	rest, ok := strings.CutPrefix(subject, prefix+".")
	if !ok {
		return "", 0, fmt.Errorf("subject %q is not under prefix %q", subject, prefix)
	}
	if rest == "status" {
		return "", KindStatus, nil
	}
	stream, tok, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(tok, ".") {
		return "", 0, fmt.Errorf("subject %q: want %s.<stream>.<kind>", subject, prefix)
	}
	kind, err = ParseKind(tok)
	if err != nil || kind == KindStatus {
		return "", 0, fmt.Errorf("subject %q: unknown kind %q", subject, tok)
	}
	return stream, kind, nil
}

// MsgID returns the Nats-Msg-Id header value of a per-frame message:
// <stream>:<boot id>:<seq>:<kind>. The kind is part of the id because result and attention
// messages of one frame go to the same JetStream stream, whose de-duplication window is per
// stream: with <stream>:<boot id>:<seq> alone the attention message would be discarded as a
// duplicate of the result.
func MsgID(stream, bootID string, seq uint64, kind Kind) string {
	var b strings.Builder
	b.Grow(len(stream) + len(bootID) + 32)
	b.WriteString(stream)
	b.WriteByte(':')
	b.WriteString(bootID)
	b.WriteByte(':')
	var num [20]byte
	b.Write(strconv.AppendUint(num[:0], seq, 10))
	b.WriteByte(':')
	b.WriteString(kind.String())
	return b.String()
}
