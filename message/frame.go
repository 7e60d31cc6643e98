package message

import (
	"fmt"
	"strings"
)

// FrameToken is the last subject token of frame thumbnails: <prefix>.<stream>.frame. A thumbnail is not a
// JSON message: its payload is a JPEG image and the frame is identified by the headers below. It is not
// one of Kinds, so consumers that decode every message of a stream should skip this subject.
const FrameToken = "frame"

// Headers of a frame thumbnail message.
const (
	// HeaderContentType is "image/jpeg".
	HeaderContentType = "Content-Type"
	// HeaderStream is the stream name, HeaderSeq the frame's sequence number (decimal), HeaderCaptured the
	// capture time (RFC 3339 with nanoseconds, UTC), HeaderBootID the boot id of the publishing process.
	HeaderStream   = "Sestream-Stream"
	HeaderSeq      = "Sestream-Seq"
	HeaderCaptured = "Sestream-Captured"
	HeaderBootID   = "Sestream-Boot-Id"
)

// FrameSubject returns the subject of a stream's frame thumbnails: <prefix>.<stream>.frame.
func FrameSubject(prefix, stream string) string { return prefix + "." + stream + "." + FrameToken }

// ParseFrameSubject returns the stream of a frame thumbnail subject published under prefix.
func ParseFrameSubject(prefix, subject string) (string, error) {
	rest, ok := strings.CutPrefix(subject, prefix+".")
	stream, ok2 := strings.CutSuffix(rest, "."+FrameToken)
	if !ok || !ok2 || stream == "" || strings.Contains(stream, ".") {
		return "", fmt.Errorf("subject %q: want %s.<stream>.%s", subject, prefix, FrameToken)
	}
	return stream, nil
}
