package message

import "testing"

func TestFrameSubject(t *testing.T) {
	if got := FrameSubject("site1.video", "cam1"); got != "site1.video.cam1.frame" {
		t.Fatalf("FrameSubject = %q", got)
	}
	for _, c := range []struct {
		subject, stream string
		ok              bool
	}{
		{"sestream.cam1.frame", "cam1", true},
		{"sestream.cam1.result", "", false},
		{"sestream.a.b.frame", "", false},
		{"sestream..frame", "", false},
		{"other.cam1.frame", "", false},
	} {
		stream, err := ParseFrameSubject("sestream", c.subject)
		if (err == nil) != c.ok || stream != c.stream {
			t.Errorf("ParseFrameSubject(%q) = %q, %v", c.subject, stream, err)
		}
	}
}
