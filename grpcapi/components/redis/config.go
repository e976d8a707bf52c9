package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/grpcapi/component"
	"github.com/mecha-gateway/mecha/grpcapi/components/internal/configsub"
)

func init() {
	component.RegisterType(component.CapConfig, "redis", DefaultConfigConfig, NewConfig)
}

// ConfigConfig is the `type: redis` configuration store's configuration:
// everything is in metadata, as contrib's configuration/redis names it,
// plus keyPrefix.
type ConfigConfig struct {
	component.Base `yaml:",inline"`
}

// DefaultConfigConfig returns the defaults.
func DefaultConfigConfig() *ConfigConfig { return &ConfigConfig{} }

// Validate checks the metadata.
func (c *ConfigConfig) Validate() error {
	_, err := parseSettings(c.Metadata)
	return err
}

// Config is a configuration store on Redis. Items are kept where and as
// contrib's configuration/redis reads them (a string key holding
// "content||version"), so a Dapr sidecar with that component reads what
// Mecha saves; Mecha adds tags and metadata, versions, optimistic saves,
// deletes and change notifications, each in one Lua script.
//
// Keys, with every name escaped (% → %25, : → %3A) so that the layout
// is unambiguous:
//
//	<p>:cfg:<app>:<group>:<label>:<key>      content||version (contrib's format)
//	<p>:cfgmeta:<app>:<group>:<label>:<key>  {"tags":{…},"metadata":{…}} (absent when both are empty)
//	<p>:cfgindex:<app>:<group>:<label>       set of the scope's escaped keys
//	<p>:cfgversion                           counter versions come from
//	<p>:cfgchanges:<app>:<group>:<label>     pub/sub channel of the scope's changes
type Config struct {
	s    *settings
	link *link
	subs configsub.Gate
}

var _ component.ConfigStore = (*Config)(nil)

// NewConfig builds a configuration store; nothing connects until Start.
func NewConfig(c *ConfigConfig, env component.Env) (*Config, error) {
	s, err := parseSettings(c.Metadata)
	if err != nil {
		return nil, err
	}
	return &Config{s: s, link: newLink(env, "config", nil)}, nil
}

// Start connects; when Redis is down it still succeeds, reporting DOWN
// until Redis answers.
func (c *Config) Start(ctx context.Context) error { return c.link.start(ctx, c.s) }

// Health reports whether Redis answers.
func (c *Config) Health() backends.Health { return c.link.Health() }

// Close ends subscriptions and releases the connections.
func (c *Config) Close() error {
	c.subs.Close()
	return c.link.close()
}

// esc escapes a name for a key: % and : are percent-encoded.
func esc(s string) string {
	if !strings.ContainsAny(s, "%:") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '%':
			b.WriteString("%25")
		case ':':
			b.WriteString("%3A")
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

func (c *Config) scopePath(s component.ConfigScope) string {
	return esc(s.AppID) + ":" + esc(s.Group) + ":" + esc(s.Label)
}

func (c *Config) itemPrefix(s component.ConfigScope) string {
	return c.s.prefix + ":cfg:" + c.scopePath(s) + ":"
}

func (c *Config) metaPrefix(s component.ConfigScope) string {
	return c.s.prefix + ":cfgmeta:" + c.scopePath(s) + ":"
}

func (c *Config) indexKey(s component.ConfigScope) string {
	return c.s.prefix + ":cfgindex:" + c.scopePath(s)
}

func (c *Config) channel(s component.ConfigScope) string {
	return c.s.prefix + ":cfgchanges:" + c.scopePath(s)
}

func (c *Config) versionKey() string { return c.s.prefix + ":cfgversion" }

// ItemKey is the Redis key an item is stored under: what a Dapr
// application reading through contrib's configuration/redis asks for.
func (c *Config) ItemKey(s component.ConfigScope, key string) string {
	return c.itemPrefix(s) + esc(key)
}

// splitValue splits contrib's "content||version" at the last "||" (a
// version has none; content may).
func splitValue(raw string) (content, version string) {
	i := strings.LastIndex(raw, "||")
	if i < 0 {
		return raw, ""
	}
	return raw[:i], raw[i+2:]
}

// meta is what the meta key holds.
type meta struct {
	Tags     map[string]string `json:"tags,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

func encodeMeta(it *component.ConfigItem) (string, error) {
	if len(it.Tags) == 0 && len(it.Metadata) == 0 {
		return "", nil
	}
	b, err := json.Marshal(meta{Tags: it.Tags, Metadata: it.Metadata})
	return string(b), err
}

func decodeMeta(it *component.ConfigItem, s string) {
	if s == "" {
		return
	}
	var m meta
	if json.Unmarshal([]byte(s), &m) == nil {
		it.Tags, it.Metadata = m.Tags, m.Metadata
	}
}

// item builds an item of scope from its escaped key, raw value and meta.
func item(s component.ConfigScope, member, raw, metaJSON string) (component.ConfigItem, bool) {
	key, err := url.PathUnescape(member)
	if err != nil {
		return component.ConfigItem{}, false
	}
	it := component.ConfigItem{AppID: s.AppID, Group: s.Group, Label: s.Label, Key: key}
	it.Content, it.Version = splitValue(raw)
	decodeMeta(&it, metaJSON)
	return it, true
}

// getAllScript reads every item of a scope at once.
var getAllScript = goredis.NewScript(`
local out = {}
for _, m in ipairs(redis.call('smembers', KEYS[1])) do
  local raw = redis.pcall('get', ARGV[1] .. m)
  if type(raw) == 'string' then
    local meta = redis.pcall('get', ARGV[2] .. m)
    if type(meta) ~= 'string' then meta = '' end
    table.insert(out, m)
    table.insert(out, raw)
    table.insert(out, meta)
  end
end
return out
`)

// Get returns the items of scope named in keys, or all of them.
func (c *Config) Get(ctx context.Context, scope component.ConfigScope, keys []string) ([]component.ConfigItem, error) {
	if c.link.client == nil {
		return nil, errNotStarted
	}
	var out []component.ConfigItem
	if len(keys) == 0 {
		res, err := getAllScript.Run(ctx, c.link.client, []string{c.indexKey(scope)}, c.itemPrefix(scope), c.metaPrefix(scope)).StringSlice()
		if err != nil {
			return nil, c.link.Fail(ctx, "get configuration", err)
		}
		for i := 0; i+2 < len(res); i += 3 {
			if it, ok := item(scope, res[i], res[i+1], res[i+2]); ok {
				out = append(out, it)
			}
		}
	} else {
		keys = uniqueSorted(keys)
		rk := make([]string, 0, 2*len(keys))
		for _, k := range keys {
			rk = append(rk, c.itemPrefix(scope)+esc(k))
		}
		for _, k := range keys {
			rk = append(rk, c.metaPrefix(scope)+esc(k))
		}
		vals, err := c.link.client.MGet(ctx, rk...).Result()
		if err != nil {
			return nil, c.link.Fail(ctx, "get configuration", err)
		}
		for i, k := range keys {
			raw, ok := vals[i].(string)
			if !ok {
				continue
			}
			m, _ := vals[len(keys)+i].(string)
			if it, ok := item(scope, esc(k), raw, m); ok {
				out = append(out, it)
			}
		}
	}
	slices.SortFunc(out, func(a, b component.ConfigItem) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

func uniqueSorted(keys []string) []string {
	keys = slices.Clone(keys)
	slices.Sort(keys)
	return slices.Compact(keys)
}

// saveScript checks every expected version, then writes every item with
// a new version from the counter, updates the scopes' indexes and
// publishes the changes per scope; all of it atomically.
//
// KEYS: the version counter, then per item: item key, meta key, index key.
// ARGV per item: escaped key, channel, expected version ("" for none, else
// "=" and the version), content, meta JSON ("" for none).
var saveScript = goredis.NewScript(`
local n = (#KEYS - 1) / 3
local function version(raw)
  local pos
  local from = 1
  while true do
    local i = string.find(raw, '||', from, true)
    if not i then break end
    pos = i
    from = i + 1
  end
  if not pos then return '' end
  return string.sub(raw, pos + 2)
end
for i = 0, n - 1 do
  local exp = ARGV[5*i + 3]
  if exp ~= '' then
    local raw = redis.pcall('get', KEYS[3*i + 2])
    if type(raw) ~= 'string' or version(raw) ~= string.sub(exp, 2) then
      return {'mismatch', tostring(i)}
    end
  end
end
local out = {'ok'}
local changes, order = {}, {}
for i = 0, n - 1 do
  local a = 5*i
  local v = string.format('%.0f', redis.call('incr', KEYS[1]))
  redis.call('set', KEYS[3*i + 2], ARGV[a + 4] .. '||' .. v)
  if ARGV[a + 5] == '' then
    redis.call('del', KEYS[3*i + 3])
  else
    redis.call('set', KEYS[3*i + 3], ARGV[a + 5])
  end
  redis.call('sadd', KEYS[3*i + 4], ARGV[a + 1])
  local ch = ARGV[a + 2]
  if not changes[ch] then
    changes[ch] = {}
    table.insert(order, ch)
  end
  table.insert(changes[ch], {k = ARGV[a + 1], v = v, c = ARGV[a + 4], m = ARGV[a + 5]})
  table.insert(out, v)
end
for _, ch in ipairs(order) do
  redis.call('publish', ch, cjson.encode(changes[ch]))
end
return out
`)

// Save stores items atomically with new versions.
func (c *Config) Save(ctx context.Context, items []component.ConfigItem) ([]component.ConfigItem, error) {
	if c.link.client == nil {
		return nil, errNotStarted
	}
	if len(items) == 0 {
		return nil, nil
	}
	keys := make([]string, 0, 1+3*len(items))
	args := make([]any, 0, 5*len(items))
	keys = append(keys, c.versionKey())
	for i := range items {
		it := &items[i]
		s := it.Scope()
		m, err := encodeMeta(it)
		if err != nil {
			return nil, fmt.Errorf("save configuration: %w", err)
		}
		exp := ""
		if it.Version != "" {
			exp = "=" + it.Version
		}
		keys = append(keys, c.itemPrefix(s)+esc(it.Key), c.metaPrefix(s)+esc(it.Key), c.indexKey(s))
		args = append(args, esc(it.Key), c.channel(s), exp, it.Content, m)
	}
	res, err := saveScript.Run(ctx, c.link.client, keys, args...).StringSlice()
	if err != nil {
		return nil, c.link.Fail(ctx, "save configuration", err)
	}
	if len(res) == 2 && res[0] == "mismatch" {
		i, _ := strconv.Atoi(res[1])
		it := items[min(i, len(items)-1)]
		return nil, fmt.Errorf("save configuration %q: %w", it.Key, component.ErrVersionMismatch)
	}
	if len(res) != 1+len(items) || res[0] != "ok" {
		return nil, fmt.Errorf("save configuration: unexpected reply %q", res)
	}
	out := slices.Clone(items)
	for i := range out {
		out[i].Version = res[1+i]
	}
	return out, nil
}

// deleteScript deletes the named keys of one scope and publishes the
// changes. KEYS: per key its item and meta key, then the index.
// ARGV: the channel, then the escaped keys.
var deleteScript = goredis.NewScript(`
local idx = KEYS[#KEYS]
local n = (#KEYS - 1) / 2
local changes = {}
for j = 0, n - 1 do
  local raw = redis.pcall('get', KEYS[2*j + 1])
  if type(raw) == 'string' then
    table.insert(changes, {k = ARGV[j + 2], d = 1, r = raw})
  end
  redis.call('del', KEYS[2*j + 1], KEYS[2*j + 2])
  redis.call('srem', idx, ARGV[j + 2])
end
if #changes > 0 then
  redis.call('publish', ARGV[1], cjson.encode(changes))
end
return #changes
`)

// deleteAllScript deletes every item of one scope and publishes the
// changes. KEYS[1]: the index. ARGV: the channel, the item key prefix,
// the meta key prefix.
var deleteAllScript = goredis.NewScript(`
local members = redis.call('smembers', KEYS[1])
table.sort(members)
local changes = {}
for _, m in ipairs(members) do
  local raw = redis.pcall('get', ARGV[2] .. m)
  if type(raw) == 'string' then
    table.insert(changes, {k = m, d = 1, r = raw})
  end
  redis.call('del', ARGV[2] .. m, ARGV[3] .. m)
end
redis.call('del', KEYS[1])
if #changes > 0 then
  redis.call('publish', ARGV[1], cjson.encode(changes))
end
return #changes
`)

// Delete removes keys of scope (all of them when keys is empty).
func (c *Config) Delete(ctx context.Context, scope component.ConfigScope, keys []string) (int, error) {
	if c.link.client == nil {
		return 0, errNotStarted
	}
	var (
		n   int64
		err error
	)
	if len(keys) == 0 {
		n, err = deleteAllScript.Run(ctx, c.link.client, []string{c.indexKey(scope)},
			c.channel(scope), c.itemPrefix(scope), c.metaPrefix(scope)).Int64()
	} else {
		keys = uniqueSorted(keys)
		rk := make([]string, 0, 2*len(keys)+1)
		args := make([]any, 0, len(keys)+1)
		args = append(args, c.channel(scope))
		for _, k := range keys {
			rk = append(rk, c.itemPrefix(scope)+esc(k), c.metaPrefix(scope)+esc(k))
			args = append(args, esc(k))
		}
		rk = append(rk, c.indexKey(scope))
		n, err = deleteScript.Run(ctx, c.link.client, rk, args...).Int64()
	}
	if err != nil {
		return 0, c.link.Fail(ctx, "delete configuration", err)
	}
	return int(n), nil
}

// change is one change as the scripts publish it.
type change struct {
	Key     string `json:"k"`
	Version string `json:"v"`
	Content string `json:"c"`
	Meta    string `json:"m"`
	Deleted int    `json:"d"`
	Raw     string `json:"r"`
}

// Subscribe reports changes to scope made through Mecha (the scripts
// publish them); after a lost connection it reads the scope again and
// reports what changed meanwhile.
func (c *Config) Subscribe(ctx context.Context, scope component.ConfigScope, keys []string, fn func([]component.ConfigChange)) error {
	if c.link.client == nil {
		return errNotStarted
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !c.subs.Enter() {
		return errNotStarted
	}
	sub := &configSub{c: c, scope: scope, t: configsub.NewTracker(scope, keys), fn: fn, done: make(chan struct{})}
	if err := sub.subscribe(ctx); err != nil {
		c.subs.Leave()
		return err
	}
	go sub.run(ctx)
	return nil
}

// configSub is one subscription.
type configSub struct {
	c     *Config
	scope component.ConfigScope
	// t tracks the versions the subscriber knows, to tell what changed
	// across a lost connection.
	t    *configsub.Tracker
	fn   func([]component.ConfigChange)
	done chan struct{}

	mu sync.Mutex
	ps *goredis.PubSub // nil once the subscription has ended
}

// subscribe subscribes, waits for Redis to confirm and reads what the
// subscriber knows.
func (s *configSub) subscribe(ctx context.Context) error {
	ps, err := s.open(ctx)
	if err != nil {
		return err
	}
	items, err := s.c.Get(ctx, s.scope, s.t.Keys())
	if err != nil {
		ps.Close()
		return err
	}
	s.t.Reset(items)
	s.ps = ps
	return nil
}

// open subscribes to the scope's channel and waits for the confirmation.
func (s *configSub) open(ctx context.Context) (*goredis.PubSub, error) {
	ps := s.c.link.client.Subscribe(ctx, s.c.channel(s.scope))
	if _, err := ps.ReceiveTimeout(ctx, probeTimeout+time.Second); err != nil {
		ps.Close()
		return nil, s.c.link.Fail(ctx, "subscribe configuration", err)
	}
	return ps, nil
}

// run delivers changes until ctx ends or the store closes.
func (s *configSub) run(ctx context.Context) {
	defer s.c.subs.Leave()
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-ctx.Done():
		case <-s.c.subs.Closing():
		}
		s.mu.Lock()
		close(s.done)
		s.ps.Close()
		s.ps = nil
		s.mu.Unlock()
	}()
	defer func() { <-stopped }()
	pinged := false
	for {
		s.mu.Lock()
		ps := s.ps
		s.mu.Unlock()
		if ps == nil {
			return
		}
		msg, err := ps.ReceiveTimeout(context.Background(), configsub.KeepAlive)
		if s.stopped() {
			return
		}
		var ne net.Error
		switch {
		case err == nil:
			pinged = false
			if m, ok := msg.(*goredis.Message); ok {
				s.deliver(m.Payload)
			}
			continue
		case errors.As(err, &ne) && ne.Timeout() && !pinged:
			// Silent for a while: make sure the connection is alive (the
			// answer comes as a message, within KeepAlive again).
			pinged = true
			if ps.Ping(context.Background()) == nil {
				continue
			}
		}
		// The connection is lost (or a ping went unanswered): subscribe
		// again and read what changed meanwhile.
		pinged = false
		if !s.reconnect(ctx, ps) {
			return
		}
	}
}

// reconnect replaces the lost subscription old and reports what changed
// meanwhile; it retries until it succeeds or the subscription ends.
func (s *configSub) reconnect(ctx context.Context, old *goredis.PubSub) bool {
	old.Close()
	backoff := 50 * time.Millisecond
	for {
		if !configsub.Sleep(s.done, backoff) {
			return false
		}
		backoff = min(2*backoff, 2*time.Second)
		ps, err := s.open(ctx)
		if err != nil {
			continue
		}
		s.mu.Lock()
		if s.ps == nil {
			s.mu.Unlock()
			ps.Close()
			return false
		}
		s.ps = ps
		s.mu.Unlock()
		if s.resync(ctx) {
			return true
		}
		ps.Close()
	}
}

func (s *configSub) stopped() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// deliver reports the changes of one published message.
func (s *configSub) deliver(payload string) {
	var chs []change
	if err := json.Unmarshal([]byte(payload), &chs); err != nil {
		s.c.link.Logger().Warn("configuration change not understood", "component", s.c.link.Name(), "err", err)
		return
	}
	var out []component.ConfigChange
	for _, ch := range chs {
		raw := ch.Content + "||" + ch.Version
		if ch.Deleted != 0 {
			raw = ch.Raw
		}
		it, ok := item(s.scope, ch.Key, raw, ch.Meta)
		if !ok || !s.t.Wants(it.Key) {
			continue
		}
		if c := (component.ConfigChange{Deleted: ch.Deleted != 0, Item: it}); s.t.Accept(c) {
			out = append(out, c)
		}
	}
	s.report(out)
}

func (s *configSub) report(out []component.ConfigChange) {
	if len(out) > 0 && !s.stopped() {
		s.fn(out)
	}
}

// resync reads the subscribed items again after a lost connection and
// reports, as a summary, what changed meanwhile: deletions (by key), then
// updates in the order of their versions.
func (s *configSub) resync(ctx context.Context) bool {
	items, err := s.c.Get(ctx, s.scope, s.t.Keys())
	if err != nil {
		return false
	}
	deleted, updated := s.t.Resync(items)
	s.c.link.Logger().Info("configuration subscription reconnected", "component", s.c.link.Name(),
		"deleted", len(deleted), "updated", len(updated))
	s.report(append(deleted, updated...))
	return true
}
