package contribpubsub

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/dapr/components-contrib/pubsub/redis"

	"github.com/mecha-gateway/mecha/grpcapi/component"
)

func init() {
	component.RegisterType(component.CapPubSub, "redis", func() *Config {
		c := defaultConfig("redis")
		return &c
	}, func(c *Config, env component.Env) (*Adapter, error) {
		return newAdapter(redisDriver(), c, env)
	})
}

// redisDriver maps Mecha onto contrib's Redis streams component: a topic
// is a stream, a consumer group is a stream consumer group (contrib's
// consumerID, which it uses as the group and as the consumer name).
func redisDriver() *driver {
	return &driver{
		typ:       "redis",
		newPubSub: redis.NewRedisStreams,
		defaults: func(md map[string]string) {
			// Every message Mecha holds (waiting for a subscriber with
			// room, a delivery time or a backoff) occupies one of contrib's
			// workers; its default of 10 would let ten waiting messages
			// stall the group.
			defaultProp(md, "concurrency", "100")
			// Contrib bug: redeliverInterval is read only as a number of
			// milliseconds (the field is skipped by the decoder that
			// understands "500ms"), so a duration string silently leaves
			// the default of 15s. Mecha converts it.
			for _, key := range []string{"redeliverInterval", "processingTimeout"} {
				if v, ok := prop(md, key); ok {
					if _, err := strconv.ParseUint(v, 10, 63); err != nil {
						if d, err := time.ParseDuration(v); err == nil && d >= 0 {
							setProp(md, key, strconv.FormatInt(d.Milliseconds(), 10))
						}
					}
				}
			}
		},
		maxHold: func(md map[string]string) time.Duration {
			// Half the time after which contrib reclaims (XCLAIM) a pending
			// message and delivers it again.
			return redisDuration(md, "processingTimeout", 60*time.Second) / 2
		},
		addrs: func(md map[string]string) ([]string, error) {
			host, _ := prop(md, "redisHost")
			if strings.TrimSpace(host) == "" {
				return nil, errors.New("metadata redisHost is required")
			}
			return splitAddrs(host), nil
		},
		publisher: func(md map[string]string, _ string) map[string]string { return md },
		consumer: func(md map[string]string, _, topic, group string) (map[string]string, string, error) {
			setProp(md, "consumerID", group)
			return md, topic, nil
		},
		checkTopic: func(topic string) error { return nil },
	}
}

// redisDuration reads a duration as contrib does: a number of
// milliseconds or a Go duration.
func redisDuration(md map[string]string, key string, def time.Duration) time.Duration {
	v, ok := prop(md, key)
	if !ok || v == "" {
		return def
	}
	if ms, err := strconv.ParseUint(v, 10, 63); err == nil {
		return time.Duration(ms) * time.Millisecond
	}
	if d, err := time.ParseDuration(v); err == nil {
		return d
	}
	return def
}

func splitAddrs(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}
