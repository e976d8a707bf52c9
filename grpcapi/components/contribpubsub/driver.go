package contribpubsub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dapr/components-contrib/pubsub"
	"github.com/dapr/kit/logger"
)

// driver is what differs between the contrib types: how a consumer group
// maps onto the broker, Mecha's defaults for the contrib metadata, which
// addresses the health probe dials, and which topic names the broker can
// carry.
type driver struct {
	// typ is the configuration type.
	typ string
	// newPubSub returns an uninitialised contrib component.
	newPubSub func(logger.Logger) pubsub.PubSub
	// defaults fills Mecha's defaults into the user's metadata (a copy).
	defaults func(md map[string]string)
	// maxHold is the default of Config.MaxHold for the final metadata.
	maxHold func(md map[string]string) time.Duration
	// addrs returns the host:port addresses of the broker.
	addrs func(md map[string]string) ([]string, error)
	// publisher returns the metadata of the instance that publishes;
	// instance names this Mecha (for client ids that must be unique).
	publisher func(md map[string]string, instance string) map[string]string
	// consumer returns the metadata of the instance that consumes topic for
	// group, and the topic name to give its Subscribe.
	consumer func(md map[string]string, instance, topic, group string) (map[string]string, string, error)
	// checkTopic rejects topic names the broker cannot carry.
	checkTopic func(topic string) error
	// rawMessage returns the id and content type the broker gave a
	// message of a non-Mecha producer, when it gives any.
	rawMessage func(md map[string]string) (id, contentType string)
	// publishMetadata, when set, returns the request metadata for
	// publishing the message with Mecha id id (default: md unchanged).
	publishMetadata func(md map[string]string, id string) map[string]string
	// subscribe, when set, replaces contrib's Init and Subscribe for the
	// consuming side (JetStream: see jetstream.go): it subscribes to topic
	// with the consumer metadata md, calls h for each message, acknowledges
	// it when h returns nil and hands it back when h returns an error.
	subscribe func(ctx context.Context, log *kitLogger, md map[string]string, topic string, h pubsub.Handler) (io.Closer, error)
	// prepare, when set, makes the broker ready for a topic before it is
	// first used (JetStream: create its stream).
	prepare func(ctx context.Context, topic string) error
	// closePrepare releases what prepare holds.
	closePrepare func()
}

// nameHash is a short, stable digest of parts, used to keep broker names
// that Mecha derives from topic and group names unique once they have
// been shortened or had characters replaced.
func nameHash(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:6])
}

// sanitize keeps the characters ok accepts and replaces the others with
// '_'; when it changed anything or s is longer than maxLen, it shortens
// and appends a digest of s so that different inputs stay different.
func sanitize(s string, maxLen int, ok func(r rune) bool) string {
	var b strings.Builder
	changed := false
	for _, r := range s {
		if ok(r) {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
			changed = true
		}
	}
	out := b.String()
	if !changed && len(out) <= maxLen && out != "" {
		return out
	}
	keep := maxLen - 13
	for len(out) > keep {
		_, size := utf8.DecodeLastRuneInString(out)
		out = out[:len(out)-size]
	}
	return out + "_" + nameHash(s)
}

// alnum accepts ASCII letters, digits, '-' and '_'.
func alnum(r rune) bool {
	return r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
}
