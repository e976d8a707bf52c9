package redis

import (
	"math/rand/v2"
	"strconv"

	"github.com/mecha-gateway/mecha/frontends/redis/resp"
)

// randomPicks returns indexes into a collection of size n as
// HRANDFIELD/SRANDMEMBER/ZRANDMEMBER do: count > 0 picks distinct
// elements (at most n), count < 0 picks |count| with repetition.
func randomPicks(n int, count int64) []int {
	if n == 0 || count == 0 {
		return nil
	}
	if count < 0 {
		k := -count
		if k > 1<<24 {
			k = 1 << 24
		}
		out := make([]int, k)
		for i := range out {
			out[i] = rand.IntN(n)
		}
		return out
	}
	if count >= int64(n) {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	}
	perm := rand.Perm(n)
	return perm[:count]
}

// scanCollection answers HSCAN/SSCAN/ZSCAN. Mecha returns the whole
// collection in one call (cursor 0), which Redis itself does for small
// collections and SCAN's guarantees allow for any.
func (c *call) scanCollection(items [][2][]byte, pairs bool) {
	if _, err := strconv.ParseUint(string(c.args[2]), 10, 64); err != nil {
		c.errorMsg(errInvalidCur)
		return
	}
	var match []byte
	for i := 3; i < len(c.args); i += 2 {
		if i+1 >= len(c.args) {
			c.syntax()
			return
		}
		switch lower(c.args[i]) {
		case "match":
			match = c.args[i+1]
		case "count":
			n, ok := parseIntArg(c.args[i+1])
			if !ok {
				c.errorMsg(errNotInt)
				return
			}
			if n < 1 {
				c.syntax()
				return
			}
		default:
			c.syntax()
			return
		}
	}
	var keep [][2][]byte
	for _, it := range items {
		if match == nil || resp.Match(match, it[0], false) {
			keep = append(keep, it)
		}
	}
	c.array(2)
	c.bulkStr("0")
	if pairs {
		c.array(2 * len(keep))
	} else {
		c.array(len(keep))
	}
	for _, it := range keep {
		c.bulk(it[0])
		if pairs {
			c.bulk(it[1])
		}
	}
}
