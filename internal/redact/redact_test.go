package redact

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"rtsp://cam.local/stream", "rtsp://cam.local/stream"},
		{"rtsp://admin:hunter2@cam.local:554/s", "rtsp://admin:xxxxx@cam.local:554/s"},
		{"nats://s3cr3ttoken@127.0.0.1:4222", "nats://xxxxx@127.0.0.1:4222"},
		{"rtsp://admin:p%zz@cam/s", "rtsp://admin:xxxxx@cam/s"}, // does not parse
		{"rtsp://user:secret@cam:bad/x", "rtsp://user:xxxxx@cam:bad/x"},
		{"nats://t%zzoken@h:4222", "nats://xxxxx@h:4222"},
		{"videos/a.mp4", "videos/a.mp4"},
		{"user:pw@host:4222", "user:xxxxx@host:4222"}, // no scheme, does not parse as a URL with a host
	} {
		got := URL(tc.in)
		if got != tc.want {
			t.Errorf("URL(%q) = %q, want %q", tc.in, got, tc.want)
		}
		for _, secret := range []string{"hunter2", "s3cr3ttoken", "p%zz", "pw@", "secret", "t%zzoken"} {
			if strings.Contains(tc.in, secret) && strings.Contains(got, secret) {
				t.Errorf("URL(%q) = %q still shows %q", tc.in, got, secret)
			}
		}
	}
}

func TestURLs(t *testing.T) {
	if got, want := URLs([]string{"nats://a:b@h1:4222", "nats://h2:4222"}), "nats://a:xxxxx@h1:4222,nats://h2:4222"; got != want {
		t.Errorf("URLs = %q, want %q", got, want)
	}
}

func TestParseError(t *testing.T) {
	_, err := url.Parse("nats://u:se%cret@h")
	if got := ParseError(err); strings.Contains(got, "se%cret") || got == "" {
		t.Errorf("ParseError = %q", got)
	}
	if got := ParseError(errors.New("x")); got != "invalid URL" {
		t.Errorf("ParseError(other) = %q", got)
	}
}
