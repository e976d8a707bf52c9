package redistest

import (
	"fmt"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mecha-gateway/mecha/frontends/redis/resp"
)

// Cluster is a Redis Cluster of redis-server processes started for a
// test.
type Cluster struct {
	t     testing.TB
	Nodes []*Server
}

// StartCluster starts masters*(1+replicas) redis-servers in cluster mode
// and joins them with `redis-cli --cluster create`, the first masters
// nodes becoming the masters. It returns once every node sees all 16384
// slots served.
func StartCluster(t testing.TB, masters, replicas int) *Cluster {
	t.Helper()
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Fatalf("redis-cli not installed (apt-get install redis-tools): %v", err)
	}
	c := &Cluster{t: t}
	args := []string{"--cluster", "create"}
	n := masters * (1 + replicas)
	ports := FreePorts(t, 2*n) // each node's port and its cluster bus port
	for i := range n {
		s := StartOn(t, ports[i], "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "1000", "--cluster-port", strconv.Itoa(ports[n+i]))
		c.Nodes = append(c.Nodes, s)
		args = append(args, s.Addr())
	}
	if masters < 3 {
		// redis-cli wants three masters: form smaller clusters by hand.
		if replicas > 0 {
			t.Fatal("StartCluster: replicas need at least 3 masters")
		}
		for i, s := range c.Nodes {
			from, to := i*16384/masters, (i+1)*16384/masters-1
			if r := s.Do("CLUSTER", "ADDSLOTSRANGE", strconv.Itoa(from), strconv.Itoa(to)); r != "+OK" {
				t.Fatalf("ADDSLOTSRANGE: %s", r)
			}
			if i > 0 {
				s.Do("CLUSTER", "MEET", "127.0.0.1", strconv.Itoa(c.Nodes[0].Port))
			}
		}
	} else {
		args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
		if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
			t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
		}
	}
	c.WaitHealthy(30 * time.Second)
	return c
}

// Addrs are the nodes' addresses.
func (c *Cluster) Addrs() []string {
	var out []string
	for _, s := range c.Nodes {
		out = append(out, s.Addr())
	}
	return out
}

// WaitHealthy waits until every running node reports cluster_state:ok
// with all slots assigned and agrees on who serves them.
func (c *Cluster) WaitHealthy(within time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok := true
		var layout string
		for _, s := range c.Nodes {
			if s.cmd == nil {
				continue
			}
			info := s.Do("CLUSTER", "INFO")
			if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_ok:16384") {
				ok = false
				break
			}
			l := c.slotsOf(s)
			if layout == "" {
				layout = l
			} else if l != layout {
				ok = false
				break
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("cluster not healthy within %s", within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// slotsOf is s's view of the slot map, as "from-to:master" items.
func (c *Cluster) slotsOf(s *Server) string {
	var b strings.Builder
	for _, r := range c.Slots(s) {
		fmt.Fprintf(&b, "%d-%d:%s;", r.From, r.To, r.Master)
	}
	return b.String()
}

// SlotRange is one row of CLUSTER SLOTS.
type SlotRange struct {
	From, To int
	Master   string // host:port
}

// Slots is the slot map as node s sees it, ordered by slot.
func (c *Cluster) Slots(s *Server) []SlotRange {
	c.t.Helper()
	cl := Dial(c.t, s.Addr())
	defer cl.C.Close()
	raw := cl.Do("CLUSTER", "SLOTS")
	v, _, err := resp.DecodeValue([]byte(raw))
	if err != nil || v.Type != '*' {
		c.t.Fatalf("CLUSTER SLOTS = %q (%v)", raw, err)
	}
	var rows []SlotRange
	for _, e := range v.Array {
		rows = append(rows, SlotRange{From: int(e.Array[0].Int), To: int(e.Array[1].Int),
			Master: fmt.Sprintf("%s:%d", e.Array[2].Array[0].Str, e.Array[2].Array[1].Int)})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].From < rows[j].From })
	return rows
}

// Node returns the running node at addr.
func (c *Cluster) Node(addr string) *Server {
	c.t.Helper()
	for _, s := range c.Nodes {
		if s.Addr() == addr {
			return s
		}
	}
	c.t.Fatalf("no node %s", addr)
	return nil
}

// MasterOf is the node serving slot, as the first running node sees it.
func (c *Cluster) MasterOf(slot int) *Server {
	c.t.Helper()
	for _, s := range c.Nodes {
		if s.cmd == nil {
			continue
		}
		for _, r := range c.Slots(s) {
			if slot >= r.From && slot <= r.To {
				return c.Node(r.Master)
			}
		}
		break
	}
	c.t.Fatalf("slot %d has no master", slot)
	return nil
}

// ID is node s's cluster id.
func (c *Cluster) ID(s *Server) string {
	c.t.Helper()
	return strings.TrimSpace(s.Do("CLUSTER", "MYID"))
}

// MoveSlot migrates slot, with its keys, from its master to node to, the
// way redis-cli --cluster reshard does: IMPORTING/MIGRATING, MIGRATE of
// every key, then SETSLOT NODE on both and on the other masters.
func (c *Cluster) MoveSlot(slot int, to *Server) {
	c.t.Helper()
	from := c.MasterOf(slot)
	if from == to {
		return
	}
	fromID, toID := c.ID(from), c.ID(to)
	sl := strconv.Itoa(slot)
	must := func(s *Server, args ...string) {
		if r := s.Do(args...); strings.HasPrefix(r, "-") {
			c.t.Fatalf("%v on %s: %s", args, s.Addr(), r)
		}
	}
	must(to, "CLUSTER", "SETSLOT", sl, "IMPORTING", fromID)
	must(from, "CLUSTER", "SETSLOT", sl, "MIGRATING", toID)
	c.migrateKeys(slot, from, to)
	must(to, "CLUSTER", "SETSLOT", sl, "NODE", toID)
	must(from, "CLUSTER", "SETSLOT", sl, "NODE", toID)
	for _, s := range c.Nodes {
		if s.cmd != nil && s != from && s != to {
			s.Do("CLUSTER", "SETSLOT", sl, "NODE", toID) // replicas refuse: harmless
		}
	}
	c.WaitHealthy(30 * time.Second)
}

// BeginMove starts migrating slot to node to and moves its keys, leaving
// the slot MIGRATING/IMPORTING (so that its keys are reached through ASK)
// until the returned function finishes the move.
func (c *Cluster) BeginMove(slot int, to *Server) (finish func()) {
	c.t.Helper()
	from := c.MasterOf(slot)
	fromID, toID := c.ID(from), c.ID(to)
	sl := strconv.Itoa(slot)
	to.Do("CLUSTER", "SETSLOT", sl, "IMPORTING", fromID)
	from.Do("CLUSTER", "SETSLOT", sl, "MIGRATING", toID)
	c.migrateKeys(slot, from, to)
	return func() {
		to.Do("CLUSTER", "SETSLOT", sl, "NODE", toID)
		from.Do("CLUSTER", "SETSLOT", sl, "NODE", toID)
		c.WaitHealthy(30 * time.Second)
	}
}

// migrateKeys moves every key of slot from one node to another.
func (c *Cluster) migrateKeys(slot int, from, to *Server) {
	c.t.Helper()
	cl := Dial(c.t, from.Addr())
	defer cl.C.Close()
	for {
		raw := cl.Do("CLUSTER", "GETKEYSINSLOT", strconv.Itoa(slot), "100")
		v, _, err := resp.DecodeValue([]byte(raw))
		if err != nil || v.Type != '*' {
			c.t.Fatalf("GETKEYSINSLOT = %q", raw)
		}
		if len(v.Array) == 0 {
			return
		}
		args := []string{"MIGRATE", "127.0.0.1", strconv.Itoa(to.Port), "", "0", "5000", "KEYS"}
		for _, k := range v.Array {
			args = append(args, string(k.Str))
		}
		if r := cl.Do(args...); strings.HasPrefix(r, "-") {
			c.t.Fatalf("MIGRATE: %s", r)
		}
	}
}

// Failover kills master m and waits until one of its replicas serves its
// slots and the cluster is healthy again.
func (c *Cluster) Failover(m *Server) {
	c.t.Helper()
	m.Stop()
	c.WaitHealthy(30 * time.Second)
}
