// Package redact hides credentials in URLs so that they can go into errors, logs and events.
package redact

import (
	"errors"
	"net/url"
	"strings"
)

// Mask replaces a hidden secret.
const Mask = "xxxxx"

// URL returns raw with the secret part of its userinfo hidden: the password of user:password, or a lone user
// part (which may be a token). A URL that does not parse has the same part hidden by position: what stands
// between "user:" (or "://") and the last "@" of its authority. A URL without userinfo is returned unchanged.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err == nil && !strings.Contains(raw, "://") {
		err = errors.New("no authority") // "user:pw@host" parses as scheme "user": treat it as unparsable
	}
	if err == nil {
		if u.User == nil {
			return raw
		}
		if _, hasPassword := u.User.Password(); hasPassword {
			return u.Redacted()
		}
		u.User = url.User(Mask)
		return u.String()
	}
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		// No scheme: hide what stands before an '@' (after "user:", when there is one).
		at := strings.LastIndexByte(raw, '@')
		if at < 0 {
			return raw
		}
		if colon := strings.IndexByte(raw[:at], ':'); colon >= 0 {
			return raw[:colon+1] + Mask + raw[at:]
		}
		return Mask + raw[at:]
	}
	authority, _, _ := strings.Cut(rest, "/")
	at := strings.LastIndexByte(authority, '@')
	if at < 0 {
		return raw
	}
	start := len(raw) - len(rest)
	if colon := strings.IndexByte(authority[:at], ':'); colon >= 0 {
		start += colon + 1 // keep the user name of user:password
	}
	return raw[:start] + Mask + raw[len(raw)-len(rest)+at:]
}

// URLs redacts each URL and joins them with commas.
func URLs(urls []string) string {
	out := make([]string, len(urls))
	for i, raw := range urls {
		out[i] = URL(raw)
	}
	return strings.Join(out, ",")
}

// ParseError returns url.Parse's reason without the URL it quotes, which may hold a password.
func ParseError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return "invalid URL"
}
