package message

import (
	"encoding/json"
	"errors"
	"fmt"
)

// ErrUnknownSchema is returned (wrapped) by Decode for a message whose schema field is missing or unknown.
var ErrUnknownSchema = errors.New("unknown message schema")

// Decode parses one JSON message and returns its kind and a pointer to the decoded value:
// *Result, *Attention, *Event or *Status. Fields it does not know are ignored, so consumers keep
// working when a v1 message gains fields. The stream name of per-stream kinds must be a valid token.
func Decode(data []byte) (Kind, any, error) {
	var head struct {
		Schema string `json:"schema"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return 0, nil, fmt.Errorf("decode message: %w", err)
	}
	var (
		kind   Kind
		v      any
		stream *string
	)
	switch head.Schema {
	case SchemaResult:
		r := new(Result)
		kind, v, stream = KindResult, r, &r.Stream
	case SchemaAttention:
		a := new(Attention)
		kind, v, stream = KindAttention, a, &a.Stream
	case SchemaEvent:
		e := new(Event)
		kind, v, stream = KindEvent, e, &e.Stream
	case SchemaStatus:
		kind, v = KindStatus, new(Status)
	default:
		return 0, nil, fmt.Errorf("decode message: schema %q: %w", head.Schema, ErrUnknownSchema)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return 0, nil, fmt.Errorf("decode %s message: %w", kind, err)
	}
	if stream != nil {
		if err := ValidateToken(*stream); err != nil {
			return 0, nil, fmt.Errorf("decode %s message: stream: %w", kind, err)
		}
	}
	if e, ok := v.(*Event); ok && !e.Kind.Valid() {
		return 0, nil, fmt.Errorf("decode event message: unknown event kind %q", e.Kind)
	}
	return kind, v, nil
}
