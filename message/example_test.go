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
		"blocks":[{"name":"b0","entropy":0.12},{"name":"b1","entropy":0.55},{"name":"b2","entropy":0.97}]}`))
	if err != nil {
		panic(err)
	}
	fmt.Println(kind)
	fmt.Println(message.Line(v))
	// Output:
	// attention
	// cam1 #7 entropy ▂▅█ 0.12..0.97 (3 blocks)
}
