package contribpubsub

import (
	"errors"
	"strings"
	"time"

	"github.com/mecha-gateway/mecha/configs"
	"github.com/mecha-gateway/mecha/grpcapi/component"
)

// Config is the configuration of the redis, rabbitmq and mqtt3 pub/sub
// types (jetstream adds to it, see JetStreamConfig).
type Config struct {
	component.Base `yaml:",inline"`
	// MaxHold bounds how long Mecha keeps one broker message
	// unacknowledged while the message waits for its delivery time or for
	// the backoff after a nack. Past it Mecha republishes the message,
	// addressed to the waiting consumer group only, and acknowledges the
	// original, so that the broker's redelivery timeout (Redis streams
	// processingTimeout, JetStream ackWait, RabbitMQ consumer_timeout)
	// never fires for a message that is merely waiting. 0 holds without
	// limit. The default depends on the type (see the README).
	MaxHold configs.Duration `yaml:"max_hold"`
	// GroupLinger is how long the broker subscription of a consumer group
	// stays open after the group's last subscriber in this Mecha has left:
	// a subscriber that joins within it gets the messages the group holds
	// at once. Past it the held messages go back to the broker, which
	// delivers them again (to another Mecha, or later).
	GroupLinger configs.Duration `yaml:"group_linger"`
	// HealthInterval is how often Mecha probes the broker. After two
	// failed probes in a row it closes its broker connections (messages in
	// flight go back to the broker) and reopens them when the broker
	// answers again.
	HealthInterval configs.Duration `yaml:"health_interval"`
	// InitTimeout bounds connecting one contrib component (its Init).
	InitTimeout configs.Duration `yaml:"init_timeout"`
}

// JetStreamConfig is the configuration of the jetstream pub/sub type.
type JetStreamConfig struct {
	Config `yaml:",inline"`
	// CreateStreams makes Mecha create a stream for a topic that no stream
	// covers, the first time the topic is published to or subscribed to:
	// named MECHA_<topic>, file storage, interest retention (a message is
	// kept until every consumer group has acknowledged it). Without it an
	// operator creates the streams (nats stream add), as contrib requires.
	CreateStreams bool `yaml:"create_streams"`
}

// defaultConfig returns the settings every type shares.
func defaultConfig(typ string) Config {
	return Config{
		Base:           component.Base{Type: typ},
		MaxHold:        -1, // set by the type from its metadata
		GroupLinger:    configs.Duration(30 * time.Second),
		HealthInterval: configs.Duration(time.Second),
		InitTimeout:    configs.Duration(10 * time.Second),
	}
}

// Validate checks the values.
func (c *Config) Validate() error {
	var errs []error
	if c.HealthInterval <= 0 {
		errs = append(errs, configs.Errorf("health_interval", "must be positive"))
	}
	if c.InitTimeout <= 0 {
		errs = append(errs, configs.Errorf("init_timeout", "must be positive"))
	}
	if c.MaxHold > 0 && c.MaxHold.D() < 100*time.Millisecond {
		errs = append(errs, configs.Errorf("max_hold", "must be 0 (no limit) or at least 100ms"))
	}
	for k := range c.Metadata {
		if strings.TrimSpace(k) == "" {
			errs = append(errs, configs.Errorf("metadata", "empty key"))
		}
	}
	return errors.Join(errs...)
}

// ---- metadata helpers ----
//
// Contrib decodes metadata with mapstructure, which matches keys without
// regard to case; these helpers do the same so that a user's "ConsumerID"
// and Mecha's "consumerID" are one key, not two that race.

// props returns a copy of md.
func props(md map[string]string) map[string]string {
	out := make(map[string]string, len(md)+8)
	for k, v := range md {
		out[k] = v
	}
	return out
}

// prop returns the value of key in md, matched without case.
func prop(md map[string]string, key string) (string, bool) {
	if v, ok := md[key]; ok {
		return v, true
	}
	for k, v := range md {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return "", false
}

// setProp sets key, replacing any spelling of it.
func setProp(md map[string]string, key, val string) {
	for k := range md {
		if strings.EqualFold(k, key) {
			delete(md, k)
		}
	}
	md[key] = val
}

// defaultProp sets key unless some spelling of it is set.
func defaultProp(md map[string]string, key, val string) {
	if _, ok := prop(md, key); !ok {
		md[key] = val
	}
}
