package contribpubsub

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/mecha-gateway/mecha/configs"
	"github.com/mecha-gateway/mecha/grpcapi/component"
)

func TestRegisteredTypes(t *testing.T) {
	types := component.Types(component.CapPubSub)
	for _, want := range []string{"redis", "rabbitmq", "jetstream", "mqtt3"} {
		if !slices.Contains(types, want) {
			t.Errorf("pubsub type %q not registered (have %v)", want, types)
		}
	}
	// No Kafka broker runs here, so the type is not offered untested.
	if slices.Contains(types, "kafka") {
		t.Error("kafka is registered")
	}
}

// TestParkedMessages makes every wait longer than max_hold, so that Mecha
// must hand delayed and backing-off messages back to the broker (a copy
// for the waiting group only) instead of holding them: each group still
// gets each message once, not before its time, with its attempt number.
func TestParkedMessages(t *testing.T) {
	for _, bc := range cases() {
		t.Run(bc.typ, func(t *testing.T) {
			t.Parallel()
			o := newOpener(t, bc, func(c any) {
				switch c := c.(type) {
				case *Config:
					c.MaxHold = configs.Duration(300 * time.Millisecond)
				case *JetStreamConfig:
					c.MaxHold = configs.Duration(300 * time.Millisecond)
				}
			})
			a := o.open(t)
			topic := unique(t, "park")
			g1 := subscribeT(t, a, component.SubscribeSpec{Topic: topic, Group: "g1"})
			g2 := subscribeT(t, a, component.SubscribeSpec{Topic: topic, Group: "g2"})
			due := time.Now().Add(1200 * time.Millisecond)
			id := publishT(t, a, topic, component.OutMessage{Data: []byte("later"), ContentType: "text/plain", Metadata: map[string]string{"k": "v"}, DeliverAt: due})[0]
			for i, sub := range []component.Subscription{g1, g2} {
				m := receive(t, sub, 10*time.Second)
				if time.Now().Before(due) {
					t.Fatalf("group %d got the message %v before its time", i+1, time.Until(due))
				}
				if m.ID != id || string(m.Data) != "later" || m.ContentType != "text/plain" || m.Metadata["k"] != "v" || m.Attempt != 1 {
					t.Fatalf("group %d got id %q data %q ct %q md %v attempt %d", i+1, m.ID, m.Data, m.ContentType, m.Metadata, m.Attempt)
				}
			}
			// A nack whose wait exceeds max_hold parks too.
			start := time.Now()
			if err := g1.Nack(context.Background(), id, time.Second); err != nil {
				t.Fatal(err)
			}
			m := receive(t, g1, 10*time.Second)
			if waited := time.Since(start); waited < time.Second {
				t.Fatalf("redelivered %v after the nack, before retryAfter", waited)
			}
			if m.ID != id || m.Attempt != 2 || string(m.Data) != "later" {
				t.Fatalf("redelivery: id %q attempt %d data %q", m.ID, m.Attempt, m.Data)
			}
			for _, sub := range []component.Subscription{g1, g2} {
				if err := sub.Ack(context.Background(), id); err != nil {
					t.Fatal(err)
				}
			}
			silent(t, g1, 500*time.Millisecond, "group 1 acked its only message")
			silent(t, g2, 10*time.Millisecond, "group 2 acked its only message; parked copies of group 1 are not for it")
		})
	}
}

// TestRedisReclaimWhileHeld holds a message longer than Redis streams'
// processingTimeout: contrib reclaims it and calls the handler again, and
// Mecha, which still holds it, must not deliver it twice.
func TestRedisReclaimWhileHeld(t *testing.T) {
	bc := brokerCase{"redis", map[string]string{"redisHost": redisAddr, "processingTimeout": "300ms", "redeliverInterval": "100ms"}}
	o := newOpener(t, bc, func(c any) { c.(*Config).MaxHold = 0 })
	a := o.open(t)
	topic := unique(t, "reclaim")
	sub := subscribeT(t, a, component.SubscribeSpec{Topic: topic, Group: "g"})
	id := publishT(t, a, topic, component.OutMessage{Data: []byte("slow")})[0]
	m := receive(t, sub, 10*time.Second)
	if m.ID != id {
		t.Fatalf("got %q want %q", m.ID, id)
	}
	silent(t, sub, 1500*time.Millisecond, "the message is still held by this subscriber")
	if err := sub.Ack(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	silent(t, sub, 800*time.Millisecond, "the message was acked")
}

func TestTopicNames(t *testing.T) {
	for _, tc := range []struct {
		typ   string
		topic string
	}{
		{"jetstream", "orders.*"},
		{"jetstream", "orders.>"},
		{"jetstream", "orders..x"},
		{"jetstream", "has space"},
		{"mqtt3", "orders/#"},
		{"mqtt3", "orders/+/x"},
		{"mqtt3", "$SYS/x"},
		{"rabbitmq", "amq.direct"},
	} {
		var bc brokerCase
		for _, c := range cases() {
			if c.typ == tc.typ {
				bc = c
			}
		}
		o := newOpener(t, bc, nil)
		a := o.build(t) // not started: names are checked before the broker is used
		res := a.Publish(context.Background(), tc.topic, []component.OutMessage{{Data: []byte("x")}})
		if len(res) != 1 || !errors.Is(res[0].Err, component.ErrNotSupported) {
			t.Errorf("%s: Publish to %q: %+v, want ErrNotSupported", tc.typ, tc.topic, res)
		}
		if _, err := a.Subscribe(context.Background(), component.SubscribeSpec{Topic: tc.topic, Group: "g", MaxInFlight: 1}); !errors.Is(err, component.ErrNotSupported) {
			t.Errorf("%s: Subscribe to %q: %v, want ErrNotSupported", tc.typ, tc.topic, err)
		}
		a.Close()
	}
}

// TestMembersOfTwoMechas runs two adapters (two Mecha processes) in one
// group: the broker shares the group's messages between them, each message
// goes to one of them once.
func TestMembersOfTwoMechas(t *testing.T) {
	for _, bc := range cases() {
		t.Run(bc.typ, func(t *testing.T) {
			t.Parallel()
			topic := unique(t, "two")
			o1 := newOpener(t, bc, nil)
			o2 := newOpener(t, bc, nil)
			a1, a2 := o1.open(t), o2.open(t)
			s1 := subscribeT(t, a1, component.SubscribeSpec{Topic: topic, Group: "g", MaxInFlight: 4})
			s2 := subscribeT(t, a2, component.SubscribeSpec{Topic: topic, Group: "g", MaxInFlight: 4})
			const n = 40
			msgs := make([]component.OutMessage, n)
			for i := range msgs {
				msgs[i] = component.OutMessage{Data: []byte{byte(i)}}
			}
			ids := publishT(t, a1, topic, msgs...)
			got := map[string]int{}
			per := [2]int{}
			deadline := time.After(20 * time.Second)
			for len(got) < n {
				select {
				case m := <-s1.Messages():
					got[m.ID]++
					per[0]++
					_ = s1.Ack(context.Background(), m.ID)
				case m := <-s2.Messages():
					got[m.ID]++
					per[1]++
					_ = s2.Ack(context.Background(), m.ID)
				case <-deadline:
					t.Fatalf("got %d of %d messages", len(got), n)
				}
			}
			silent(t, s1, 300*time.Millisecond, "every message was delivered once")
			silent(t, s2, 10*time.Millisecond, "every message was delivered once")
			for _, id := range ids {
				if got[id] != 1 {
					t.Errorf("message %q delivered %d times", id, got[id])
				}
			}
			if per[0] == 0 || per[1] == 0 {
				t.Errorf("one Mecha got every message (%v); the broker shares a group between them", per)
			}
		})
	}
}

// TestDeadLetterCopy checks what a dead letter topic's group receives: the
// original id, data, attributes and publish time, as its first attempt.
func TestDeadLetterCopy(t *testing.T) {
	for _, bc := range cases() {
		t.Run(bc.typ, func(t *testing.T) {
			t.Parallel()
			a := newOpener(t, bc, nil).open(t)
			topic, dlt := unique(t, "src"), unique(t, "dlt")
			dead := subscribeT(t, a, component.SubscribeSpec{Topic: dlt, Group: "readers"})
			sub := subscribeT(t, a, component.SubscribeSpec{Topic: topic, Group: "g", MaxAttempts: 2, DeadLetterTopic: dlt})
			id := publishT(t, a, topic, component.OutMessage{Data: []byte("poison"), ContentType: "text/plain", Metadata: map[string]string{"k": "v"}})[0]
			var first *component.Message
			for attempt := 1; attempt <= 2; attempt++ {
				m := receive(t, sub, 10*time.Second)
				if m.ID != id || m.Attempt != attempt {
					t.Fatalf("delivery %d: id %q attempt %d", attempt, m.ID, m.Attempt)
				}
				if first == nil {
					first = m
				}
				if err := sub.Nack(context.Background(), id, 0); err != nil {
					t.Fatal(err)
				}
			}
			d := receive(t, dead, 10*time.Second)
			if d.ID != id || d.Attempt != 1 || d.Topic != dlt || string(d.Data) != "poison" || d.ContentType != "text/plain" || d.Metadata["k"] != "v" || !d.PublishTime.Equal(first.PublishTime) {
				t.Fatalf("dead letter: %+v; want id %q attempt 1 and the original's attributes (publish time %v)", d, id, first.PublishTime)
			}
			if err := dead.Ack(context.Background(), d.ID); err != nil {
				t.Fatal(err)
			}
			if err := sub.Ack(context.Background(), id); !errors.Is(err, component.ErrUnknownMessage) {
				t.Fatalf("Ack of a dead-lettered message: %v, want ErrUnknownMessage", err)
			}
		})
	}
}
