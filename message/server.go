package message

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/sestream/sestream/internal/redact"
)

// ValidateServerURL checks that raw is a NATS server URL (nats://, tls://, ws:// or wss:// with a host).
// Errors show the URL without its password.
func ValidateServerURL(raw string) error {
	shown := raw // what errors show when the URL does not parse: never the part before '@'
	if i := strings.LastIndex(raw, "@"); i >= 0 {
		shown = "xxxxx@" + raw[i+1:]
	}
	if !strings.Contains(raw, "://") {
		return fmt.Errorf("nats url %q: no scheme (want nats://host:port)", shown)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("nats url %q: cannot parse (%s)", shown, redact.ParseError(err))
	}
	switch u.Scheme {
	case "nats", "tls", "ws", "wss":
	default:
		return fmt.Errorf("nats url %q: scheme %q is not a NATS scheme (want nats://, tls://, ws:// or wss://)", redact.URL(raw), u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("nats url %q: no host", redact.URL(raw))
	}
	return nil
}
