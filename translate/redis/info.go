package redis

import (
	"context"
	"fmt"
	"runtime"
	"strings"

	"github.com/mecha-gateway/mecha/backends/kv"
)

// InfoSections returns the INFO sections the store can report (memory,
// persistence, stats, replication, keyspace), each as "# Name\r\n..."
// text, for the sections wanted (all when want is empty or has "all",
// "everything" or "default").
func (e *Engine) InfoSections(ctx context.Context, want map[string]bool) []string {
	all := len(want) == 0 || want["all"] || want["everything"] || want["default"]
	var st kv.Stats
	if in, ok := e.store.(kv.Inspector); ok {
		st = in.Stats(ctx)
	}
	var out []string
	add := func(name string, lines ...string) {
		if all || want[strings.ToLower(name)] {
			out = append(out, "# "+name+"\r\n"+strings.Join(lines, "\r\n")+"\r\n")
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	used := ms.HeapAlloc
	if st.UsedMemory > 0 {
		used = st.UsedMemory
	}
	add("Memory",
		fmt.Sprintf("used_memory:%d", used),
		"used_memory_human:"+human(used),
		fmt.Sprintf("used_memory_rss:%d", ms.Sys),
		fmt.Sprintf("used_memory_peak:%d", ms.HeapSys),
		"maxmemory:0",
		"maxmemory_policy:noeviction",
		"mem_allocator:go")
	loading := 0
	add("Persistence",
		fmt.Sprintf("loading:%d", loading),
		"async_loading:0",
		fmt.Sprintf("aof_enabled:%d", boolInt(e.persistent())),
		"aof_rewrite_in_progress:0",
		"rdb_bgsave_in_progress:0",
		"rdb_last_bgsave_status:ok",
		"aof_last_write_status:ok")
	add("Stats",
		fmt.Sprintf("expired_keys:%d", st.ExpiredKeys),
		fmt.Sprintf("evicted_keys:%d", st.EvictedKeys),
		fmt.Sprintf("keyspace_hits:%d", st.KeyspaceHits),
		fmt.Sprintf("keyspace_misses:%d", st.KeyspaceMiss),
		fmt.Sprintf("pubsub_channels:%d", e.hub.numChannels()),
		fmt.Sprintf("pubsub_patterns:%d", e.hub.numPatterns()))
	add("Replication", "role:master", "connected_slaves:0", "master_failover_state:no-failover",
		"master_replid:0000000000000000000000000000000000000000", "master_repl_offset:0")
	var ks []string
	for db, n := range st.Keys {
		if n > 0 {
			ks = append(ks, fmt.Sprintf("db%d:keys=%d,expires=%d,avg_ttl=%d", db, n, st.Expires[db], st.AvgTTL[db]))
		}
	}
	if all || want["keyspace"] {
		out = append(out, "# Keyspace\r\n"+strings.Join(append(ks, ""), "\r\n"))
	}
	return out
}

func (e *Engine) persistent() bool {
	p, ok := e.store.(interface{ Persistent() bool })
	return ok && p.Persistent()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func human(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2fG", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.2fM", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.2fK", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}

func (h *hub) numChannels() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.channels)
}

func (h *hub) numPatterns() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.patterns)
}

// Config returns the store's parameters matching match, for CONFIG GET.
func (e *Engine) Config(match func(string) bool) [][2]string {
	if cf, ok := e.store.(kv.Configurable); ok {
		return cf.ConfigGet(match)
	}
	return nil
}

// SetConfig sets a store parameter; ok false for one the store does not
// have.
func (e *Engine) SetConfig(name, value string) (bool, error) {
	if cf, ok := e.store.(kv.Configurable); ok {
		return cf.ConfigSet(name, value)
	}
	return false, nil
}

// Databases is the store's number of databases.
func (e *Engine) Databases() int { return e.store.Databases() }
