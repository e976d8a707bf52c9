package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mecha-gateway/mecha/grpcapi/component"
)

// PubSub runs the pub/sub suite: message ids, delivery of data and
// attributes, consumer groups, ack/nack/drop with backoff, attempts and
// dead letters, delayed messages, max in flight, redelivery of what a
// closed member left unsettled, and at-least-once across a restart.
//
// Every subtest subscribes before it publishes: a group may start at the
// messages published after its first subscription.
func PubSub(t *testing.T, h Harness[component.PubSub]) {
	ps := &pubsubSuite{h: h}
	t.Run("PublishResults", ps.publishResults)
	t.Run("Receive", ps.receive)
	t.Run("TwoGroups", ps.twoGroups)
	t.Run("GroupShares", ps.groupShares)
	t.Run("NackRedelivers", ps.nack)
	t.Run("MaxAttemptsDeadLetter", ps.maxAttempts)
	t.Run("Drop", ps.drop)
	t.Run("Delayed", ps.delayed)
	t.Run("MaxInFlight", ps.maxInFlight)
	t.Run("CloseRedeliversToMember", ps.closeToMember)
	t.Run("CloseRedeliversToNewMember", ps.closeToNewMember)
	t.Run("UnknownMessage", ps.unknown)
	t.Run("CloseEndsMessages", ps.closeEnds)
	t.Run("AtLeastOnceAcrossRestart", ps.restart)
}

type pubsubSuite struct {
	h Harness[component.PubSub]
}

// spec returns a subscription with the service's defaults.
func spec(topic, group string) component.SubscribeSpec {
	return component.SubscribeSpec{
		Topic: topic, Group: group,
		MaxInFlight: 32, MaxAttempts: 10,
		MinBackoff: 100 * time.Millisecond, MaxBackoff: 30 * time.Second,
	}
}

func subscribe(t *testing.T, c component.PubSub, sp component.SubscribeSpec) component.Subscription {
	t.Helper()
	sub, err := c.Subscribe(context.Background(), sp)
	if err != nil {
		t.Fatalf("Subscribe %s/%s: %v", sp.Topic, sp.Group, err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return sub
}

func publish(t *testing.T, c component.PubSub, topic string, msgs ...component.OutMessage) []string {
	t.Helper()
	res := c.Publish(context.Background(), topic, msgs)
	if len(res) != len(msgs) {
		t.Fatalf("Publish of %d messages returned %d results", len(msgs), len(res))
	}
	ids := make([]string, len(res))
	seen := map[string]bool{}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("Publish to %s, message %d: %v", topic, i, r.Err)
		}
		if r.ID == "" {
			t.Fatalf("Publish to %s, message %d: empty id", topic, i)
		}
		if seen[r.ID] {
			t.Fatalf("Publish to %s: id %q returned twice in one call", topic, r.ID)
		}
		seen[r.ID] = true
		ids[i] = r.ID
	}
	return ids
}

func text(s string) component.OutMessage { return component.OutMessage{Data: []byte(s)} }

func recv(t *testing.T, sub component.Subscription, timeout time.Duration, what string) *component.Message {
	t.Helper()
	select {
	case m, ok := <-sub.Messages():
		if !ok {
			t.Fatalf("waiting for %s: subscription ended: %v", what, sub.Err())
		}
		if m == nil {
			t.Fatalf("waiting for %s: nil message", what)
		}
		return m
	case <-time.After(timeout):
		t.Fatalf("no message after %v waiting for %s", timeout, what)
	}
	return nil
}

func expectNone(t *testing.T, sub component.Subscription, window time.Duration, why string) {
	t.Helper()
	select {
	case m, ok := <-sub.Messages():
		if ok {
			t.Fatalf("got message %q (attempt %d, data %q); %s", m.ID, m.Attempt, m.Data, why)
		}
		t.Fatalf("subscription ended (%v); %s", sub.Err(), why)
	case <-time.After(window):
	}
}

func ack(t *testing.T, sub component.Subscription, id string) {
	t.Helper()
	if err := sub.Ack(context.Background(), id); err != nil {
		t.Fatalf("Ack %q: %v", id, err)
	}
}

func nack(t *testing.T, sub component.Subscription, id string, after time.Duration) {
	t.Helper()
	if err := sub.Nack(context.Background(), id, after); err != nil {
		t.Fatalf("Nack %q: %v", id, err)
	}
}

func hasMetadata(got, want map[string]string) bool {
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

func (ps *pubsubSuite) publishResults(t *testing.T) {
	in := open(t, ps.h)
	topic := name(t, "t")
	sub := subscribe(t, in.c, spec(topic, "g"))
	one := publish(t, in.c, topic, text("first"))
	two := publish(t, in.c, topic, text("second"))
	if one[0] == two[0] {
		t.Fatalf("two publishes returned the same id %q", one[0])
	}
	const n = 100
	msgs := make([]component.OutMessage, n)
	for i := range msgs {
		msgs[i] = text(fmt.Sprintf("bulk-%03d", i))
	}
	ids := publish(t, in.c, topic, msgs...)
	want := map[string]string{one[0]: "first", two[0]: "second"}
	for i, id := range ids {
		if _, dup := want[id]; dup {
			t.Fatalf("id %q returned by two publishes", id)
		}
		want[id] = string(msgs[i].Data)
	}
	got := map[string]bool{}
	for len(got) < len(want) {
		m := recv(t, sub, 10*time.Second, fmt.Sprintf("message %d of %d", len(got)+1, len(want)))
		data, ok := want[m.ID]
		if !ok {
			t.Fatalf("received id %q that Publish did not return", m.ID)
		}
		if string(m.Data) != data {
			t.Fatalf("message %q has data %q, was published with %q", m.ID, m.Data, data)
		}
		if got[m.ID] {
			t.Fatalf("message %q delivered twice though acked", m.ID)
		}
		got[m.ID] = true
		ack(t, sub, m.ID)
	}
	expectNone(t, sub, 300*time.Millisecond, "every message was delivered and acked")
}

func (ps *pubsubSuite) receive(t *testing.T) {
	in := open(t, ps.h)
	topic, other := name(t, "t"), name(t, "other")
	sub := subscribe(t, in.c, spec(topic, "g"))
	publish(t, in.c, other, text("for another topic"))
	out := component.OutMessage{
		Data:        []byte{'b', 0, 1, 0xff, 0xfe, '\n', 'x'},
		ContentType: "application/octet-stream",
		Metadata:    map[string]string{"trace-id": "abc123", "k": "v with spaces"},
	}
	before := time.Now()
	id := publish(t, in.c, topic, out)[0]
	after := time.Now()
	m := recv(t, sub, 10*time.Second, "the published message")
	if m.ID != id {
		t.Fatalf("received id %q, Publish returned %q", m.ID, id)
	}
	if m.Topic != topic {
		t.Errorf("Topic %q, want %q", m.Topic, topic)
	}
	if !bytes.Equal(m.Data, out.Data) {
		t.Errorf("Data %q, want %q", m.Data, out.Data)
	}
	if m.ContentType != out.ContentType {
		t.Errorf("ContentType %q, want %q", m.ContentType, out.ContentType)
	}
	if !hasMetadata(m.Metadata, out.Metadata) {
		t.Errorf("Metadata %v, want it to hold %v", m.Metadata, out.Metadata)
	}
	if m.Attempt != 1 {
		t.Errorf("Attempt %d on first delivery, want 1", m.Attempt)
	}
	if m.PublishTime.Before(before.Add(-time.Minute)) || m.PublishTime.After(after.Add(time.Minute)) {
		t.Errorf("PublishTime %v, published between %v and %v", m.PublishTime, before, after)
	}
	ack(t, sub, m.ID)
	// Empty data and no content type or metadata are fine too.
	id = publish(t, in.c, topic, component.OutMessage{})[0]
	m = recv(t, sub, 10*time.Second, "an empty message")
	if m.ID != id || len(m.Data) != 0 {
		t.Errorf("empty message: id %q data %q, want id %q no data", m.ID, m.Data, id)
	}
	ack(t, sub, m.ID)
	expectNone(t, sub, 300*time.Millisecond, "a message of another topic must not be delivered")
}

func (ps *pubsubSuite) twoGroups(t *testing.T) {
	in := open(t, ps.h)
	topic := name(t, "t")
	g1 := subscribe(t, in.c, spec(topic, "g1"))
	g2 := subscribe(t, in.c, spec(topic, "g2"))
	msgs := make([]component.OutMessage, 10)
	for i := range msgs {
		msgs[i] = text(fmt.Sprint(i))
	}
	ids := publish(t, in.c, topic, msgs...)
	for gi, sub := range []component.Subscription{g1, g2} {
		got := map[string]bool{}
		for range ids {
			m := recv(t, sub, 10*time.Second, fmt.Sprintf("messages of group %d", gi+1))
			got[m.ID] = true
			ack(t, sub, m.ID)
		}
		for _, id := range ids {
			if !got[id] {
				t.Errorf("group %d did not receive %q", gi+1, id)
			}
		}
	}
}

func (ps *pubsubSuite) groupShares(t *testing.T) {
	in := open(t, ps.h)
	topic := name(t, "t")
	sp := spec(topic, "shared")
	sp.MaxInFlight = 2
	members := []component.Subscription{subscribe(t, in.c, sp), subscribe(t, in.c, sp)}
	var (
		mu       sync.Mutex
		received = make([]map[string]int, len(members))
		errs     []error
		wg       sync.WaitGroup
	)
	stop := make(chan struct{})
	for i, sub := range members {
		received[i] = map[string]int{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case m, ok := <-sub.Messages():
					if !ok {
						return
					}
					mu.Lock()
					received[i][m.ID]++
					mu.Unlock()
					time.Sleep(5 * time.Millisecond)
					if err := sub.Ack(context.Background(), m.ID); err != nil {
						mu.Lock()
						errs = append(errs, fmt.Errorf("member %d: Ack %q: %w", i, m.ID, err))
						mu.Unlock()
					}
				}
			}
		}()
	}
	const n = 40
	msgs := make([]component.OutMessage, n)
	for i := range msgs {
		msgs[i] = text(fmt.Sprint(i))
	}
	ids := publish(t, in.c, topic, msgs...)
	done := func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, id := range ids {
			c := 0
			for i := range received {
				if received[i][id] > 0 {
					c++
				}
			}
			if c == 0 || (ps.h.NoGroupSharing && c < len(members)) {
				return false
			}
		}
		return true
	}
	eventually(t, 20*time.Second, done, "every message delivered to the group")
	time.Sleep(300 * time.Millisecond) // let duplicates show
	close(stop)
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	for i := range received {
		if len(received[i]) == 0 {
			t.Errorf("member %d received none of %d messages; members of a group share them", i, n)
		}
		if ps.h.NoGroupSharing && len(received[i]) != n {
			t.Errorf("member %d received %d of %d messages; without group sharing every member gets every message", i, len(received[i]), n)
		}
	}
	for _, id := range ids {
		total := 0
		for i := range received {
			total += received[i][id]
		}
		if want := 1; !ps.h.NoGroupSharing && total != want {
			t.Errorf("message %q delivered %d times to the group; acked promptly, it goes to exactly one member once", id, total)
		}
	}
	t.Logf("member 0 got %d, member 1 got %d of %d", len(received[0]), len(received[1]), n)
}

func (ps *pubsubSuite) nack(t *testing.T) {
	in := open(t, ps.h)
	topic := name(t, "t")
	sp := spec(topic, "g")
	sp.MinBackoff, sp.MaxBackoff = 200*time.Millisecond, 2*time.Second
	sub := subscribe(t, in.c, sp)
	id := publish(t, in.c, topic, component.OutMessage{Data: []byte("retry me"), ContentType: "text/plain", Metadata: map[string]string{"a": "b"}})[0]
	m := recv(t, sub, 10*time.Second, "first delivery")
	if m.ID != id || m.Attempt != 1 {
		t.Fatalf("first delivery: id %q attempt %d, want %q attempt 1", m.ID, m.Attempt, id)
	}
	steps := []struct {
		retryAfter time.Duration
		wait       time.Duration
	}{
		{0, sp.Backoff(1)},
		{0, sp.Backoff(2)},
		{150 * time.Millisecond, 150 * time.Millisecond},
	}
	for i, st := range steps {
		start := time.Now()
		nack(t, sub, m.ID, st.retryAfter)
		m = recv(t, sub, 10*time.Second+st.wait, fmt.Sprintf("redelivery %d", i+1))
		waited := time.Since(start)
		if m.ID != id || m.Attempt != i+2 {
			t.Fatalf("redelivery %d: id %q attempt %d, want %q attempt %d", i+1, m.ID, m.Attempt, id, i+2)
		}
		if string(m.Data) != "retry me" || m.ContentType != "text/plain" || m.Metadata["a"] != "b" {
			t.Fatalf("redelivery %d changed the message: %q %q %v", i+1, m.Data, m.ContentType, m.Metadata)
		}
		if waited < st.wait {
			t.Fatalf("redelivery %d came %v after the nack, before the backoff of %v", i+1, waited, st.wait)
		}
	}
	ack(t, sub, m.ID)
	expectNone(t, sub, 500*time.Millisecond, "the message was acked")
}

func (ps *pubsubSuite) maxAttempts(t *testing.T) {
	in := open(t, ps.h)
	topic, dlt := name(t, "t"), name(t, "dlt")
	dead := subscribe(t, in.c, spec(dlt, "dl-readers"))
	sp := spec(topic, "g")
	sp.MaxAttempts, sp.DeadLetterTopic = 3, dlt
	sp.MinBackoff, sp.MaxBackoff = 20*time.Millisecond, 100*time.Millisecond
	sub := subscribe(t, in.c, sp)
	out := component.OutMessage{Data: []byte("poison"), ContentType: "text/plain", Metadata: map[string]string{"x": "1"}}
	id := publish(t, in.c, topic, out)[0]
	for a := 1; a <= sp.MaxAttempts; a++ {
		m := recv(t, sub, 10*time.Second, fmt.Sprintf("delivery %d", a))
		if m.ID != id || m.Attempt != a {
			t.Fatalf("delivery %d: id %q attempt %d", a, m.ID, m.Attempt)
		}
		nack(t, sub, m.ID, 0)
	}
	d := recv(t, dead, 10*time.Second, "the message on the dead letter topic")
	if string(d.Data) != "poison" || d.ContentType != "text/plain" || !hasMetadata(d.Metadata, out.Metadata) {
		t.Errorf("dead letter: data %q content type %q metadata %v; want the original's", d.Data, d.ContentType, d.Metadata)
	}
	if d.Topic != dlt {
		t.Errorf("dead letter Topic %q, want %q", d.Topic, dlt)
	}
	ack(t, dead, d.ID)
	expectNone(t, sub, 500*time.Millisecond, "a message past MaxAttempts is not delivered again")

	// Without a dead letter topic it is dropped.
	topic2 := name(t, "t")
	sp2 := spec(topic2, "g2")
	sp2.MaxAttempts = 2
	sp2.MinBackoff, sp2.MaxBackoff = 20*time.Millisecond, 100*time.Millisecond
	sub2 := subscribe(t, in.c, sp2)
	id = publish(t, in.c, topic2, text("poison 2"))[0]
	for a := 1; a <= 2; a++ {
		m := recv(t, sub2, 10*time.Second, fmt.Sprintf("delivery %d (no dead letter topic)", a))
		if m.ID != id || m.Attempt != a {
			t.Fatalf("delivery %d: id %q attempt %d", a, m.ID, m.Attempt)
		}
		nack(t, sub2, m.ID, 0)
	}
	expectNone(t, sub2, 500*time.Millisecond, "a message past MaxAttempts is not delivered again")
	expectNone(t, dead, 100*time.Millisecond, "only one message was dead-lettered to this topic")
}

func (ps *pubsubSuite) drop(t *testing.T) {
	in := open(t, ps.h)
	topic, dlt := name(t, "t"), name(t, "dlt")
	dead := subscribe(t, in.c, spec(dlt, "dl-readers"))
	sp := spec(topic, "with-dlt")
	sp.DeadLetterTopic = dlt
	sp.MinBackoff = 20 * time.Millisecond
	withDLT := subscribe(t, in.c, sp)
	sp2 := spec(topic, "without-dlt")
	sp2.MinBackoff = 20 * time.Millisecond
	without := subscribe(t, in.c, sp2)
	out := component.OutMessage{Data: []byte("drop me"), ContentType: "text/plain", Metadata: map[string]string{"why": "bad"}}
	id := publish(t, in.c, topic, out)[0]
	for _, sub := range []component.Subscription{withDLT, without} {
		m := recv(t, sub, 10*time.Second, "the message")
		if m.ID != id {
			t.Fatalf("got %q, want %q", m.ID, id)
		}
		if err := sub.Drop(context.Background(), m.ID); err != nil {
			t.Fatalf("Drop: %v", err)
		}
	}
	d := recv(t, dead, 10*time.Second, "the dropped message on the dead letter topic")
	if string(d.Data) != "drop me" || d.ContentType != "text/plain" || !hasMetadata(d.Metadata, out.Metadata) {
		t.Errorf("dead letter: data %q content type %q metadata %v; want the original's", d.Data, d.ContentType, d.Metadata)
	}
	ack(t, dead, d.ID)
	expectNone(t, withDLT, 500*time.Millisecond, "a dropped message is never delivered again")
	expectNone(t, without, 10*time.Millisecond, "a dropped message is never delivered again")
	expectNone(t, dead, 10*time.Millisecond, "only the group with a dead letter topic dead-letters")
}

func (ps *pubsubSuite) delayed(t *testing.T) {
	in := open(t, ps.h)
	topic := name(t, "t")
	sub := subscribe(t, in.c, spec(topic, "g"))
	at := time.Now().Add(1500 * time.Millisecond)
	delayed := publish(t, in.c, topic, component.OutMessage{Data: []byte("later"), DeliverAt: at})[0]
	now := publish(t, in.c, topic, text("now"))[0]
	m := recv(t, sub, 10*time.Second, "the message published without delay")
	if m.ID != now {
		t.Fatalf("first delivery is %q (%q), want the undelayed %q: a delayed message must not hold back later ones", m.ID, m.Data, now)
	}
	ack(t, sub, m.ID)
	m = recv(t, sub, 15*time.Second, "the delayed message")
	got := time.Now()
	if m.ID != delayed || string(m.Data) != "later" {
		t.Fatalf("got %q (%q), want the delayed %q", m.ID, m.Data, delayed)
	}
	if early := at.Sub(got); early > 10*time.Millisecond {
		t.Fatalf("delayed message delivered %v before its time", early)
	}
	ack(t, sub, m.ID)
	// A DeliverAt in the past means at once.
	past := publish(t, in.c, topic, component.OutMessage{Data: []byte("past"), DeliverAt: time.Now().Add(-time.Hour)})[0]
	m = recv(t, sub, 10*time.Second, "a message with DeliverAt in the past")
	if m.ID != past {
		t.Fatalf("got %q, want %q", m.ID, past)
	}
	ack(t, sub, m.ID)
}

func (ps *pubsubSuite) maxInFlight(t *testing.T) {
	in := open(t, ps.h)
	topic := name(t, "t")
	sp := spec(topic, "g")
	sp.MaxInFlight = 3
	sub := subscribe(t, in.c, sp)
	const n = 8
	msgs := make([]component.OutMessage, n)
	for i := range msgs {
		msgs[i] = text(fmt.Sprint(i))
	}
	publish(t, in.c, topic, msgs...)
	var unsettled []string
	seen := map[string]bool{}
	for range sp.MaxInFlight {
		m := recv(t, sub, 10*time.Second, "messages up to MaxInFlight")
		unsettled = append(unsettled, m.ID)
		seen[m.ID] = true
	}
	expectNone(t, sub, 400*time.Millisecond, fmt.Sprintf("%d messages are unsettled, MaxInFlight is %d", len(unsettled), sp.MaxInFlight))
	for len(seen) < n {
		ack(t, sub, unsettled[0])
		unsettled = unsettled[1:]
		m := recv(t, sub, 10*time.Second, "the next message once one is acked")
		if seen[m.ID] {
			t.Fatalf("message %q delivered again while unsettled", m.ID)
		}
		seen[m.ID] = true
		unsettled = append(unsettled, m.ID)
		expectNone(t, sub, 100*time.Millisecond, fmt.Sprintf("%d messages are unsettled, MaxInFlight is %d", len(unsettled), sp.MaxInFlight))
	}
	// A nack settles too (the message comes back later, within the bound).
	nack(t, sub, unsettled[0], 50*time.Millisecond)
	m := recv(t, sub, 10*time.Second, "the nacked message")
	if m.ID != unsettled[0] || m.Attempt != 2 {
		t.Fatalf("after a nack got %q attempt %d, want %q attempt 2", m.ID, m.Attempt, unsettled[0])
	}
	for _, id := range unsettled {
		ack(t, sub, id)
	}
}

func (ps *pubsubSuite) closeToMember(t *testing.T) {
	in := open(t, ps.h)
	topic := name(t, "t")
	sp := spec(topic, "g")
	a := subscribe(t, in.c, sp)
	ids := publish(t, in.c, topic, text("1"), text("2"), text("3"))
	for range ids {
		recv(t, a, 10*time.Second, "messages for the first member")
	}
	b := subscribe(t, in.c, sp)
	expectNone(t, b, 200*time.Millisecond, "every message is with the first member")
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	got := map[string]bool{}
	for range ids {
		m := recv(t, b, 10*time.Second, "messages the closed member left unsettled")
		if m.Attempt < 2 {
			t.Errorf("redelivered message %q has Attempt %d, want 2 (second delivery)", m.ID, m.Attempt)
		}
		got[m.ID] = true
		ack(t, b, m.ID)
	}
	for _, id := range ids {
		if !got[id] {
			t.Errorf("message %q was not redelivered", id)
		}
	}
}

func (ps *pubsubSuite) closeToNewMember(t *testing.T) {
	in := open(t, ps.h)
	topic := name(t, "t")
	sp := spec(topic, "g")
	sp.MaxInFlight = 2
	a := subscribe(t, in.c, sp)
	ids := publish(t, in.c, topic, text("1"), text("2"), text("3"), text("4"))
	delivered := map[string]bool{}
	for range sp.MaxInFlight {
		delivered[recv(t, a, 10*time.Second, "messages for the first member").ID] = true
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	b := subscribe(t, in.c, sp)
	got := map[string]bool{}
	for range ids {
		m := recv(t, b, 10*time.Second, "every message, for the new member")
		if delivered[m.ID] && m.Attempt < 2 {
			t.Errorf("message %q delivered before has Attempt %d, want 2", m.ID, m.Attempt)
		}
		got[m.ID] = true
		ack(t, b, m.ID)
	}
	for _, id := range ids {
		if !got[id] {
			t.Errorf("message %q not delivered to the new member", id)
		}
	}
}

func (ps *pubsubSuite) unknown(t *testing.T) {
	in := open(t, ps.h)
	topic := name(t, "t")
	sub := subscribe(t, in.c, spec(topic, "g"))
	ctx := context.Background()
	bogus := "no-such-message-" + name(t, "id")
	if err := sub.Ack(ctx, bogus); !errors.Is(err, component.ErrUnknownMessage) {
		t.Errorf("Ack of an unknown id: %v, want ErrUnknownMessage", err)
	}
	if err := sub.Nack(ctx, bogus, 0); !errors.Is(err, component.ErrUnknownMessage) {
		t.Errorf("Nack of an unknown id: %v, want ErrUnknownMessage", err)
	}
	if err := sub.Drop(ctx, bogus); !errors.Is(err, component.ErrUnknownMessage) {
		t.Errorf("Drop of an unknown id: %v, want ErrUnknownMessage", err)
	}
	id := publish(t, in.c, topic, text("x"))[0]
	m := recv(t, sub, 10*time.Second, "the message")
	if m.ID != id {
		t.Fatalf("got %q want %q", m.ID, id)
	}
	ack(t, sub, id)
	if err := sub.Ack(ctx, id); !errors.Is(err, component.ErrUnknownMessage) {
		t.Errorf("second Ack: %v, want ErrUnknownMessage (already settled)", err)
	}
	if err := sub.Nack(ctx, id, 0); !errors.Is(err, component.ErrUnknownMessage) {
		t.Errorf("Nack after Ack: %v, want ErrUnknownMessage", err)
	}
	expectNone(t, sub, 300*time.Millisecond, "an acked message is not delivered again")
}

func (ps *pubsubSuite) closeEnds(t *testing.T) {
	in := open(t, ps.h)
	topic := name(t, "t")
	sub := subscribe(t, in.c, spec(topic, "g"))
	if err := sub.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-sub.Messages():
			if ok {
				continue
			}
			if err := sub.Err(); err != nil {
				t.Errorf("Err after Close = %v, want nil", err)
			}
			_ = sub.Close() // a second Close must not panic or hang
			return
		case <-deadline:
			t.Fatal("Messages not closed 10s after Close")
		}
	}
}

func (ps *pubsubSuite) restart(t *testing.T) {
	if !ps.h.SurvivesRestart {
		t.Skip("the harness says messages do not survive a restart of the component")
	}
	in := open(t, ps.h)
	topic := name(t, "t")
	sp := spec(topic, "g")
	sp.MaxInFlight = 10
	sub := subscribe(t, in.c, sp)
	const n = 20
	msgs := make([]component.OutMessage, n)
	for i := range msgs {
		msgs[i] = component.OutMessage{Data: fmt.Appendf(nil, "m%02d", i), ContentType: "text/plain", Metadata: map[string]string{"i": fmt.Sprint(i)}}
	}
	ids := publish(t, in.c, topic, msgs...)
	data := map[string]string{}
	for i, id := range ids {
		data[id] = string(msgs[i].Data)
	}
	acked := map[string]bool{}
	for i := range 10 {
		m := recv(t, sub, 10*time.Second, "messages before the restart")
		switch {
		case i < 5:
			ack(t, sub, m.ID)
			acked[m.ID] = true
		case i < 7:
			nack(t, sub, m.ID, 200*time.Millisecond)
		}
	}
	// Close the component with the subscription open, 2 messages nacked
	// and 3 unsettled, as a crash would leave them.
	in.close()

	in = open(t, ps.h)
	sub = subscribe(t, in.c, sp)
	got := map[string]int{}
	for missing := n - len(acked); missing > 0; {
		m := recv(t, sub, 15*time.Second, fmt.Sprintf("unacked messages after the restart (%d missing)", missing))
		if data[m.ID] != string(m.Data) {
			t.Fatalf("after restart message %q has data %q, want %q (ids are stable)", m.ID, m.Data, data[m.ID])
		}
		if acked[m.ID] && !ps.h.RedeliversAckedAfterRestart {
			t.Fatalf("message %q was acked before the restart and delivered again after it", m.ID)
		}
		if !acked[m.ID] && got[m.ID] == 0 {
			missing--
		}
		got[m.ID]++
		ack(t, sub, m.ID)
	}
	if !ps.h.RedeliversAckedAfterRestart {
		expectNone(t, sub, 300*time.Millisecond, "every unacked message was delivered")
	}
	// The component works as before.
	id := publish(t, in.c, topic, text("after"))[0]
	for {
		m := recv(t, sub, 10*time.Second, "a message published after the restart")
		ack(t, sub, m.ID)
		if m.ID == id {
			break
		}
		if !acked[m.ID] || !ps.h.RedeliversAckedAfterRestart {
			t.Fatalf("unexpected message %q (%q) after the restart", m.ID, m.Data)
		}
	}
}
