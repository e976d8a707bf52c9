package memcached

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strconv"
)

// Memcached's limits on keys (protocol.txt): 250 bytes on the command
// line, whatever the encoding; a base64 key (the b flag) therefore holds
// at most 186 bytes.
const (
	maxKeyLen    = 250
	maxBinaryKey = maxKeyLen / 4 * 3 // 186: its base64 form is 248 characters
)

// key is a Redis key as it travels to Memcached.
type key struct {
	stored []byte // the item's key in Memcached, which the ring hashes
	token  []byte // what the command line carries: stored, or its base64
	b      bool   // token is base64 (the meta commands' b flag)
}

// hashedMark starts the stored name of keys too long (or empty) for
// Memcached: prefix + "sha256:" + hex(SHA-256(key)).
const hashedMark = "sha256:"

// mapKey turns a Redis key into a Memcached one: key_prefix + key, sent as
// is when Memcached accepts it on the command line, in base64 (b flag)
// when it has spaces or control characters, and replaced by its SHA-256
// when it is empty or longer than Memcached allows.
func mapKey(prefix, k []byte) key {
	n := len(prefix) + len(k)
	stored := make([]byte, 0, n)
	stored = append(append(stored, prefix...), k...)
	plain := plainKey(stored)
	switch {
	case n == 0 || n > maxKeyLen || (!plain && n > maxBinaryKey):
		sum := sha256.Sum256(k)
		stored = append(append(stored[:len(prefix)], hashedMark...), hex.EncodeToString(sum[:])...)
		if plainKey(stored) {
			return key{stored: stored, token: stored}
		}
	case plain:
		return key{stored: stored, token: stored}
	}
	tok := make([]byte, base64.StdEncoding.EncodedLen(len(stored)))
	base64.StdEncoding.Encode(tok, stored)
	return key{stored: stored, token: tok, b: true}
}

// plainKey reports whether k can be sent as is: no spaces, no control
// characters (bytes from 0x80 up are fine: Memcached keys are binary).
func plainKey(k []byte) bool {
	for _, c := range k {
		if c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// Expiry. Memcached expires items at whole seconds of its own clock; Redis
// at milliseconds. Mecha keeps the exact deadline itself, in the item's
// client flags, and asks Memcached to keep the item a little longer (up to
// two seconds): a read after the deadline finds the key gone, as in
// Redis, and Memcached reclaims the item shortly after.
const (
	// expiryMark in the client flags says the other 31 bits are the
	// deadline in Unix milliseconds, modulo 2^31 (about 24.8 days); the
	// item's remaining TTL (mg's t flag) says which period.
	expiryMark = 1 << 31
	expirySpan = 1 << 31
	// maxRelative is the longest exptime Memcached takes as relative
	// (30 days); larger values are absolute Unix times.
	maxRelative = 30 * 24 * 3600
	// maxExptime is the largest exptime Memcached parses (a signed 32-bit
	// number: 2038-01-19 as a Unix time).
	maxExptime = 1<<31 - 1
	// tolerance is how far the deadline in the flags may lie from the one
	// Memcached's TTL implies; farther, the TTL was changed by another
	// client and wins.
	tolerance = 5000
)

// encodeExpiry returns the exptime (0: none) and client flags for an item
// that expires at the Unix millisecond at (0: never), at time now.
func encodeExpiry(at, now int64) (exptime int64, flags uint32) {
	if at == 0 {
		return 0, 0
	}
	rem := max(at-now, 1)
	// Memcached's clock ticks once a second: an exptime of n seconds keeps
	// an item between n-1 and n seconds. One more second keeps it at least
	// until the deadline.
	secs := (rem+999)/1000 + 1
	if secs <= maxRelative {
		exptime = secs
	} else {
		exptime = min(at/1000+2, maxExptime)
	}
	return exptime, expiryMark | uint32(at&(expirySpan-1))
}

// decodeExpiry reads an item's deadline from its client flags and the
// TTL Memcached reports (-1: none) at time now: it returns the deadline
// (0: none) and whether the key is live.
func decodeExpiry(flags uint32, ttl, now int64) (at int64, live bool) {
	if ttl < 0 {
		return 0, true
	}
	est := now + ttl*1000
	if flags&expiryMark != 0 {
		low := int64(flags &^ expiryMark)
		c := est - mod(est, expirySpan) + low
		for _, alt := range [2]int64{c - expirySpan, c + expirySpan} {
			if abs(alt-est) < abs(c-est) {
				c = alt
			}
		}
		if abs(c-est) <= tolerance {
			return c, c > now
		}
	}
	// An item Mecha did not write (or whose TTL another client changed):
	// Memcached's seconds are all there is, and it holds the item, so the
	// key is live.
	return max(est, now+1), true
}

func mod(a, m int64) int64 {
	r := a % m
	if r < 0 {
		r += m
	}
	return r
}

func abs(a int64) int64 {
	if a < 0 {
		return -a
	}
	return a
}

// Command encoding. Every command gets exactly one reply: no quiet mode.

// appendMG encodes `mg <key> [b] <flags>`.
func appendMG(b []byte, k *key, flags string) []byte {
	b = append(b, "mg "...)
	b = appendKey(b, k)
	if flags != "" {
		b = append(b, ' ')
		b = append(b, flags...)
	}
	return append(b, "\r\n"...)
}

// setArgs are ms's options.
type setArgs struct {
	mode    byte   // 0 (set), 'E' (add), 'A' (append)
	cas     uint64 // compare: store only if the item's CAS is this
	exptime int64  // 0: none
	flags   uint32
}

// appendMS encodes `ms <key> <len> [b] [M<mode>] [C<cas>] [T<exptime>]
// [F<flags>]` and the value.
func appendMS(b []byte, k *key, val []byte, a setArgs) []byte {
	b = append(b, "ms "...)
	b = append(b, k.token...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(val)), 10)
	if k.b {
		b = append(b, " b"...)
	}
	if a.mode != 0 {
		b = append(b, " M"...)
		b = append(b, a.mode)
	}
	if a.cas != 0 {
		b = append(b, " C"...)
		b = strconv.AppendUint(b, a.cas, 10)
	}
	if a.exptime != 0 {
		b = append(b, " T"...)
		b = strconv.AppendInt(b, a.exptime, 10)
	}
	if a.flags != 0 {
		b = append(b, " F"...)
		b = strconv.AppendUint(b, uint64(a.flags), 10)
	}
	b = append(b, "\r\n"...)
	b = append(b, val...)
	return append(b, "\r\n"...)
}

// appendMD encodes `md <key> [b] [C<cas>]`.
func appendMD(b []byte, k *key, cas uint64) []byte {
	b = append(b, "md "...)
	b = appendKey(b, k)
	if cas != 0 {
		b = append(b, " C"...)
		b = strconv.AppendUint(b, cas, 10)
	}
	return append(b, "\r\n"...)
}

func appendKey(b []byte, k *key) []byte {
	b = append(b, k.token...)
	if k.b {
		b = append(b, " b"...)
	}
	return b
}
