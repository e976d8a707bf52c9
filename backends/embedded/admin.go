package embedded

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	translate "github.com/mecha-gateway/mecha/translate/redis"
)

func init() {
	// The log is replayed with the Redis translation layer's semantics:
	// the same code that wrote it.
	Replayer = translate.Replay
}

var _ translate.Compactor = (*Store)(nil)

// Persistent reports whether the store keeps a log.
func (s *Store) Persistent() bool { return s.cfg.persistent() }

// Compact rewrites the log now (SAVE, BGSAVE, BGREWRITEAOF); with wait it
// returns once the new log is on disk.
func (s *Store) Compact(ctx context.Context, wait bool) error {
	if s.aof == nil {
		return errors.New("persistence is off for this backend")
	}
	s.mu.Lock()
	if s.aof.rewriting {
		s.mu.Unlock()
		if wait {
			return errors.New("Background append only file rewriting already in progress")
		}
		return nil
	}
	s.aof.startRewrite()
	s.mu.Unlock()
	if !wait {
		return nil
	}
	for {
		s.mu.Lock()
		busy := s.aof.rewriting
		s.mu.Unlock()
		if !busy {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// LastSave is when the log was last compacted (or opened).
func (s *Store) LastSave() time.Time {
	if s.aof == nil {
		return time.Time{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.aof.lastSave
}

// ConfigGet reports the store's parameters, under Redis' names.
func (s *Store) ConfigGet(match func(string) bool) [][2]string {
	appendonly := "no"
	if s.cfg.persistent() {
		appendonly = "yes"
	}
	params := [][2]string{
		{"appendonly", appendonly},
		{"appendfsync", s.cfg.Fsync},
		{"auto-aof-rewrite-min-size", strconv.FormatInt(int64(s.cfg.RewriteMinSize), 10)},
		{"auto-aof-rewrite-percentage", strconv.Itoa(s.cfg.RewritePercentage)},
		{"databases", strconv.Itoa(len(s.dbs))},
		{"dir", s.dir},
		{"save", ""},
		{"maxmemory", "0"},
		{"maxmemory-policy", "noeviction"},
	}
	s.mu.Lock()
	// A value set with CONFIG SET replaces the default, once.
	for k, v := range s.extraConfig {
		i := slices.IndexFunc(params, func(p [2]string) bool { return p[0] == k })
		if i >= 0 {
			params[i][1] = v
		} else {
			params = append(params, [2]string{k, v})
		}
	}
	s.mu.Unlock()
	var out [][2]string
	for _, p := range params {
		if match(p[0]) {
			out = append(out, p)
		}
	}
	return out
}

// settable are parameters clients and test harnesses set that the
// embedded store accepts (and reports back) without acting on them.
var settable = map[string]bool{
	"save": true, "appendonly": true, "maxmemory": true, "maxmemory-policy": true,
	"notify-keyspace-events": true, "lua-time-limit": true, "busy-reply-threshold": true,
	"slowlog-log-slower-than": true, "slowlog-max-len": true, "latency-tracking": true,
	"hz": true, "activedefrag": true, "lazyfree-lazy-user-del": true, "list-max-listpack-size": true,
	"hash-max-listpack-entries": true, "hash-max-listpack-value": true, "set-max-intset-entries": true,
	"zset-max-listpack-entries": true, "zset-max-listpack-value": true,
}

// ConfigSet sets a parameter.
func (s *Store) ConfigSet(name, value string) (bool, error) {
	name = strings.ToLower(name)
	switch name {
	case "appendfsync":
		switch value {
		case "everysec", "always", "no":
			s.mu.Lock()
			s.cfg.Fsync = value
			s.mu.Unlock()
			return true, nil
		}
		return true, errors.New("argument(s) must be one of the following: everysec, always, no")
	case "auto-aof-rewrite-percentage":
		n, err := strconv.Atoi(value)
		if err != nil || n < 0 {
			return true, errors.New("argument couldn't be parsed into an integer")
		}
		s.mu.Lock()
		s.cfg.RewritePercentage = n
		s.mu.Unlock()
		return true, nil
	}
	if !settable[name] {
		return false, nil
	}
	s.mu.Lock()
	if s.extraConfig == nil {
		s.extraConfig = map[string]string{}
	}
	s.extraConfig[name] = value
	s.mu.Unlock()
	return true, nil
}
