package contribpubsub

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dapr/components-contrib/metadata"
	"github.com/dapr/components-contrib/pubsub"
	"github.com/dapr/kit/logger"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/mecha-gateway/mecha/grpcapi/component"
)

func init() {
	component.RegisterType(component.CapPubSub, "mqtt3", func() *Config {
		c := defaultConfig("mqtt3")
		return &c
	}, func(c *Config, env component.Env) (*Adapter, error) {
		return newAdapter(mqttDriver(), c, env)
	})
}

// mqttDriver maps Mecha onto MQTT 3.1.1: a topic is an MQTT topic, a
// consumer group is a shared subscription ($share/<group>/<topic>, which
// Mosquitto accepts from 3.1.1 clients), held by one MQTT client per group
// and topic in each Mecha.
//
// The type reads contrib's pubsub/mqtt3 metadata (url, consumerID, qos,
// retain, cleanSession, caCert, clientCert, clientKey) but talks to the
// broker through paho, the client contrib uses, with code of its own:
// contrib's component cannot be used as it is.
//   - Its Init has a data race: it sets its topic table after connecting,
//     while paho's OnConnect goroutine reads it (go test -race fails on
//     every Init).
//   - A failed Init leaves a paho client retrying forever under the
//     component's client id; once the broker answers, the stray client
//     and the real one take the session from each other in a loop.
//   - On reconnect it resubscribes with SubscribeMultiple, which, unlike
//     Subscribe, does not strip "$share/<group>/" from the route, so every
//     message of a shared subscription reaches the handler twice.
//   - It connects before any route exists, so the messages a resumed
//     session holds arrive with no handler and are never acknowledged.
//
// Here the route is registered before connecting, every (re)connection
// subscribes the same way, and connecting does not retry in the
// background (Mecha's health loop reconnects).
func mqttDriver() *driver {
	return &driver{
		typ:       "mqtt3",
		newPubSub: func(l logger.Logger) pubsub.PubSub { return &mqttPublisher{log: l} },
		defaults:  func(map[string]string) {},
		// The broker never redelivers to a connected client, so holding a
		// message trips no timeout.
		maxHold: func(map[string]string) time.Duration { return 0 },
		addrs: func(md map[string]string) ([]string, error) {
			o, err := parseMQTT(md, false)
			if err != nil {
				return nil, err
			}
			return []string{o.addr}, nil
		},
		publisher: func(md map[string]string, instance string) map[string]string {
			setProp(md, "consumerID", mqttClientID(instance+"-pub"))
			return md
		},
		consumer: func(md map[string]string, instance, topic, group string) (map[string]string, string, error) {
			// The client id must be stable (a persistent session resumes
			// under it) and differ between Mecha processes (a second
			// client with the same id takes the session over).
			setProp(md, "consumerID", mqttClientID(instance+"-"+nameHash(topic, group)))
			share := sanitize(group, 200, func(r rune) bool { return r != '/' && r != '+' && r != '#' && r != 0 })
			return md, "$share/" + share + "/" + topic, nil
		},
		checkTopic: func(topic string) error {
			bad := func(why string) error {
				return fmt.Errorf("%w: topic %q is not an MQTT topic name: %s", component.ErrNotSupported, topic, why)
			}
			switch {
			case strings.ContainsAny(topic, "+#"):
				return bad("wildcards cannot be published to")
			case strings.HasPrefix(topic, "$"):
				return bad("topics starting with $ are reserved for the broker")
			case strings.ContainsRune(topic, 0):
				return bad("it contains NUL")
			case len(topic) > 65535:
				return bad("it is longer than 65535 bytes")
			}
			return nil
		},
		subscribe: subscribeMQTT,
	}
}

func mqttClientID(s string) string {
	return sanitize(s, 200, func(r rune) bool { return r > ' ' && r != 0x7f })
}

// mqttOptions are contrib's mqtt3 settings.
type mqttOptions struct {
	broker     string // scheme://host:port, as paho wants it
	addr       string // host:port
	user, pass string
	clientID   string
	qos        byte
	retain     bool
	clean      bool
	tls        *tls.Config
}

// parseMQTT reads md as contrib does; full also requires a client id and
// loads the TLS settings.
func parseMQTT(md map[string]string, full bool) (*mqttOptions, error) {
	raw, _ := prop(md, "url")
	if raw == "" {
		return nil, errors.New("metadata url is required")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		return nil, fmt.Errorf("metadata url: invalid URL %q", raw)
	}
	o := &mqttOptions{qos: 1}
	scheme, port := u.Scheme, u.Port()
	switch scheme {
	case "mqtt", "tcp", "":
		scheme = "tcp"
	case "mqtts", "tcps", "tls", "ssl":
		scheme = "ssl"
	case "ws", "wss":
	default:
		return nil, fmt.Errorf("metadata url: unknown scheme %q", u.Scheme)
	}
	if port == "" {
		port = map[string]string{"tcp": "1883", "ssl": "8883", "ws": "80", "wss": "443"}[scheme]
	}
	o.addr = net.JoinHostPort(u.Hostname(), port)
	o.broker = scheme + "://" + o.addr + u.Path
	if u.User != nil {
		o.user = u.User.Username()
		o.pass, _ = u.User.Password()
	}
	if v, _ := prop(md, "qos"); v != "" {
		q, err := strconv.ParseUint(v, 10, 8)
		if err != nil || q > 2 {
			return nil, fmt.Errorf("metadata qos: %q is not 0, 1 or 2", v)
		}
		o.qos = byte(q)
	}
	for key, dst := range map[string]*bool{"retain": &o.retain, "cleanSession": &o.clean} {
		if v, _ := prop(md, key); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, fmt.Errorf("metadata %s: %q is not a boolean", key, v)
			}
			*dst = b
		}
	}
	if !full {
		return o, nil
	}
	o.clientID, _ = prop(md, "consumerID")
	if o.clientID == "" {
		return nil, errors.New("metadata consumerID is required")
	}
	tp, err := pubsub.TLS(md)
	if err != nil {
		return nil, fmt.Errorf("metadata TLS settings: %w", err)
	}
	if o.tls, err = pubsub.ConvertTLSPropertiesToTLSConfig(tp); err != nil {
		return nil, fmt.Errorf("metadata TLS settings: %w", err)
	}
	return o, nil
}

// client returns a paho client that reconnects by itself once connected,
// but does not retry a first connection that fails.
func (o *mqttOptions) client(log logger.Logger, onConnect paho.OnConnectHandler) paho.Client {
	opts := paho.NewClientOptions().
		AddBroker(o.broker).
		SetClientID(o.clientID).
		SetUsername(o.user).
		SetPassword(o.pass).
		SetCleanSession(o.clean).
		SetOrderMatters(false).
		SetAutoAckDisabled(true).
		SetAutoReconnect(true).
		SetConnectRetry(false).
		SetResumeSubs(false).
		SetConnectTimeout(10 * time.Second).
		SetMaxReconnectInterval(10 * time.Second).
		SetTLSConfig(o.tls).
		SetOnConnectHandler(onConnect).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			log.Warnf("mqtt: connection lost: %v", err)
		})
	return paho.NewClient(opts)
}

// wait waits for tok, bounded by ctx.
func wait(ctx context.Context, tok paho.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// mqttPublisher is the pubsub.PubSub that publishes.
type mqttPublisher struct {
	log logger.Logger
	o   *mqttOptions
	c   paho.Client
}

func (p *mqttPublisher) Init(ctx context.Context, md pubsub.Metadata) error {
	o, err := parseMQTT(md.Properties, true)
	if err != nil {
		return err
	}
	// A publisher needs no session: a clean one leaves nothing behind in
	// the broker.
	o.clean = true
	p.o = o
	c := o.client(p.log, nil)
	if err := wait(ctx, c.Connect()); err != nil {
		c.Disconnect(0)
		return err
	}
	p.c = c
	return nil
}

// Publish sends one message and waits for the broker's acknowledgement
// (PUBACK at QoS 1, PUBCOMP at QoS 2). Request metadata "retain" overrides
// the component's, as in contrib.
func (p *mqttPublisher) Publish(ctx context.Context, req *pubsub.PublishRequest) error {
	if p.c == nil {
		return errors.New("mqtt: not connected")
	}
	retain := p.o.retain
	if v, ok := prop(req.Metadata, "retain"); ok && v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("metadata retain: %q is not a boolean", v)
		}
		retain = b
	}
	return wait(ctx, p.c.Publish(req.Topic, p.o.qos, retain, req.Data))
}

func (p *mqttPublisher) Subscribe(context.Context, pubsub.SubscribeRequest, pubsub.Handler) error {
	return errors.New("mqtt: this instance only publishes")
}

func (p *mqttPublisher) Close() error {
	if p.c != nil {
		p.c.Disconnect(250)
	}
	return nil
}

func (p *mqttPublisher) Features() []pubsub.Feature { return nil }

func (p *mqttPublisher) GetComponentMetadata() metadata.MetadataMap { return metadata.MetadataMap{} }

// mqttSubscription is a group's client.
type mqttSubscription struct {
	c   paho.Client
	log logger.Logger

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// subscribeMQTT connects a client that holds the shared subscription
// topic ($share/<group>/<topic>) and calls h for each message, from a
// goroutine of its own; it acknowledges (PUBACK) a message when h returns
// nil. A message h returns an error for stays unacknowledged: the broker
// delivers it again when the session resumes (cleanSession false).
func subscribeMQTT(ctx context.Context, log *kitLogger, md map[string]string, topic string, h pubsub.Handler) (io.Closer, error) {
	o, err := parseMQTT(md, true)
	if err != nil {
		return nil, err
	}
	s := &mqttSubscription{log: log}
	route := topic
	if rest, ok := strings.CutPrefix(topic, "$share/"); ok {
		if _, t, ok := strings.Cut(rest, "/"); ok {
			route = t
		}
	}
	subscribed := make(chan error, 1)
	onConnect := func(c paho.Client) {
		// Every connection subscribes again: with a clean session the
		// broker has forgotten the subscription.
		tok := c.Subscribe(topic, o.qos, nil)
		err := errors.New("no answer to SUBSCRIBE")
		if tok.WaitTimeout(20 * time.Second) {
			err = tok.Error()
			if st, ok := tok.(*paho.SubscribeToken); ok && err == nil {
				if code := st.Result()[topic]; code == 0x80 {
					err = fmt.Errorf("the broker refused the subscription to %s", topic)
				}
			}
		}
		select {
		case subscribed <- err:
		default:
			if err != nil {
				log.Warnf("mqtt: resubscribing to %s: %v", topic, err)
			}
		}
	}
	s.c = o.client(log, onConnect)
	// The route exists before the connection, so that what a resumed
	// session delivers at once finds the handler.
	s.c.AddRoute(route, func(_ paho.Client, m paho.Message) { s.handle(m, h) })
	if err := wait(ctx, s.c.Connect()); err != nil {
		s.c.Disconnect(0)
		return nil, err
	}
	select {
	case err = <-subscribed:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		s.c.Disconnect(0)
		return nil, err
	}
	return s, nil
}

func (s *mqttSubscription) handle(m paho.Message, h pubsub.Handler) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return // unacknowledged: the session keeps it
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	err := h(context.Background(), &pubsub.NewMessage{
		Data:     m.Payload(),
		Topic:    m.Topic(),
		Metadata: map[string]string{"retained": strconv.FormatBool(m.Retained())},
	})
	if err == nil {
		m.Ack()
	}
}

// Close waits for the handlers (which the group ends by releasing what it
// holds), then disconnects. The subscription stays in a persistent
// session, so the broker keeps the group's messages for this client.
func (s *mqttSubscription) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.wg.Wait()
	s.c.Disconnect(250)
	return nil
}

var _ pubsub.PubSub = (*mqttPublisher)(nil)
