package contribpubsub

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"
	amqp "github.com/rabbitmq/amqp091-go"
	goredis "github.com/redis/go-redis/v9"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/grpcapi/component"
)

// The machine's brokers.
const (
	redisAddr = "127.0.0.1:6379"
	amqpURL   = "amqp://guest:guest@127.0.0.1:5672/"
	natsURL   = "nats://127.0.0.1:4222"
	mqttURL   = "tcp://127.0.0.1:1883"
)

// brokerCase is one type under test with the metadata its tests use.
type brokerCase struct {
	typ string
	md  map[string]string
}

// cases returns the four types. Redis gets a short processingTimeout so
// that messages a closed Mecha left pending are reclaimed within the
// suites' waits (the default, 60s, is longer than any test waits).
func cases() []brokerCase {
	return []brokerCase{
		{"redis", map[string]string{"redisHost": redisAddr, "processingTimeout": "2s", "redeliverInterval": "500ms"}},
		{"rabbitmq", map[string]string{"connectionString": amqpURL}},
		{"jetstream", map[string]string{"natsURL": natsURL}},
		{"mqtt3", map[string]string{"url": mqttURL}},
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// unique returns a name for t in [a-z0-9-].
func unique(t *testing.T, prefix string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(t.Name()) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
		if b.Len() >= 24 {
			break
		}
	}
	return prefix + "-" + b.String() + "-" + randHex(4)
}

// tracked records the topics and groups a test used, so that the broker
// resources behind them (streams, queues, exchanges, MQTT sessions) are
// removed when the test ends.
type tracked struct {
	mu     sync.Mutex
	topics map[string]bool
	groups map[groupKey]bool
}

// recorder is an Adapter that records what it is used for.
type recorder struct {
	*Adapter
	tr *tracked
}

func (r *recorder) Publish(ctx context.Context, topic string, msgs []component.OutMessage) []component.PublishResult {
	r.tr.mu.Lock()
	r.tr.topics[topic] = true
	r.tr.mu.Unlock()
	return r.Adapter.Publish(ctx, topic, msgs)
}

func (r *recorder) Subscribe(ctx context.Context, spec component.SubscribeSpec) (component.Subscription, error) {
	r.tr.mu.Lock()
	r.tr.topics[spec.Topic] = true
	if spec.DeadLetterTopic != "" {
		r.tr.topics[spec.DeadLetterTopic] = true
	}
	r.tr.groups[groupKey{spec.Topic, spec.Group}] = true
	r.tr.mu.Unlock()
	return r.Adapter.Subscribe(ctx, spec)
}

// opener builds adapters of one type through the registry, all with the
// same name and metadata (the same persistent state), and removes the
// broker resources they used when the test ends.
type opener struct {
	bc     brokerCase
	name   string
	tr     *tracked
	config func(c any)
}

func newOpener(t *testing.T, bc brokerCase, config func(c any)) *opener {
	o := &opener{
		bc:     bc,
		name:   "ps" + randHex(4),
		tr:     &tracked{topics: map[string]bool{}, groups: map[groupKey]bool{}},
		config: config,
	}
	t.Cleanup(func() { o.cleanup(t) })
	return o
}

func (o *opener) build(t *testing.T) *recorder {
	t.Helper()
	mod, ok := component.Lookup(component.CapPubSub, o.bc.typ)
	if !ok {
		t.Fatalf("type %q is not registered", o.bc.typ)
	}
	cfg := mod.NewConfig()
	md := props(o.bc.md)
	md["consumerID"] = "mecha-test-" + o.name // MQTT client ids
	switch c := cfg.(type) {
	case *Config:
		c.Metadata = md
	case *JetStreamConfig:
		c.Metadata = md
		c.CreateStreams = true
	}
	if o.config != nil {
		o.config(cfg)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: testLogLevel}))
	c, err := mod.New(cfg, component.Env{Name: o.name, Logger: log, DataDir: t.TempDir()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &recorder{Adapter: c.(*Adapter), tr: o.tr}
}

// open returns a started adapter, closed when the test ends.
func (o *opener) open(t *testing.T) *recorder {
	t.Helper()
	r := o.build(t)
	if err := r.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	waitFor(t, 10*time.Second, "component UP", func() bool { return r.Health().State == backends.StateUp })
	return r
}

func (o *opener) cleanup(t *testing.T) {
	o.tr.mu.Lock()
	defer o.tr.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var err error
	switch o.bc.typ {
	case "redis":
		err = cleanRedis(ctx, o.tr)
	case "rabbitmq":
		err = cleanRabbit(o.tr)
	case "jetstream":
		err = cleanJetStream(o.tr)
	case "mqtt3":
		err = cleanMQTT(o.tr, "mecha-test-"+o.name)
	}
	if err != nil {
		t.Logf("cleanup of %s resources: %v", o.bc.typ, err)
	}
}

func cleanRedis(ctx context.Context, tr *tracked) error {
	c := goredis.NewClient(&goredis.Options{Addr: redisAddr})
	defer c.Close()
	for topic := range tr.topics {
		if err := c.Del(ctx, topic).Err(); err != nil {
			return err
		}
	}
	return nil
}

func cleanRabbit(tr *tracked) error {
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		return err
	}
	defer conn.Close()
	for g := range tr.groups {
		ch, err := conn.Channel()
		if err != nil {
			return err
		}
		_, _ = ch.QueueDelete(g.group+"-"+g.topic, false, false, false)
		ch.Close()
	}
	for topic := range tr.topics {
		ch, err := conn.Channel()
		if err != nil {
			return err
		}
		_ = ch.ExchangeDelete(topic, false, false)
		ch.Close()
	}
	return nil
}

func cleanJetStream(tr *tracked) error {
	nc, err := nats.Connect(natsURL)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		return err
	}
	for topic := range tr.topics {
		if name, err := js.StreamNameBySubject(topic); err == nil && strings.HasPrefix(name, "MECHA_") {
			_ = js.DeleteStream(name)
		}
	}
	return nil
}

// cleanMQTT ends the persistent sessions of the group clients: connecting
// with a clean session under a client id discards its session.
func cleanMQTT(tr *tracked, instance string) error {
	ids := []string{mqttClientID(instance + "-pub")}
	for g := range tr.groups {
		ids = append(ids, mqttClientID(instance+"-"+nameHash(g.topic, g.group)))
	}
	for _, id := range ids {
		o := paho.NewClientOptions().AddBroker(mqttURL).SetClientID(id).SetCleanSession(true).SetConnectTimeout(5 * time.Second)
		c := paho.NewClient(o)
		tok := c.Connect()
		if !tok.WaitTimeout(5 * time.Second) {
			return fmt.Errorf("connect %s: timeout", id)
		}
		if err := tok.Error(); err != nil {
			return err
		}
		c.Disconnect(0)
	}
	return nil
}

// waitFor polls cond every 5ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// receive returns the next message of sub, failing after timeout.
func receive(t *testing.T, sub component.Subscription, timeout time.Duration) *component.Message {
	t.Helper()
	select {
	case m, ok := <-sub.Messages():
		if !ok {
			t.Fatalf("subscription ended: %v", sub.Err())
		}
		return m
	case <-time.After(timeout):
		t.Fatalf("no message within %v", timeout)
	}
	return nil
}

// silent fails if sub delivers a message within window.
func silent(t *testing.T, sub component.Subscription, window time.Duration, why string) {
	t.Helper()
	select {
	case m, ok := <-sub.Messages():
		if ok {
			t.Fatalf("unexpected message %q attempt %d data %q: %s", m.ID, m.Attempt, m.Data, why)
		}
		t.Fatalf("subscription ended (%v): %s", sub.Err(), why)
	case <-time.After(window):
	}
}

func subscribeT(t *testing.T, c component.PubSub, spec component.SubscribeSpec) component.Subscription {
	t.Helper()
	if spec.MaxInFlight == 0 {
		spec.MaxInFlight = 16
	}
	if spec.MaxAttempts == 0 {
		spec.MaxAttempts = 10
	}
	if spec.MaxBackoff == 0 {
		spec.MinBackoff, spec.MaxBackoff = 50*time.Millisecond, time.Second
	}
	sub, err := c.Subscribe(context.Background(), spec)
	if err != nil {
		t.Fatalf("Subscribe %s/%s: %v", spec.Topic, spec.Group, err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return sub
}

func publishT(t *testing.T, c component.PubSub, topic string, msgs ...component.OutMessage) []string {
	t.Helper()
	res := c.Publish(context.Background(), topic, msgs)
	ids := make([]string, len(res))
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("Publish to %s: %v", topic, r.Err)
		}
		ids[i] = r.ID
	}
	return ids
}

var testLogLevel = func() slog.Level {
	if os.Getenv("PUBSUB_TEST_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelError
}()
