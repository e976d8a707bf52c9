package contribpubsub

import (
	"bytes"
	"context"
	"strconv"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"
	amqp "github.com/rabbitmq/amqp091-go"
	goredis "github.com/redis/go-redis/v9"

	"github.com/mecha-gateway/mecha/grpcapi/component"
)

// Messages of producers that do not use Mecha are delivered as they are,
// with attempt 1 and the id the broker gives them, or a new one.

func TestRawRedisProducer(t *testing.T) {
	o := newOpener(t, cases()[0], nil)
	a := o.open(t)
	topic := unique(t, "raw")
	sub := subscribeT(t, a, component.SubscribeSpec{Topic: topic, Group: "g"})
	c := goredis.NewClient(&goredis.Options{Addr: redisAddr})
	defer c.Close()
	ctx := context.Background()
	if err := c.XAdd(ctx, &goredis.XAddArgs{Stream: topic, Values: map[string]any{"data": "from go-redis"}}).Err(); err != nil {
		t.Fatal(err)
	}
	m := receive(t, sub, 10*time.Second)
	if string(m.Data) != "from go-redis" || m.Attempt != 1 || m.ID == "" || m.Topic != topic {
		t.Fatalf("got id %q topic %q data %q attempt %d", m.ID, m.Topic, m.Data, m.Attempt)
	}
	if err := sub.Ack(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the raw message acknowledged in the stream", func() bool {
		p, err := c.XPending(ctx, topic, "g").Result()
		return err == nil && p.Count == 0
	})
}

func TestRawRabbitProducerAndConsumer(t *testing.T) {
	o := newOpener(t, cases()[1], nil)
	a := o.open(t)
	topic := unique(t, "raw")
	sub := subscribeT(t, a, component.SubscribeSpec{Topic: topic, Group: "g"})
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	// A plain AMQP consumer reading the topic through a queue of its own.
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, "", topic, false, nil); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}

	// Raw AMQP in, Mecha out.
	err = ch.PublishWithContext(context.Background(), topic, "", false, false, amqp.Publishing{
		MessageId: "amqp-id-1", ContentType: "text/plain", Body: []byte("from amqp"),
		Headers: amqp.Table{"h": "v"},
	})
	if err != nil {
		t.Fatal(err)
	}
	m := receive(t, sub, 10*time.Second)
	if m.ID != "amqp-id-1" || string(m.Data) != "from amqp" || m.ContentType != "text/plain" || m.Attempt != 1 || m.Metadata["metadata.h"] != "v" {
		t.Fatalf("got id %q data %q content type %q attempt %d metadata %v", m.ID, m.Data, m.ContentType, m.Attempt, m.Metadata)
	}
	if err := sub.Ack(context.Background(), m.ID); err != nil {
		t.Fatal(err)
	}

	// Mecha in, raw AMQP out: the AMQP message id is the Mecha id and the
	// body is the envelope around the data.
	id := publishT(t, a, topic, component.OutMessage{Data: []byte("from mecha")})[0]
	for {
		select {
		case d := <-deliveries:
			if d.MessageId != id {
				continue // the raw message above
			}
			if !bytes.HasPrefix(d.Body, []byte(envelopeMagic)) || !bytes.HasSuffix(d.Body, []byte("\nfrom mecha")) {
				t.Fatalf("body %q is not an envelope around the data", d.Body)
			}
			if d.DeliveryMode != amqp.Persistent {
				t.Errorf("delivery mode %d, want persistent", d.DeliveryMode)
			}
			return
		case <-time.After(10 * time.Second):
			t.Fatal("the AMQP consumer did not get Mecha's message")
		}
	}
}

func TestRawNATSProducer(t *testing.T) {
	o := newOpener(t, cases()[2], nil)
	a := o.open(t)
	topic := unique(t, "raw")
	sub := subscribeT(t, a, component.SubscribeSpec{Topic: topic, Group: "g"})
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := nc.JetStream()
	ack, err := js.Publish(topic, []byte("from nats"))
	if err != nil {
		t.Fatal(err)
	}
	m := receive(t, sub, 10*time.Second)
	want := ack.Stream + "-" + strconv.FormatUint(ack.Sequence, 10)
	if m.ID != want || string(m.Data) != "from nats" || m.Attempt != 1 {
		t.Fatalf("got id %q data %q attempt %d, want id %q", m.ID, m.Data, m.Attempt, want)
	}
	if err := sub.Ack(context.Background(), m.ID); err != nil {
		t.Fatal(err)
	}
	silent(t, sub, 300*time.Millisecond, "the raw message was acked")
}

func TestRawMQTTProducer(t *testing.T) {
	o := newOpener(t, cases()[3], nil)
	a := o.open(t)
	topic := unique(t, "raw")
	sub := subscribeT(t, a, component.SubscribeSpec{Topic: topic, Group: "g"})
	c := paho.NewClient(paho.NewClientOptions().AddBroker(mqttURL).SetClientID("raw-" + randHex(4)))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(0)
	if tok := c.Publish(topic, 1, false, "from paho"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	m := receive(t, sub, 10*time.Second)
	if string(m.Data) != "from paho" || m.Attempt != 1 || m.ID == "" || m.Metadata["retained"] != "false" {
		t.Fatalf("got id %q data %q attempt %d metadata %v", m.ID, m.Data, m.Attempt, m.Metadata)
	}
	if err := sub.Ack(context.Background(), m.ID); err != nil {
		t.Fatal(err)
	}
	silent(t, sub, 300*time.Millisecond, "the raw message was acked")
}
