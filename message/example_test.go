package message_test

import (
	"fmt"

	"github.com/sestream/sestream/message"
)

func ExampleValidateToken() {
	for _, name := range []string{"cam1", "front door", "lobby.east"} {
		fmt.Println(name, "->", message.ValidateToken(name))
	}
	// Output:
	// cam1 -> <nil>
	// front door -> name "front door" contains whitespace at byte 5: not a valid NATS subject token
	// lobby.east -> name "lobby.east" contains a dot at byte 5: not a valid NATS subject token
}

func ExampleSubject() {
	fmt.Println(message.Subject("sestream", "cam1", message.KindAttention))
	fmt.Println(message.Subject("sestream", "", message.KindStatus))
	fmt.Println(message.MsgID("cam1", "4f1c2a9e0b7d3e55", 1042, message.KindResult))
	// Output:
	// sestream.cam1.attention
	// sestream.status
	// cam1:4f1c2a9e0b7d3e55:1042:result
}

func ExampleLine() {
	kind, v, err := message.Decode([]byte(`{"schema":"sestream.attention/v1","stream":"cam1","seq":7,
		"blocks":[{"name":"b0","mean":0.52,"std":0.11},{"name":"b1","mean":0.47,"std":0.09},{"name":"b2","mean":0.5,"std":0.14}],
		"drift":{"phase":"detecting","score":0.38,"hits":2,"rise_count":12,"on":false}}`))
	if err != nil {
		panic(err)
	}
	fmt.Println(kind)
	fmt.Println(message.Line(v))
	// Output:
	// attention
	// cam1 #7 drift 0.38 hits 2/12 | gates mean±std 0.52±0.11 0.47±0.09 0.50±0.14
}
