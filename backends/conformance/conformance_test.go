// Package conformance runs one suite of Redis behaviour against every
// backend the Redis frontend serves, comparing each reply, byte for byte
// after normalisation, with a real redis-server's reply to the same
// commands. A backend runs the scripts whose features it claims; where it
// must differ from Redis, the script says so and why.
package conformance

import (
	"bufio"
	"fmt"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mecha-gateway/mecha/backends/kv"
	"github.com/mecha-gateway/mecha/backends/memcached/memcachedtest"
	"github.com/mecha-gateway/mecha/backends/redis/redistest"
	"github.com/mecha-gateway/mecha/cmd/mecha/app/apptest"
	"github.com/mecha-gateway/mecha/frontends/redis/resp"
)

// target is a backend behind Mecha's Redis frontend.
type target struct {
	name     string
	addr     string
	features kv.Feature
	// differs lists scripts (by name) whose replies the backend is known
	// to give differently, with the reason.
	differs map[string]string
	// tag, when set, is put before every key of every command (for the
	// reference too), so that all of a script's keys share a Redis
	// Cluster hash tag and slot.
	tag string
}

// tagKeys returns args with tag put before each argument that is a key,
// as Redis Cluster finds keys (resp.Keys).
func tagKeys(args []string, tag string) []string {
	if tag == "" {
		return args
	}
	b := make([][]byte, len(args))
	for i, a := range args {
		b[i] = []byte(a)
	}
	keys := resp.Keys(resp.Lookup(b[0]), b, nil)
	out := append([]string(nil), args...)
	for _, k := range keys {
		for i := range b {
			if len(k) > 0 && len(b[i]) > 0 && &k[0] == &b[i][0] {
				out[i] = tag + args[i]
			}
		}
	}
	return out
}

const all kv.Feature = 1<<31 - 1

// env starts the reference redis-server and every target once per test
// binary run.
func startTargets(t *testing.T) (ref string, targets []target) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	reference := redistest.Start(t)
	upstream := redistest.Start(t)
	mc1, mc2 := memcachedtest.Start(t), memcachedtest.Start(t)
	cluster := redistest.StartCluster(t, 3, 0)
	m := apptest.Start(t, fmt.Sprintf(`
admin: {listen: ""}
data_dir: %s
frontends:
  - {name: passthrough, protocol: redis, listen: "127.0.0.1:0", backend: upstream}
  - {name: embedded, protocol: redis, listen: "127.0.0.1:0", backend: store}
  - {name: memcached, protocol: redis, listen: "127.0.0.1:0", backend: memo}
  - {name: cluster, protocol: redis, listen: "127.0.0.1:0", backend: cluster}
backends:
  upstream: {type: redis, addr: %s}
  store: {type: embedded, fsync: "no"}
  memo: {type: memcached, servers: [%s, %s]}
  cluster: {type: redis-cluster, servers: ["%s"]}
`, t.TempDir(), upstream.Addr(), mc1.Addr(), mc2.Addr(), cluster.Nodes[0].Addr()))
	targets = []target{
		{name: "redis passthrough", addr: apptest.Addr(t, m, "passthrough"), features: all},
		{name: "embedded", addr: apptest.Addr(t, m, "embedded"), features: all &^ featureStreams},
		// Two servers, so that multi-key commands span both.
		{name: "memcached", addr: apptest.Addr(t, m, "memcached"), features: kv.FeatureTTL | kv.FeatureTTLRead,
			differs: map[string]string{
				"strings-ttl": "EXAT 4102444800 (2100) is past the last expiry Memcached can hold (its exptime is a signed 32-bit " +
					"Unix time: 2038-01-19), so EXPIRETIME answers 2147483647; strings-expire covers the rest with dates before 2038",
			}},
		// Three masters: the scripts' keys fall on all of them, and a
		// command whose keys are in different slots gets what Redis
		// Cluster answers.
		{name: "redis-cluster", addr: apptest.Addr(t, m, "cluster"), features: all &^ kv.FeatureMultiDB,
			differs: map[string]string{
				"strings-basic":                     crossSlot + " (MSETNX)",
				"strings-append-getdel-set-options": crossSlot + " (MSETNX)",
				"bits":                              crossSlot + " (BITOP)",
				"keys-basic":                        crossSlot + " (RENAME)",
				"keys-expire":                       crossSlot + " (RENAME)",
				"lists":                             crossSlot + " (LMOVE)",
				"sets":                              crossSlot + " (SINTER)",
				"zsets":                             crossSlot + " (ZRANGESTORE)",
				"transactions":                      crossSlot + " (MSET in MULTI)",
				"blocking-immediate":                crossSlot + " (BLPOP on two lists)",
			}},
		// The same scripts with every key under one hash tag, as cluster
		// users write multi-key commands: all of them run.
		{name: "redis-cluster {tag}", addr: apptest.Addr(t, m, "cluster"), features: all &^ kv.FeatureMultiDB, tag: "{t}"},
	}
	for _, name := range randomScripts {
		targets[3].differs[name] = crossSlot + " (the random scripts' MGET, RENAME, SINTER ... over keys in several slots)"
	}
	return reference.Addr(), targets
}

// crossSlot is why a script fails on Redis Cluster with keys in several
// slots.
const crossSlot = "a multi-key command Redis Cluster cannot split gets -CROSSSLOT when its keys are in different slots, as from the cluster itself"

// featureStreams marks scripts that use streams, which only a real Redis
// serves.
const featureStreams kv.Feature = 1 << 30

// conn is a raw connection that sends commands and reads replies.
type conn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialConn(t *testing.T, addr string) *conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &conn{t: t, c: c, r: bufio.NewReader(c)}
}

func (c *conn) do(args []string) resp.Value {
	c.t.Helper()
	c.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.c.Write([]byte(redistest.Command(args...))); err != nil {
		c.t.Fatal(err)
	}
	raw, err := redistest.ReadReply(c.r)
	if err != nil {
		c.t.Fatalf("%v: %v", args, err)
	}
	v, _, err := resp.DecodeValue([]byte(raw))
	if err != nil {
		c.t.Fatalf("%v: decode %q: %v", args, raw, err)
	}
	return v
}

// step is one command of a script and how to compare its reply.
type step struct {
	args []string
	how  compare
}

type compare uint8

const (
	exact     compare = iota
	unordered         // an array whose order is not defined (SMEMBERS, HGETALL ...)
	pairs             // an array of pairs whose order is not defined (HGETALL)
	shape             // only the type and length (random choices)
	ttl               // an integer that may differ by one (TTL rounding)
	scanPairs         // [cursor, [field, value ...]] with the pairs in any order
	scanSet           // [cursor, [member ...]] in any order
	skip              // not compared (time, ids)
)

// script is a sequence of commands run on a fresh database.
type script struct {
	name  string
	needs kv.Feature
	steps []step
}

func s(how compare, args ...string) step { return step{args: args, how: how} }
func x(args ...string) step              { return step{args: args, how: exact} }

// render turns a reply into a comparable string.
func render(v resp.Value, how compare) string {
	switch how {
	case skip:
		return "(skipped)"
	case shape:
		if v.Type == '*' {
			return fmt.Sprintf("%c len %d null %v", v.Type, len(v.Array), v.Null)
		}
		return fmt.Sprintf("%c null %v", v.Type, v.Null)
	case ttl:
		if v.Type == ':' && v.Int > 0 {
			return ":~" // positive; rounding may differ by one
		}
	case unordered:
		if v.Type == '*' {
			var parts []string
			for _, e := range v.Array {
				parts = append(parts, render(e, exact))
			}
			sort.Strings(parts)
			return "*unordered[" + strings.Join(parts, ",") + "]"
		}
	case scanPairs, scanSet:
		if v.Type == '*' && len(v.Array) == 2 {
			inner := pairs
			if how == scanSet {
				inner = unordered
			}
			return "*scan[" + render(v.Array[0], exact) + "," + render(v.Array[1], inner) + "]"
		}
	case pairs:
		if v.Type == '*' {
			var parts []string
			for i := 0; i+1 < len(v.Array); i += 2 {
				parts = append(parts, render(v.Array[i], exact)+"="+render(v.Array[i+1], exact))
			}
			sort.Strings(parts)
			return "*pairs[" + strings.Join(parts, ",") + "]"
		}
	}
	switch v.Type {
	case '*':
		if v.Null {
			return "*nil"
		}
		parts := make([]string, len(v.Array))
		for i, e := range v.Array {
			parts[i] = render(e, exact)
		}
		return "*[" + strings.Join(parts, ",") + "]"
	case '$':
		if v.Null {
			return "$nil"
		}
		return fmt.Sprintf("$%q", v.Str)
	case ':':
		return fmt.Sprintf(":%d", v.Int)
	}
	return fmt.Sprintf("%c%s", v.Type, v.Str)
}

func TestConformance(t *testing.T) {
	ref, targets := startTargets(t)
	refConn := dialConn(t, ref)
	for _, tg := range targets {
		tc := dialConn(t, tg.addr)
		for _, sc := range scripts {
			if sc.needs&^tg.features != 0 {
				continue
			}
			t.Run(tg.name+"/"+sc.name, func(t *testing.T) {
				if why, ok := tg.differs[sc.name]; ok {
					t.Skip(why)
				}
				refConn.t, tc.t = t, t
				refConn.do([]string{"FLUSHALL"})
				tc.do([]string{"FLUSHALL"})
				refConn.do([]string{"SELECT", "0"})
				tc.do([]string{"SELECT", "0"})
				for i, st := range sc.steps {
					args := tagKeys(st.args, tg.tag)
					want := render(refConn.do(args), st.how)
					got := render(tc.do(args), st.how)
					if got != want {
						t.Fatalf("step %d %q:\n got %s\nwant %s", i, args, got, want)
					}
				}
			})
		}
	}
}
