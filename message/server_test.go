package message

import (
	"strings"
	"testing"
)

func TestValidateServerURL(t *testing.T) {
	for _, tc := range []struct{ url, err string }{
		{"nats://127.0.0.1:4222", ""},
		{"tls://nats.example:4443", ""},
		{"ws://h:80", ""},
		{"127.0.0.1:4222", "no scheme"},
		{"http://127.0.0.1:4222", `scheme "http" is not a NATS scheme`},
		{"nats://", "no host"},
		{"http://tok-secret@127.0.0.1:4222", "xxxxx@127.0.0.1"},
		{"nats://u:pa%zz@h", "cannot parse"},
	} {
		err := ValidateServerURL(tc.url)
		if tc.err == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.url, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: error %v, want one containing %q", tc.url, err, tc.err)
		}
		if err != nil && (strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "pa%zz")) {
			t.Errorf("%s: error shows the secret: %v", tc.url, err)
		}
	}
}
