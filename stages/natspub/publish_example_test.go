package natspub_test

import (
	"context"
	"log"
	"time"

	"github.com/sestream/sestream/message"
	"github.com/sestream/sestream/stages/natspub"
)

// A publisher with its own embedded NATS server and JetStream: results are stored once each,
// even across reconnects.
func ExampleNew() {
	ctx := context.Background()
	pub, err := natspub.New(ctx, natspub.Options{
		Embedded:  natspub.EmbeddedOptions{Listen: "127.0.0.1:4222", StoreDir: "/var/lib/sestream/jetstream"},
		JetStream: natspub.JetStreamOptions{Enabled: true, Create: true},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := pub.Close(ctx); err != nil {
			log.Print(err)
		}
	}()
	err = pub.PublishResult(ctx, &message.Result{
		Stream: "cam1", Seq: 1, Captured: time.Now(), Width: 1280, Height: 720,
		Batch: message.Batch{ID: 1, Size: 1}, Engine: "onnxruntime",
		Top: []message.Class{{Index: 7, Label: "sneaker", Score: 0.91}},
	})
	if err != nil {
		log.Fatal(err)
	}
}
