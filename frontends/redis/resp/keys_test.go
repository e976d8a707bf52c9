package resp_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/mecha-gateway/mecha/backends/redis/redistest"
	"github.com/mecha-gateway/mecha/frontends/redis/resp"
)

// TestKeysMatchRedis compares Keys with what a real Redis finds
// (COMMAND GETKEYS), for fixed-position and movable-key commands. (Shard
// channels, which Keys also returns so that SPUBLISH and SSUBSCRIBE reach
// their slot's node, are not keys to GETKEYS.)
func TestKeysMatchRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	s := redistest.Start(t)
	cl := redistest.Dial(t, s.Addr())
	for _, cmd := range []string{
		"GET k", "SET k v EX 10", "MSET a 1 b 2 c 3", "MGET a b c", "DEL a b", "BLPOP l1 l2 0",
		"BLMOVE src dst LEFT RIGHT 0", "RENAME a b", "OBJECT ENCODING k", "XINFO STREAM s",
		"ZUNIONSTORE dst 2 z1 z2 WEIGHTS 1 2", "ZINTER 2 z1 z2", "ZDIFFSTORE d 1 z1",
		"SINTERCARD 2 s1 s2 LIMIT 1", "LMPOP 2 l1 l2 LEFT", "BLMPOP 0 2 l1 l2 LEFT", "BZMPOP 1 1 z MIN",
		"ZMPOP 1 z MAX", "EVAL return 1 2 k1 k2 a1", "EVALSHA abc 0", "FCALL f 1 k a",
		"SORT k BY w_* GET o_* STORE dst", "SORT_RO k", "GEORADIUS g 0 0 10 km STORE d1 STOREDIST d2",
		"GEORADIUSBYMEMBER g m 10 km STORE d1", "XREAD COUNT 1 STREAMS s1 s2 0 0",
		"XREADGROUP GROUP g c STREAMS s1 >", "MIGRATE h 1 k 0 10", "MIGRATE h 1 \"\" 0 10 AUTH p KEYS a b",
		"BITOP AND dst a b", "PFCOUNT a b",
	} {
		args := splitCommand(cmd)
		raw := cl.Do(append([]string{"COMMAND", "GETKEYS"}, args...)...)
		v, _, err := resp.DecodeValue([]byte(raw))
		if err != nil {
			t.Fatalf("%s: %q", cmd, raw)
		}
		var want []string
		if v.Type == '*' {
			for _, e := range v.Array {
				want = append(want, string(e.Str))
			}
		}
		var bargs [][]byte
		for _, a := range args {
			bargs = append(bargs, []byte(a))
		}
		var got []string
		for _, k := range resp.Keys(resp.Lookup(bargs[0]), bargs, nil) {
			got = append(got, string(k))
		}
		if !slices.Equal(got, want) {
			t.Errorf("Keys(%s) = %q, Redis says %q (%s)", cmd, got, want, strings.TrimSpace(raw))
		}
	}
}

// splitCommand splits on spaces, with "" as an empty argument.
func splitCommand(s string) []string {
	var out []string
	for _, f := range strings.Fields(s) {
		if f == `""` {
			f = ""
		}
		out = append(out, f)
	}
	return out
}
