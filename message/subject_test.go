package message

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateToken(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
		why  string
	}{
		{"cam1", true, ""},
		{"front-door_2", true, ""},
		{"Kamera-Süd", true, ""},
		{"", false, "empty"},
		{"a.b", false, "dot"},
		{".", false, "dot"},
		{"cam 1", false, "whitespace"},
		{"cam\t1", false, "whitespace"},
		{"cam\u00a01", false, "whitespace"},
		{"*", false, "wildcard *"},
		{"cam>", false, "wildcard >"},
		{"cam\x00", false, "control"},
		{"cam\xff", false, "invalid UTF-8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateToken(tc.name)
			if tc.ok {
				if err != nil {
					t.Fatalf("ValidateToken(%q) = %v", tc.name, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ValidateToken(%q) accepted a bad name", tc.name)
			}
			if !errors.Is(err, ErrBadToken) || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("ValidateToken(%q) = %v, want ErrBadToken mentioning %q", tc.name, err, tc.why)
			}
		})
	}
}

func TestValidatePrefix(t *testing.T) {
	for _, p := range []string{"sestream", "site1.video"} {
		if err := ValidatePrefix(p); err != nil {
			t.Errorf("ValidatePrefix(%q) = %v", p, err)
		}
	}
	for _, p := range []string{"", "a..b", ".a", "a.", "a.*", "a b", "a.>"} {
		if err := ValidatePrefix(p); err == nil {
			t.Errorf("ValidatePrefix(%q) accepted a bad prefix", p)
		}
	}
}

func TestSubjects(t *testing.T) {
	tests := []struct {
		prefix, stream string
		kind           Kind
		want           string
	}{
		{"sestream", "cam1", KindResult, "sestream.cam1.result"},
		{"sestream", "cam1", KindAttention, "sestream.cam1.attention"},
		{"site.video", "door", KindEvent, "site.video.door.event"},
		{"sestream", "", KindStatus, "sestream.status"},
	}
	for _, tc := range tests {
		got := Subject(tc.prefix, tc.stream, tc.kind)
		if got != tc.want {
			t.Errorf("Subject(%q, %q, %s) = %q, want %q", tc.prefix, tc.stream, tc.kind, got, tc.want)
		}
		stream, kind, err := ParseSubject(tc.prefix, got)
		if err != nil || stream != tc.stream || kind != tc.kind {
			t.Errorf("ParseSubject(%q) = %q, %s, %v", got, stream, kind, err)
		}
	}
	for _, bad := range []string{"other.cam1.result", "sestream.cam1", "sestream.cam1.status", "sestream.cam1.result.x", "sestream.cam1.blob"} {
		if _, _, err := ParseSubject("sestream", bad); err == nil {
			t.Errorf("ParseSubject(%q) accepted a bad subject", bad)
		}
	}
}

func TestMsgIDDistinguishesKinds(t *testing.T) {
	r := MsgID("cam1", "4f1c", 42, KindResult)
	a := MsgID("cam1", "4f1c", 42, KindAttention)
	if r != "cam1:4f1c:42:result" || a != "cam1:4f1c:42:attention" {
		t.Fatalf("MsgID = %q, %q", r, a)
	}
}

func TestKinds(t *testing.T) {
	for _, k := range Kinds {
		got, err := ParseKind(k.String())
		if err != nil || got != k {
			t.Errorf("ParseKind(%q) = %v, %v", k.String(), got, err)
		}
		if !strings.HasPrefix(k.Schema(), "sestream."+k.String()+"/") {
			t.Errorf("%s.Schema() = %q", k, k.Schema())
		}
	}
	if _, err := ParseKind("all"); err == nil {
		t.Error("ParseKind(all) succeeded")
	}
}

func FuzzSubjectRoundTrip(f *testing.F) {
	for _, s := range []string{"cam1", "a.b", "", "*", "Kamera-Süd", "x\xff"} {
		f.Add("sestream", s)
	}
	f.Add("site.video", "door")
	f.Fuzz(func(t *testing.T, prefix, stream string) {
		if ValidatePrefix(prefix) != nil || ValidateToken(stream) != nil {
			return
		}
		for _, k := range []Kind{KindResult, KindAttention, KindEvent} {
			subj := Subject(prefix, stream, k)
			gotStream, gotKind, err := ParseSubject(prefix, subj)
			if err != nil || gotStream != stream || gotKind != k {
				t.Fatalf("ParseSubject(%q, %q) = %q, %v, %v", prefix, subj, gotStream, gotKind, err)
			}
			if strings.Count(subj, ".") != strings.Count(prefix, ".")+2 {
				t.Fatalf("subject %q has the wrong number of tokens", subj)
			}
		}
	})
}
