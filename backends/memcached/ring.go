package memcached

import (
	"crypto/md5"
	"encoding/binary"
	"math"
	"sort"
	"strconv"
)

// ring is a ketama continuum: each server owns points on a 32-bit circle,
// and a key belongs to the server of the first point at or after the
// key's hash. Adding or removing a server moves only the keys of the arcs
// it gains or loses.
//
// The points are libketama's: a server of weight w out of a total W, with
// n servers, gets floor(w/W * 40 * n) MD5 digests of "<host:port>-<i>", and
// each digest gives four points (its four little-endian 32-bit words): 160
// points per server when the weights are equal. A key hashes to the first
// little-endian word of its MD5. Clients that implement ketama this way
// (libketama, and the ketama modes of libmemcached and spymemcached with
// the same server strings and weights) put every key on the same server.
type ring struct {
	points []point
}

type point struct {
	hash uint32
	srv  int
}

// pointsPerDigest and digestsPerServer give 160 points per server of
// average weight.
const (
	pointsPerDigest  = 4
	digestsPerServer = 40
)

// newRing builds the continuum of servers (host:port strings) with their
// weights.
func newRing(servers []string, weights []int) *ring {
	total := 0
	for _, w := range weights {
		total += w
	}
	r := &ring{}
	n := len(servers)
	for i, s := range servers {
		// libketama computes in single precision.
		pct := float32(weights[i]) / float32(total)
		ks := int(math.Floor(float64(pct * digestsPerServer * float32(n))))
		for k := 0; k < ks; k++ {
			d := md5.Sum([]byte(s + "-" + strconv.Itoa(k)))
			for h := 0; h < pointsPerDigest; h++ {
				r.points = append(r.points, point{hash: binary.LittleEndian.Uint32(d[h*4:]), srv: i})
			}
		}
	}
	sort.Slice(r.points, func(a, b int) bool {
		pa, pb := r.points[a], r.points[b]
		return pa.hash < pb.hash || (pa.hash == pb.hash && pa.srv < pb.srv)
	})
	return r
}

// pick returns the index of the server that owns key.
func (r *ring) pick(key []byte) int {
	if len(r.points) == 0 {
		return 0
	}
	h := hashOf(key)
	i := sort.Search(len(r.points), func(i int) bool { return r.points[i].hash >= h })
	if i == len(r.points) {
		i = 0
	}
	return r.points[i].srv
}

// hashOf is a key's position on the ring.
func hashOf(key []byte) uint32 {
	d := md5.Sum(key)
	return binary.LittleEndian.Uint32(d[:4])
}
