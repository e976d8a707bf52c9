package contribpubsub

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/dapr/components-contrib/pubsub/rabbitmq"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mecha-gateway/mecha/grpcapi/component"
)

func init() {
	component.RegisterType(component.CapPubSub, "rabbitmq", func() *Config {
		c := defaultConfig("rabbitmq")
		return &c
	}, func(c *Config, env component.Env) (*Adapter, error) {
		return newAdapter(rabbitDriver(), c, env)
	})
}

// rabbitDriver maps Mecha onto contrib's RabbitMQ component: a topic is a
// fanout exchange, a consumer group is a queue bound to it, named
// "<group>-<topic>" (contrib's consumerID is the group).
func rabbitDriver() *driver {
	return &driver{
		typ:       "rabbitmq",
		newPubSub: rabbitmq.NewRabbitMQ,
		defaults: func(md map[string]string) {
			// Contrib's defaults suit Dapr's fire-and-forget use, not a
			// durable group: with deletedWhenUnused the group's queue and
			// its messages vanish when its last consumer leaves, without
			// publisherConfirm Publish returns before the broker has the
			// message, and without requeueInFailure a message Mecha hands
			// back is discarded.
			defaultProp(md, "durable", "true")
			defaultProp(md, "deletedWhenUnused", "false")
			defaultProp(md, "publisherConfirm", "true")
			defaultProp(md, "deliveryMode", "2")
			defaultProp(md, "requeueInFailure", "true")
			defaultProp(md, "prefetchCount", "100")
			defaultProp(md, "publishMessagePropertiesToMetadata", "true")
			defaultProp(md, "concurrencyMode", "parallel")
		},
		maxHold: func(map[string]string) time.Duration {
			// Well below RabbitMQ's consumer_timeout (30 minutes by
			// default), past which the broker closes the channel.
			return 10 * time.Minute
		},
		addrs: rabbitAddrs,
		publisher: func(md map[string]string, _ string) map[string]string {
			return md
		},
		consumer: func(md map[string]string, _, topic, group string) (map[string]string, string, error) {
			if q := group + "-" + topic; len(q) > 255 {
				return nil, "", fmt.Errorf("%w: queue name %q is longer than RabbitMQ's 255 bytes", component.ErrNotSupported, q)
			}
			setProp(md, "consumerID", group)
			return md, topic, nil
		},
		checkTopic: func(topic string) error {
			if len(topic) > 255 {
				return fmt.Errorf("%w: topic %q is longer than RabbitMQ's 255-byte exchange names", component.ErrNotSupported, topic)
			}
			if strings.HasPrefix(topic, "amq.") {
				return fmt.Errorf("%w: topic %q: exchange names starting with amq. are reserved by RabbitMQ", component.ErrNotSupported, topic)
			}
			return nil
		},
		rawMessage: func(md map[string]string) (string, string) {
			return md["metadata.messageid"], md["metadata.contenttype"]
		},
		publishMetadata: func(md map[string]string, id string) map[string]string {
			// The AMQP message-id carries the Mecha id, for consumers that
			// read the queue without Mecha.
			out := props(md)
			setProp(out, "messageID", id)
			return out
		},
	}
}

func rabbitAddrs(md map[string]string) ([]string, error) {
	if cs, _ := prop(md, "connectionString"); cs != "" {
		u, err := amqp.ParseURI(cs)
		if err != nil {
			return nil, fmt.Errorf("metadata connectionString: %w", err)
		}
		return []string{net.JoinHostPort(u.Host, fmt.Sprint(u.Port))}, nil
	}
	if h, _ := prop(md, "host"); h != "" {
		u, err := amqp.ParseURI(h)
		if err != nil {
			return nil, fmt.Errorf("metadata host: %w", err)
		}
		return []string{net.JoinHostPort(u.Host, fmt.Sprint(u.Port))}, nil
	}
	host, _ := prop(md, "hostname")
	if host == "" {
		host = "localhost"
	}
	if _, _, err := net.SplitHostPort(host); err == nil {
		return []string{host}, nil
	}
	port := "5672"
	if p, _ := prop(md, "protocol"); p == "amqps" {
		port = "5671"
	}
	if strings.ContainsAny(host, "/@") {
		return nil, errors.New("metadata hostname must be host or host:port")
	}
	return []string{net.JoinHostPort(host, port)}, nil
}
