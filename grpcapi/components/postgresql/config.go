package postgresql

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/configs"
	"github.com/mecha-gateway/mecha/grpcapi/component"
	"github.com/mecha-gateway/mecha/grpcapi/components/internal/configsub"
)

func init() {
	component.RegisterType(component.CapConfig, "postgresql", DefaultConfigConfig, NewConfig)
}

// Mecha's metadata keys of the configuration store.
const (
	mdKeyPrefix   = "keyPrefix"
	mdCreateTable = "createTable"
	mdChannel     = "pgNotifyChannel"
)

// defaultConfigTable is the table when metadata names none.
const defaultConfigTable = "mecha_configuration"

// configTableRE is what contrib accepts as a configuration table (lower
// case: contrib checks the table exists by its unquoted name).
var configTableRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// ConfigConfig is the `type: postgresql` configuration store's
// configuration: everything is in metadata, as contrib's
// configuration/postgres names it, plus keyPrefix and createTable.
type ConfigConfig struct {
	component.Base `yaml:",inline"`
}

// DefaultConfigConfig returns the defaults.
func DefaultConfigConfig() *ConfigConfig { return &ConfigConfig{} }

// Validate checks the metadata.
func (c *ConfigConfig) Validate() error {
	_, err := parseConfigSettings(c.Metadata)
	return err
}

type configSettings struct {
	*settings
	prefix  string
	create  bool
	channel string
}

func parseConfigSettings(md map[string]string) (*configSettings, error) {
	s, err := parseSettings(md, defaultConfigTable, configTableRE, mdKeyPrefix, mdCreateTable, mdChannel)
	if err != nil {
		return nil, err
	}
	cs := &configSettings{settings: s, prefix: "mecha", channel: bareName(s.table)}
	var errs []error
	if v, ok := s.own[mdKeyPrefix]; ok {
		if v == "" {
			errs = append(errs, configs.Errorf("metadata."+mdKeyPrefix, "must not be empty"))
		}
		cs.prefix = v
	}
	if v, ok := s.own[mdCreateTable]; ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, configs.Errorf("metadata."+mdCreateTable, "must be true or false"))
		}
		cs.create = b
	}
	if v, ok := s.own[mdChannel]; ok {
		if v == "" || len(v) > 63 {
			errs = append(errs, configs.Errorf("metadata."+mdChannel, "must be 1 to 63 bytes long"))
		}
		cs.channel = v
	}
	return cs, errors.Join(errs...)
}

// Config is a configuration store on PostgreSQL. Items live in the table
// contrib's configuration/postgres reads (key, value, version, metadata),
// so a Dapr sidecar with that component reads what Mecha saves; changes
// are reported from the table's NOTIFY trigger (the one contrib's
// documentation shows, or Mecha's own with createTable). Each item is one
// row whose key is
//
//	<keyPrefix>/<app>/<group>/<label>/<key>
//
// with every name escaped to contrib's key alphabet [a-zA-Z0-9./_]: a byte
// outside [a-zA-Z0-9.] becomes _ and two hex digits ("/" is _2F, "_" is
// _5F). Versions are PostgreSQL transaction ids (txid_current() of the
// saving transaction): they increase per item, across deletes too.
type Config struct {
	s    *configSettings
	link *link
	subs configsub.Gate
}

var _ component.ConfigStore = (*Config)(nil)

// NewConfig builds a configuration store; nothing connects until Start.
func NewConfig(c *ConfigConfig, env component.Env) (*Config, error) {
	s, err := parseConfigSettings(c.Metadata)
	if err != nil {
		return nil, err
	}
	cfg := &Config{s: s}
	cfg.link = newLink(env, s.settings, "config", cfg.prepare)
	return cfg, nil
}

// Start connects; when PostgreSQL is down it still succeeds, reporting
// DOWN until the server answers and the table is there.
func (c *Config) Start(ctx context.Context) error { return c.link.start(ctx) }

// Health reports whether the server answers and the table exists.
func (c *Config) Health() backends.Health { return c.link.Health() }

// Close ends subscriptions and releases the connections.
func (c *Config) Close() error {
	c.subs.Close()
	c.link.close()
	return nil
}

func (c *Config) table() string { return quoteIdent(c.s.table) }

// prepare creates the table and trigger (createTable) or checks that the
// table exists.
func (c *Config) prepare(ctx context.Context) error {
	if !c.s.create {
		var exists bool
		if err := c.link.pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", c.table()).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return fmt.Errorf("table %s does not exist: create it (see the README) or set createTable: \"true\"", c.s.table)
		}
		return nil
	}
	return pgx.BeginFunc(ctx, c.link.pool, func(tx pgx.Tx) error {
		fn := quoteIdent(bareName(c.s.table) + "_mecha_notify")
		if len(bareName(c.s.table)) > 63-len("_mecha_notify") {
			fn = quoteIdent("mecha_notify_" + strconv.FormatUint(fnv64(c.s.table), 16))
		}
		stmts := []string{
			// Concurrent CREATE ... IF NOT EXISTS can fail; one Mecha at a time.
			fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", int64(fnv64("mecha-ddl\x00"+c.s.table))),
			`CREATE TABLE IF NOT EXISTS ` + c.table() + ` (
				key VARCHAR COLLATE "C" NOT NULL PRIMARY KEY,
				value VARCHAR NOT NULL,
				version VARCHAR NOT NULL,
				metadata JSON)`,
			`CREATE OR REPLACE FUNCTION ` + fn + `() RETURNS TRIGGER AS $$
			DECLARE
				r RECORD;
				payload TEXT;
				n INTEGER;
			BEGIN
				IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
				payload := json_build_object('table', TG_TABLE_NAME, 'action', TG_OP, 'data', row_to_json(r))::text;
				IF octet_length(payload) <= 7900 THEN
					PERFORM pg_notify(` + quoteLiteral(c.s.channel) + `, payload);
				ELSE
					-- Too large for one notification (8000 bytes): send it in
					-- parts, which a transaction's notifications keep together.
					n := (char_length(payload) + 1499) / 1500;
					FOR i IN 0..n-1 LOOP
						PERFORM pg_notify(` + quoteLiteral(c.s.channel) + `, json_build_object('table', TG_TABLE_NAME,
							'action', TG_OP, 'part', i, 'parts', n, 'chunk', substr(payload, i*1500 + 1, 1500))::text);
					END LOOP;
				END IF;
				RETURN NULL;
			END;
			$$ LANGUAGE plpgsql`,
			`DROP TRIGGER IF EXISTS mecha_notify ON ` + c.table(),
			`CREATE TRIGGER mecha_notify AFTER INSERT OR UPDATE OR DELETE ON ` + c.table() +
				` FOR EACH ROW EXECUTE PROCEDURE ` + fn + `()`,
		}
		for _, q := range stmts {
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("create table %s: %w", c.s.table, err)
			}
		}
		return nil
	})
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func fnv64(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// esc escapes a name to [a-zA-Z0-9._]: other bytes (and _) become _XX.
func esc(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '.' {
			b.WriteByte(ch)
			continue
		}
		fmt.Fprintf(&b, "_%02X", ch)
	}
	return b.String()
}

func unesc(s string) (string, bool) {
	if !strings.Contains(s, "_") {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '_' {
			b.WriteByte(s[i])
			continue
		}
		if i+3 > len(s) {
			return "", false
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", false
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), true
}

// scopePrefix is the row key of scope's items up to the item's key.
func (c *Config) scopePrefix(s component.ConfigScope) string {
	return esc(c.s.prefix) + "/" + esc(s.AppID) + "/" + esc(s.Group) + "/" + esc(s.Label) + "/"
}

// RowKey is the key column of an item: what a Dapr application reading
// through contrib's configuration/postgres asks for.
func (c *Config) RowKey(s component.ConfigScope, key string) string {
	return c.scopePrefix(s) + esc(key)
}

// itemKey returns the item key of a row key of scope.
func (c *Config) itemKey(s component.ConfigScope, rowKey string) (string, bool) {
	rest, ok := strings.CutPrefix(rowKey, c.scopePrefix(s))
	if !ok || strings.Contains(rest, "/") {
		return "", false
	}
	return unesc(rest)
}

// The metadata column is a flat JSON object of strings (what contrib
// reads): tags are kept as "mecha.tag.<name>", metadata as itself, or as
// "mecha.meta.<name>" when its name starts with "mecha.".
const (
	tagPrefix   = "mecha.tag."
	metaPrefix  = "mecha.meta."
	mechaPrefix = "mecha."
)

func encodeMeta(it *component.ConfigItem) ([]byte, error) {
	if len(it.Tags) == 0 && len(it.Metadata) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(it.Tags)+len(it.Metadata))
	for k, v := range it.Tags {
		m[tagPrefix+k] = v
	}
	for k, v := range it.Metadata {
		if strings.HasPrefix(k, mechaPrefix) {
			k = metaPrefix + k
		}
		m[k] = v
	}
	return json.Marshal(m)
}

func decodeMeta(it *component.ConfigItem, m map[string]any) {
	for k, v := range m {
		s, ok := v.(string)
		if !ok {
			b, _ := json.Marshal(v)
			s = string(b)
		}
		switch {
		case strings.HasPrefix(k, tagPrefix):
			if it.Tags == nil {
				it.Tags = map[string]string{}
			}
			it.Tags[k[len(tagPrefix):]] = s
		default:
			k = strings.TrimPrefix(k, metaPrefix)
			if it.Metadata == nil {
				it.Metadata = map[string]string{}
			}
			it.Metadata[k] = s
		}
	}
}

// likePrefix is a LIKE pattern matching every string starting with p.
func likePrefix(p string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(p) + "%"
}

// Get returns the items of scope named in keys, or all of them.
func (c *Config) Get(ctx context.Context, scope component.ConfigScope, keys []string) ([]component.ConfigItem, error) {
	if c.link.pool == nil {
		return nil, errNotStarted
	}
	octx, cancel := c.link.op(ctx)
	defer cancel()
	var (
		rows pgx.Rows
		err  error
	)
	sel := "SELECT key, value, version, metadata::text FROM " + c.table()
	if len(keys) == 0 {
		rows, err = c.link.pool.Query(octx, sel+` WHERE key LIKE $1`, likePrefix(c.scopePrefix(scope)))
	} else {
		rk := make([]string, len(keys))
		for i, k := range keys {
			rk[i] = c.RowKey(scope, k)
		}
		rows, err = c.link.pool.Query(octx, sel+` WHERE key = ANY($1)`, rk)
	}
	if err != nil {
		return nil, c.link.Fail(ctx, "get configuration", err)
	}
	byKey := map[string]component.ConfigItem{}
	for rows.Next() {
		var rowKey, value, version string
		var metaText *string
		if err := rows.Scan(&rowKey, &value, &version, &metaText); err != nil {
			rows.Close()
			return nil, c.link.Fail(ctx, "get configuration", err)
		}
		k, ok := c.itemKey(scope, rowKey)
		if !ok {
			continue
		}
		it := component.ConfigItem{AppID: scope.AppID, Group: scope.Group, Label: scope.Label, Key: k, Content: value, Version: version}
		if metaText != nil {
			var m map[string]any
			if json.Unmarshal([]byte(*metaText), &m) == nil {
				decodeMeta(&it, m)
			}
		}
		// Several rows of one key (a table without a primary key): the
		// highest version wins, as in contrib.
		if old, dup := byKey[k]; dup && !configsub.Newer(it.Version, old.Version) {
			continue
		}
		byKey[k] = it
	}
	if err := rows.Err(); err != nil {
		return nil, c.link.Fail(ctx, "get configuration", err)
	}
	out := slices.Collect(maps.Values(byKey))
	slices.SortFunc(out, func(a, b component.ConfigItem) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// lockRows takes transaction-level advisory locks on row keys, in one
// order (so that two transactions never wait for each other), so that a
// save's version check and write are not interleaved with another's.
func (c *Config) lockRows(ctx context.Context, tx pgx.Tx, rowKeys []string) error {
	ids := make([]int64, 0, len(rowKeys))
	for _, k := range rowKeys {
		ids = append(ids, int64(fnv64(c.s.table+"\x00"+k)))
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	b := &pgx.Batch{}
	for _, id := range ids {
		b.Queue("SELECT pg_advisory_xact_lock($1)", id)
	}
	return tx.SendBatch(ctx, b).Close()
}

// Save stores items atomically with a new version.
func (c *Config) Save(ctx context.Context, items []component.ConfigItem) ([]component.ConfigItem, error) {
	if c.link.pool == nil {
		return nil, errNotStarted
	}
	if len(items) == 0 {
		return nil, nil
	}
	rowKeys := make([]string, len(items))
	metas := make([][]byte, len(items))
	for i := range items {
		rowKeys[i] = c.RowKey(items[i].Scope(), items[i].Key)
		m, err := encodeMeta(&items[i])
		if err != nil {
			return nil, fmt.Errorf("save configuration: %w", err)
		}
		metas[i] = m
	}
	octx, cancel := c.link.op(ctx)
	defer cancel()
	var version string
	var mismatch error
	err := pgx.BeginFunc(octx, c.link.pool, func(tx pgx.Tx) error {
		if err := c.lockRows(octx, tx, rowKeys); err != nil {
			return err
		}
		cur := map[string]string{}
		rows, err := tx.Query(octx, "SELECT key, version FROM "+c.table()+" WHERE key = ANY($1)", rowKeys)
		if err != nil {
			return err
		}
		for rows.Next() {
			var k, v string
			if err := rows.Scan(&k, &v); err != nil {
				rows.Close()
				return err
			}
			if old, dup := cur[k]; !dup || configsub.Newer(v, old) {
				cur[k] = v
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for i, it := range items {
			if it.Version == "" {
				continue
			}
			if v, ok := cur[rowKeys[i]]; !ok || v != it.Version {
				mismatch = fmt.Errorf("save configuration %q: %w", it.Key, component.ErrVersionMismatch)
				return mismatch
			}
		}
		// The locks are held: no transaction that saves these rows
		// later can have an older id.
		if err := tx.QueryRow(octx, "SELECT txid_current()::text").Scan(&version); err != nil {
			return err
		}
		for i, it := range items {
			tag, err := tx.Exec(octx, "UPDATE "+c.table()+" SET value = $2, version = $3, metadata = $4::json WHERE key = $1",
				rowKeys[i], it.Content, version, nullJSON(metas[i]))
			if err != nil {
				return err
			}
			if tag.RowsAffected() > 0 {
				continue
			}
			if _, err := tx.Exec(octx, "INSERT INTO "+c.table()+" (key, value, version, metadata) VALUES ($1, $2, $3, $4::json)",
				rowKeys[i], it.Content, version, nullJSON(metas[i])); err != nil {
				return err
			}
		}
		return nil
	})
	if mismatch != nil {
		return nil, mismatch
	}
	if err != nil {
		return nil, c.link.Fail(ctx, "save configuration", err)
	}
	out := slices.Clone(items)
	for i := range out {
		out[i].Version = version
	}
	return out, nil
}

func nullJSON(b []byte) any {
	if b == nil {
		return nil
	}
	return string(b)
}

// Delete removes keys of scope (all of them when keys is empty).
func (c *Config) Delete(ctx context.Context, scope component.ConfigScope, keys []string) (int, error) {
	if c.link.pool == nil {
		return 0, errNotStarted
	}
	octx, cancel := c.link.op(ctx)
	defer cancel()
	n := 0
	err := pgx.BeginFunc(octx, c.link.pool, func(tx pgx.Tx) error {
		var rowKeys []string
		if len(keys) == 0 {
			rows, err := tx.Query(octx, "SELECT DISTINCT key FROM "+c.table()+" WHERE key LIKE $1", likePrefix(c.scopePrefix(scope)))
			if err != nil {
				return err
			}
			rowKeys, err = pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return err
			}
			// Only this scope's rows (a LIKE prefix cannot tell a
			// deeper key apart).
			rowKeys = slices.DeleteFunc(rowKeys, func(k string) bool { _, ok := c.itemKey(scope, k); return !ok })
		} else {
			for _, k := range keys {
				rowKeys = append(rowKeys, c.RowKey(scope, k))
			}
		}
		if len(rowKeys) == 0 {
			return nil
		}
		slices.Sort(rowKeys)
		rowKeys = slices.Compact(rowKeys)
		if err := c.lockRows(octx, tx, rowKeys); err != nil {
			return err
		}
		rows, err := tx.Query(octx, "DELETE FROM "+c.table()+" WHERE key = ANY($1) RETURNING key", rowKeys)
		if err != nil {
			return err
		}
		deleted, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		slices.Sort(deleted)
		n = len(slices.Compact(deleted))
		return nil
	})
	if err != nil {
		return 0, c.link.Fail(ctx, "delete configuration", err)
	}
	return n, nil
}

// Subscribe reports changes to scope: the table's trigger notifies every
// insert, update and delete (made through Mecha or not) on the channel,
// and a dedicated connection listens to it. After a lost connection the
// subscription reads the scope again and reports what changed meanwhile.
func (c *Config) Subscribe(ctx context.Context, scope component.ConfigScope, keys []string, fn func([]component.ConfigChange)) error {
	if c.link.pool == nil {
		return errNotStarted
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !c.subs.Enter() {
		return errNotStarted
	}
	sub := &configSub{c: c, scope: scope, t: configsub.NewTracker(scope, keys), fn: fn}
	sctx, cancel := context.WithCancel(ctx)
	sub.ctx, sub.cancel = sctx, cancel
	if err := sub.listen(ctx); err != nil {
		cancel()
		c.subs.Leave()
		return err
	}
	items, err := c.Get(ctx, scope, sub.t.Keys())
	if err != nil {
		sub.conn.Close(context.Background())
		cancel()
		c.subs.Leave()
		return err
	}
	sub.t.Reset(items)
	go sub.run()
	return nil
}

type configSub struct {
	c     *Config
	scope component.ConfigScope
	// t tracks the versions the subscriber knows, to tell what changed
	// across a lost connection.
	t      *configsub.Tracker
	fn     func([]component.ConfigChange)
	ctx    context.Context
	cancel context.CancelFunc
	conn   *pgx.Conn
	// parts collects a payload sent in parts.
	parts    strings.Builder
	nextPart int
}

// listen opens the subscription's connection and listens to the channel.
func (s *configSub) listen(ctx context.Context) error {
	octx, cancel := s.c.link.op(ctx)
	defer cancel()
	conn, err := pgx.ConnectConfig(octx, s.c.s.pool.ConnConfig.Copy())
	if err != nil {
		return s.c.link.Fail(ctx, "subscribe configuration", err)
	}
	if _, err := conn.Exec(octx, "LISTEN "+quoteIdent(s.c.s.channel)); err != nil {
		conn.Close(context.Background())
		return s.c.link.Fail(ctx, "subscribe configuration", err)
	}
	s.conn = conn
	s.parts.Reset()
	s.nextPart = -1
	return nil
}

func (s *configSub) run() {
	defer s.c.subs.Leave()
	defer s.cancel()
	go func() {
		select {
		case <-s.ctx.Done():
		case <-s.c.subs.Closing():
			s.cancel()
		}
	}()
	defer func() {
		if s.conn != nil {
			s.conn.Close(context.Background())
		}
	}()
	backoff := 50 * time.Millisecond
	for {
		wctx, wcancel := context.WithTimeout(s.ctx, configsub.KeepAlive)
		n, err := s.conn.WaitForNotification(wctx)
		wcancel()
		if s.ctx.Err() != nil {
			return
		}
		if err == nil {
			s.deliver(n.Payload)
			continue
		}
		if errors.Is(err, context.DeadlineExceeded) && !s.conn.IsClosed() {
			// Silent for a while: make sure the connection is alive
			// (notifications that come meanwhile are kept by pgx).
			pctx, pcancel := context.WithTimeout(s.ctx, probeTimeout)
			err = s.conn.Ping(pctx)
			pcancel()
			if err == nil {
				continue
			}
		}
		// The connection is lost: connect again, listen, and read what
		// changed meanwhile.
		s.c.link.Logger().Warn("configuration subscription lost its connection", "component", s.c.link.Name(), "err", err)
		s.conn.Close(context.Background())
		s.conn = nil
		for s.conn == nil {
			if !configsub.Sleep(s.ctx.Done(), backoff) {
				return
			}
			backoff = min(2*backoff, 2*time.Second)
			if s.listen(s.ctx) != nil {
				continue
			}
			if !s.resync() {
				s.conn.Close(context.Background())
				s.conn = nil
			}
		}
		backoff = 50 * time.Millisecond
	}
}

// notification is the trigger's payload (the format of contrib's
// documentation).
type notification struct {
	Table  string         `json:"table"`
	Action string         `json:"action"`
	Data   map[string]any `json:"data"`
	// A payload too large for one notification comes in parts (Mecha's
	// trigger): part (from 0) of parts, each with a chunk of the payload.
	Part  int    `json:"part"`
	Parts int    `json:"parts"`
	Chunk string `json:"chunk"`
}

func (s *configSub) deliver(payload string) {
	var n notification
	if err := json.Unmarshal([]byte(payload), &n); err != nil {
		return
	}
	if n.Parts > 0 {
		if n.Part == 0 {
			s.parts.Reset()
		} else if n.Part != s.nextPart {
			s.parts.Reset()
			s.nextPart = -1
			return
		}
		s.parts.WriteString(n.Chunk)
		s.nextPart = n.Part + 1
		if n.Part < n.Parts-1 {
			return
		}
		whole := s.parts.String()
		s.parts.Reset()
		s.nextPart = -1
		n = notification{}
		if err := json.Unmarshal([]byte(whole), &n); err != nil {
			return
		}
	}
	if n.Data == nil {
		return
	}
	if n.Table != "" && n.Table != bareName(s.c.s.table) {
		return
	}
	rowKey, _ := n.Data["key"].(string)
	k, ok := s.c.itemKey(s.scope, rowKey)
	if !ok || !s.t.Wants(k) {
		return
	}
	it := component.ConfigItem{AppID: s.scope.AppID, Group: s.scope.Group, Label: s.scope.Label, Key: k}
	it.Version, _ = n.Data["version"].(string)
	value, hasValue := n.Data["value"].(string)
	it.Content = value
	if m, ok := n.Data["metadata"].(map[string]any); ok {
		decodeMeta(&it, m)
	}
	deleted := strings.EqualFold(n.Action, "DELETE")
	if !s.t.News(k, it.Version, deleted) {
		return
	}
	if deleted {
		s.t.Forget(k)
		s.report([]component.ConfigChange{{Deleted: true, Item: it}})
		return
	}
	if !hasValue {
		// A trigger that sends keys only: read the row.
		items, err := s.c.Get(s.ctx, s.scope, []string{k})
		if err != nil {
			return
		}
		if len(items) == 0 {
			// Deleted since: its deletion is reported next.
			s.t.Note(k, it.Version)
			return
		}
		it = items[0]
	}
	s.t.Note(k, it.Version)
	s.report([]component.ConfigChange{{Item: it}})
}

func (s *configSub) report(out []component.ConfigChange) {
	if len(out) > 0 && s.ctx.Err() == nil {
		s.fn(out)
	}
}

// resync reads the subscribed items again and reports, as a summary,
// what changed while the connection was lost: deletions, then updates in
// version order.
func (s *configSub) resync() bool {
	items, err := s.c.Get(s.ctx, s.scope, s.t.Keys())
	if err != nil {
		return false
	}
	deleted, updated := s.t.Resync(items)
	s.c.link.Logger().Info("configuration subscription reconnected", "component", s.c.link.Name(),
		"deleted", len(deleted), "updated", len(updated))
	s.report(append(deleted, updated...))
	return true
}
