package redis

import (
	"sort"
	"strings"
	"sync"

	"github.com/mecha-gateway/mecha/backends/kv"
	"github.com/mecha-gateway/mecha/frontends/redis/resp"
)

func init() {
	ps := needs(kv.FeaturePubSub)
	reg("subscribe", cmdSubscribe, ps, noTx)
	reg("psubscribe", cmdSubscribe, ps, noTx)
	reg("ssubscribe", cmdSubscribe, ps, noTx)
	reg("unsubscribe", cmdUnsubscribe, ps, noTx)
	reg("punsubscribe", cmdUnsubscribe, ps, noTx)
	reg("sunsubscribe", cmdUnsubscribe, ps, noTx)
	reg("publish", cmdPublish, ps, noTx)
	reg("spublish", cmdPublish, ps, noTx)
	reg("pubsub|channels", cmdPubsubChannels, ps, noTx)
	reg("pubsub|shardchannels", cmdPubsubChannels, ps, noTx)
	reg("pubsub|numsub", cmdPubsubNumsub, ps, noTx)
	reg("pubsub|shardnumsub", cmdPubsubNumsub, ps, noTx)
	reg("pubsub|numpat", cmdPubsubNumpat, ps, noTx)
}

// hub routes published messages to subscribed sessions.
type hub struct {
	mu       sync.RWMutex
	channels map[string]map[*Session]struct{}
	patterns map[string]map[*Session]struct{}
	shards   map[string]map[*Session]struct{}
}

func newHub() *hub {
	return &hub{
		channels: map[string]map[*Session]struct{}{},
		patterns: map[string]map[*Session]struct{}{},
		shards:   map[string]map[*Session]struct{}{},
	}
}

// kinds of subscription
const (
	subChannel = iota
	subPattern
	subShard
)

func subKind(name string) int {
	switch {
	case strings.HasPrefix(name, "psub"), strings.HasPrefix(name, "punsub"):
		return subPattern
	case strings.HasPrefix(name, "ssub"), strings.HasPrefix(name, "sunsub"):
		return subShard
	}
	return subChannel
}

func (h *hub) table(kind int) map[string]map[*Session]struct{} {
	switch kind {
	case subPattern:
		return h.patterns
	case subShard:
		return h.shards
	}
	return h.channels
}

func (s *Session) own(kind int) map[string]bool {
	switch kind {
	case subPattern:
		if s.patterns == nil {
			s.patterns = map[string]bool{}
		}
		return s.patterns
	case subShard:
		if s.shards == nil {
			s.shards = map[string]bool{}
		}
		return s.shards
	}
	if s.channels == nil {
		s.channels = map[string]bool{}
	}
	return s.channels
}

// count is what (un)subscribe replies report: channels and patterns
// together, shard channels apart (as Redis 7 counts them).
func (s *Session) count(kind int) int {
	if kind == subShard {
		return len(s.shards)
	}
	return len(s.channels) + len(s.patterns)
}

var verbs = map[int][2]string{
	subChannel: {"subscribe", "unsubscribe"},
	subPattern: {"psubscribe", "punsubscribe"},
	subShard:   {"ssubscribe", "sunsubscribe"},
}

func (c *call) subReply(verb string, name []byte, n int) {
	c.array(3)
	c.bulkStr(verb)
	if name == nil {
		c.null()
	} else {
		c.bulk(name)
	}
	c.int(int64(n))
}

func cmdSubscribe(c *call) {
	s, h := c.s, c.s.e.hub
	kind := subKind(lower(c.args[0]))
	h.mu.Lock()
	s.pmu.Lock()
	mine := s.own(kind)
	for _, ch := range c.args[1:] {
		name := string(ch)
		if !mine[name] {
			mine[name] = true
			t := h.table(kind)
			if t[name] == nil {
				t[name] = map[*Session]struct{}{}
			}
			t[name][s] = struct{}{}
		}
		c.subReply(verbs[kind][0], ch, s.count(kind))
	}
	s.recount()
	s.pmu.Unlock()
	h.mu.Unlock()
}

func cmdUnsubscribe(c *call) {
	s, h := c.s, c.s.e.hub
	kind := subKind(lower(c.args[0]))
	h.mu.Lock()
	s.pmu.Lock()
	mine := s.own(kind)
	names := c.args[1:]
	if len(names) == 0 {
		for n := range mine {
			names = append(names, []byte(n))
		}
		sort.Slice(names, func(i, j int) bool { return string(names[i]) < string(names[j]) })
		if len(names) == 0 {
			c.subReply(verbs[kind][1], nil, s.count(kind))
		}
	}
	for _, ch := range names {
		name := string(ch)
		if mine[name] {
			delete(mine, name)
			t := h.table(kind)
			delete(t[name], s)
			if len(t[name]) == 0 {
				delete(t, name)
			}
		}
		c.subReply(verbs[kind][1], ch, s.count(kind))
	}
	s.recount()
	s.pmu.Unlock()
	h.mu.Unlock()
}

// unsubscribeAll drops every subscription of s.
func (h *hub) unsubscribeAll(s *Session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s.pmu.Lock()
	defer s.pmu.Unlock()
	for kind, mine := range []map[string]bool{s.channels, s.patterns, s.shards} {
		t := h.table(kind)
		for name := range mine {
			delete(t[name], s)
			if len(t[name]) == 0 {
				delete(t, name)
			}
		}
	}
	s.channels, s.patterns, s.shards = nil, nil, nil
	s.recount()
}

// publish delivers msg on channel and returns how many received it.
func (h *hub) publish(channel, msg []byte, shard bool) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	n := 0
	if shard {
		for s := range h.shards[string(channel)] {
			out := resp.AppendArray(nil, 3)
			out = resp.AppendBulkString(out, "smessage")
			out = resp.AppendBulk(out, channel)
			s.deliver(resp.AppendBulk(out, msg))
			n++
		}
		return n
	}
	if subs := h.channels[string(channel)]; len(subs) > 0 {
		out := resp.AppendArray(nil, 3)
		out = resp.AppendBulkString(out, "message")
		out = resp.AppendBulk(out, channel)
		out = resp.AppendBulk(out, msg)
		for s := range subs {
			s.deliver(out)
			n++
		}
	}
	for pattern, subs := range h.patterns {
		if !resp.Match([]byte(pattern), channel, false) {
			continue
		}
		out := resp.AppendArray(nil, 4)
		out = resp.AppendBulkString(out, "pmessage")
		out = resp.AppendBulkString(out, pattern)
		out = resp.AppendBulk(out, channel)
		out = resp.AppendBulk(out, msg)
		for s := range subs {
			s.deliver(out)
			n++
		}
	}
	return n
}

func cmdPublish(c *call) {
	c.int(int64(c.s.e.hub.publish(c.args[1], c.args[2], lower(c.args[0]) == "spublish")))
}

func cmdPubsubChannels(c *call) {
	h := c.s.e.hub
	var match []byte
	if len(c.args) == 3 {
		match = c.args[2]
	} else if len(c.args) > 3 {
		c.errorMsg("ERR wrong number of arguments for 'pubsub|channels' command")
		return
	}
	t := h.channels
	if lower(c.args[1]) == "shardchannels" {
		t = h.shards
	}
	h.mu.RLock()
	var names []string
	for n := range t {
		if match == nil || resp.Match(match, []byte(n), false) {
			names = append(names, n)
		}
	}
	h.mu.RUnlock()
	sort.Strings(names)
	c.array(len(names))
	for _, n := range names {
		c.bulkStr(n)
	}
}

func cmdPubsubNumsub(c *call) {
	h := c.s.e.hub
	t := h.channels
	if lower(c.args[1]) == "shardnumsub" {
		t = h.shards
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	c.array(2 * (len(c.args) - 2))
	for _, ch := range c.args[2:] {
		c.bulk(ch)
		c.int(int64(len(t[string(ch)])))
	}
}

func cmdPubsubNumpat(c *call) {
	h := c.s.e.hub
	h.mu.RLock()
	defer h.mu.RUnlock()
	c.int(int64(len(h.patterns)))
}
