package contribpubsub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/dapr/components-contrib/pubsub"
	"github.com/dapr/components-contrib/pubsub/jetstream"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/mecha-gateway/mecha/configs"
	"github.com/mecha-gateway/mecha/grpcapi/component"
)

func init() {
	component.RegisterType(component.CapPubSub, "jetstream", func() *JetStreamConfig {
		return &JetStreamConfig{Config: defaultConfig("jetstream")}
	}, func(c *JetStreamConfig, env component.Env) (*Adapter, error) {
		return newAdapter(jetstreamDriver(c), &c.Config, env)
	})
}

// Validate checks the JetStream settings.
func (c *JetStreamConfig) Validate() error {
	if c.CreateStreams {
		if v, _ := prop(c.Metadata, "streamName"); v != "" {
			return configs.Errorf("create_streams", "cannot be used with metadata streamName, which names the one stream every topic must be in")
		}
	}
	return nil
}

// jetstreamDriver maps Mecha onto JetStream: a topic is a subject (in a
// stream that must exist, or that Mecha creates with create_streams), a
// consumer group is a durable push consumer with a deliver (queue) group,
// both named after the group and the topic.
//
// Contrib publishes (Publish waits for the stream's acknowledgement). The
// consuming side is Mecha's own (subscribeJetStream), because of a contrib
// bug: contrib subscribes without nats.ManualAck, so nats.go acknowledges
// every message when contrib's callback returns; in contrib's parallel
// mode the callback only starts a goroutine, so messages are acknowledged
// on arrival and a nack, or a crash, loses them (the later Ack/Nak fails
// with "message was already acknowledged"); in its single mode, the
// default, one held message stops the whole subscription.
func jetstreamDriver(c *JetStreamConfig) *driver {
	d := &driver{
		typ:       "jetstream",
		newPubSub: jetstream.NewJetStream,
		defaults:  func(map[string]string) {},
		// A held message is kept alive with "in progress" acks, so holding
		// trips no timeout.
		maxHold:   func(map[string]string) time.Duration { return 0 },
		addrs:     natsAddrs,
		publisher: func(md map[string]string, _ string) map[string]string { return md },
		consumer: func(md map[string]string, _, topic, group string) (map[string]string, string, error) {
			name := sanitize(group+"_"+topic, 200, alnum)
			setProp(md, "durableName", name)
			setProp(md, "queueGroupName", name)
			return md, topic, nil
		},
		checkTopic: checkSubject,
		subscribe:  subscribeJetStream,
		rawMessage: func(md map[string]string) (string, string) {
			// The stream and sequence identify a message for good.
			if st, seq := md["jetstream.stream"], md["jetstream.sequence"]; st != "" && seq != "" {
				return st + "-" + seq, ""
			}
			return "", ""
		},
	}
	if c.CreateStreams {
		s := &jsStreams{md: props(c.Metadata), known: map[string]bool{}}
		d.prepare = s.ensure
		d.closePrepare = s.close
	}
	return d
}

func natsAddrs(md map[string]string) ([]string, error) {
	raw, _ := prop(md, "natsURL")
	if strings.TrimSpace(raw) == "" {
		return nil, errors.New("metadata natsURL is required")
	}
	var out []string
	for _, s := range splitAddrs(raw) {
		if !strings.Contains(s, "://") {
			s = "nats://" + s
		}
		u, err := url.Parse(s)
		if err != nil || u.Hostname() == "" {
			return nil, fmt.Errorf("metadata natsURL: invalid URL %q", s)
		}
		port := u.Port()
		if port == "" {
			port = "4222"
		}
		out = append(out, net.JoinHostPort(u.Hostname(), port))
	}
	return out, nil
}

// checkSubject rejects topics that are not a valid subject to publish to.
func checkSubject(topic string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w: topic %q is not a NATS subject: %s", component.ErrNotSupported, topic, why)
	}
	if strings.ContainsAny(topic, " \t\r\n") {
		return bad("it contains white space")
	}
	for _, tok := range strings.Split(topic, ".") {
		switch tok {
		case "":
			return bad("it has an empty token")
		case "*", ">":
			return bad("wildcards cannot be published to")
		}
	}
	return nil
}

// jsStreams creates a stream for each topic no stream covers
// (create_streams). It has its own connection, as contrib does not expose
// its own.
type jsStreams struct {
	md map[string]string

	mu    sync.Mutex
	nc    *nats.Conn
	known map[string]bool
}

func (s *jsStreams) ensure(ctx context.Context, topic string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.known[topic] {
		return nil
	}
	if s.nc == nil || s.nc.IsClosed() {
		nc, err := natsConnect(s.md, "mecha stream admin")
		if err != nil {
			return err
		}
		s.nc = nc
	}
	js, err := s.nc.JetStream(nats.Context(ctx))
	if err != nil {
		return err
	}
	if _, err := js.StreamNameBySubject(topic, nats.Context(ctx)); err == nil {
		s.known[topic] = true
		return nil
	} else if !errors.Is(err, nats.ErrStreamNotFound) && !errors.Is(err, nats.ErrNoMatchingStream) {
		return err
	}
	name := "MECHA_" + sanitize(topic, 200, alnum)
	_, err = js.AddStream(&nats.StreamConfig{
		Name:     name,
		Subjects: []string{topic},
		Storage:  nats.FileStorage,
		// A message stays while a consumer group has not acknowledged it,
		// and no longer: the stream does not grow without bound.
		Retention: nats.InterestPolicy,
	}, nats.Context(ctx))
	if err != nil && !errors.Is(err, nats.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("create stream %s: %w", name, err)
	}
	s.known[topic] = true
	return nil
}

func (s *jsStreams) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nc != nil {
		s.nc.Close()
		s.nc = nil
	}
}

// natsConnect dials with the credentials contrib would use.
func natsConnect(md map[string]string, name string) (*nats.Conn, error) {
	url, _ := prop(md, "natsURL")
	opts := []nats.Option{
		nats.Name(name),
		nats.Timeout(5 * time.Second),
		// Reconnect for as long as it takes; Mecha closes the connection
		// itself when the broker stays down (see Adapter.supervise).
		nats.MaxReconnects(-1),
	}
	jwt, _ := prop(md, "jwt")
	seed, _ := prop(md, "seedKey")
	cert, _ := prop(md, "tls_client_cert")
	key, _ := prop(md, "tls_client_key")
	token, _ := prop(md, "token")
	switch {
	case jwt != "" && seed != "":
		opts = append(opts, nats.UserJWT(
			func() (string, error) { return jwt, nil },
			func(nonce []byte) ([]byte, error) {
				kp, err := nkeys.FromSeed([]byte(seed))
				if err != nil {
					return nil, err
				}
				defer kp.Wipe()
				return kp.Sign(nonce)
			}))
	case cert != "" && key != "":
		opts = append(opts, nats.ClientCert(cert, key))
	case token != "":
		opts = append(opts, nats.Token(token))
	}
	return nats.Connect(url, opts...)
}

// jsSubscription is a group's consumer: a durable push consumer with a
// deliver group, read with manual acknowledgements.
type jsSubscription struct {
	nc  *nats.Conn
	sub *nats.Subscription
	log *kitLogger

	mu       sync.Mutex
	closed   bool
	wg       sync.WaitGroup
	stopOnce sync.Once
}

// subscribeJetStream subscribes to topic with the consumer settings of md,
// which it reads as contrib does: durableName and queueGroupName (set by
// Mecha from the group), streamName, deliverPolicy, startSequence,
// startTime, ackWait, maxDeliver, backOff, maxAckPending, replicas,
// memoryStorage, rateLimit, heartbeat, flowControl, domain, apiPrefix.
// The consumer is created with these settings when it does not exist; an
// existing consumer is used as it is.
func subscribeJetStream(ctx context.Context, log *kitLogger, md map[string]string, topic string, h pubsub.Handler) (io.Closer, error) {
	cc, err := jsConsumerConfig(md, topic)
	if err != nil {
		return nil, err
	}
	name, _ := prop(md, "name")
	if name == "" {
		name = "mecha jetstream consumer"
	}
	nc, err := natsConnect(md, name)
	if err != nil {
		return nil, err
	}
	s := &jsSubscription{nc: nc, log: log}
	fail := func(err error) (io.Closer, error) {
		nc.Close()
		return nil, err
	}
	var jsOpts []nats.JSOpt
	if v, _ := prop(md, "domain"); v != "" {
		jsOpts = append(jsOpts, nats.Domain(v))
	}
	if v, _ := prop(md, "apiPrefix"); v != "" {
		jsOpts = append(jsOpts, nats.APIPrefix(v))
	}
	js, err := nc.JetStream(jsOpts...)
	if err != nil {
		return fail(err)
	}
	stream, _ := prop(md, "streamName")
	if stream == "" {
		if stream, err = js.StreamNameBySubject(topic, nats.Context(ctx)); err != nil {
			return fail(fmt.Errorf("find the stream of %s: %w", topic, err))
		}
	}
	info, err := js.ConsumerInfo(stream, cc.Durable, nats.Context(ctx))
	if errors.Is(err, nats.ErrConsumerNotFound) {
		info, err = js.AddConsumer(stream, cc, nats.Context(ctx))
	}
	if err != nil {
		return fail(fmt.Errorf("consumer %s on stream %s: %w", cc.Durable, stream, err))
	}
	ackWait := info.Config.AckWait
	if ackWait <= 0 {
		ackWait = 30 * time.Second
	}
	cb := func(msg *nats.Msg) {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = msg.Nak()
			return
		}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.handle(msg, topic, ackWait, h)
		}()
	}
	s.sub, err = js.QueueSubscribe(topic, info.Config.DeliverGroup, cb, nats.Bind(stream, info.Name), nats.ManualAck())
	if err != nil {
		return fail(fmt.Errorf("subscribe to %s: %w", topic, err))
	}
	return s, nil
}

// handle calls h for msg, telling the server the message is in progress
// while h holds it, then acknowledges or naks it.
func (s *jsSubscription) handle(msg *nats.Msg, topic string, ackWait time.Duration, h pubsub.Handler) {
	md := map[string]string{"Topic": msg.Subject}
	if meta, err := msg.Metadata(); err == nil {
		md["jetstream.stream"] = meta.Stream
		md["jetstream.sequence"] = fmt.Sprint(meta.Sequence.Stream)
		md["jetstream.delivered"] = fmt.Sprint(meta.NumDelivered)
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(max(ackWait/3, 100*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	}()
	err := h(context.Background(), &pubsub.NewMessage{Data: msg.Data, Topic: topic, Metadata: md})
	close(done)
	if err != nil {
		err = msg.Nak()
	} else {
		err = msg.Ack()
	}
	if err != nil {
		s.log.Warnf("jetstream: settling message on %s: %v", msg.Subject, err)
	}
}

// Stop ends deliveries and returns once the server has processed the end
// of the subscription's interest. It drains rather than unsubscribes:
// messages already on their way still reach the callback, which naks
// them, instead of being dropped and waiting for the ack wait. The group
// calls it before handing its messages back, so that the server keeps
// the naked messages for the next subscriber instead of redelivering them
// here while the interest goes away (a message the server routes to a
// subscription that is gone waits for the ack wait).
func (s *jsSubscription) Stop() {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		if err := s.sub.Drain(); err != nil {
			return
		}
		for deadline := time.Now().Add(5 * time.Second); s.sub.IsValid() && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// Close stops deliveries, waits for the handlers (which the group ends by
// releasing what it holds) and closes the connection once their acks and
// naks are sent.
func (s *jsSubscription) Close() error {
	s.Stop()
	s.wg.Wait()
	_ = s.nc.FlushTimeout(2 * time.Second)
	s.nc.Close()
	return nil
}

// jsConsumerConfig reads the consumer settings of md as contrib does.
func jsConsumerConfig(md map[string]string, topic string) (*nats.ConsumerConfig, error) {
	durable, _ := prop(md, "durableName")
	queue, _ := prop(md, "queueGroupName")
	cc := &nats.ConsumerConfig{
		Durable:        durable,
		DeliverGroup:   queue,
		DeliverSubject: nats.NewInbox(),
		AckPolicy:      nats.AckExplicitPolicy,
		FilterSubject:  topic,
	}
	get := func(k string) string { v, _ := prop(md, k); return v }
	var err error
	num := func(k string, dst any) {
		v := get(k)
		if v == "" || err != nil {
			return
		}
		if _, e := fmt.Sscan(v, dst); e != nil {
			err = fmt.Errorf("metadata %s: %q is not a number", k, v)
		}
	}
	dur := func(k string) time.Duration {
		v := get(k)
		if v == "" || err != nil {
			return 0
		}
		d, e := time.ParseDuration(v)
		if e != nil {
			err = fmt.Errorf("metadata %s: %w", k, e)
		}
		return d
	}
	switch get("deliverPolicy") {
	case "", "all":
		cc.DeliverPolicy = nats.DeliverAllPolicy
	case "last":
		cc.DeliverPolicy = nats.DeliverLastPolicy
	case "new":
		cc.DeliverPolicy = nats.DeliverNewPolicy
	case "sequence":
		cc.DeliverPolicy = nats.DeliverByStartSequencePolicy
	case "time":
		cc.DeliverPolicy = nats.DeliverByStartTimePolicy
	default:
		return nil, fmt.Errorf("metadata deliverPolicy %q is not one of all, last, new, sequence, time", get("deliverPolicy"))
	}
	switch get("ackPolicy") {
	case "", "explicit":
	default:
		// "all" and "none" would acknowledge messages Mecha has not
		// delivered; Mecha needs one acknowledgement per message.
		return nil, fmt.Errorf("metadata ackPolicy %q is not supported: Mecha acknowledges each message explicitly", get("ackPolicy"))
	}
	num("startSequence", &cc.OptStartSeq)
	var start uint64
	num("startTime", &start)
	if start > 0 {
		t := time.Unix(int64(start), 0) //nolint:gosec
		cc.OptStartTime = &t
	}
	cc.AckWait = dur("ackWait")
	num("maxDeliver", &cc.MaxDeliver)
	num("maxAckPending", &cc.MaxAckPending)
	num("replicas", &cc.Replicas)
	num("rateLimit", &cc.RateLimit)
	cc.Heartbeat = dur("heartbeat")
	if v := get("backOff"); v != "" {
		for _, part := range strings.Split(v, ",") {
			d, e := time.ParseDuration(strings.TrimSpace(part))
			if e != nil {
				return nil, fmt.Errorf("metadata backOff: %w", e)
			}
			cc.BackOff = append(cc.BackOff, d)
		}
	}
	cc.MemoryStorage = strings.EqualFold(get("memoryStorage"), "true")
	cc.FlowControl = strings.EqualFold(get("flowControl"), "true")
	return cc, err
}
