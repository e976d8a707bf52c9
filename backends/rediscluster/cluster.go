// Package rediscluster is the `type: redis-cluster` backend: a Redis
// Cluster that the Redis frontend serves as if it were one Redis server.
// Mecha discovers which node serves each of the 16384 hash slots, sends
// every command to the node of its keys, follows MOVED and ASK
// redirections itself, splits multi-key commands across slots where Redis'
// semantics allow it and fans out the commands that concern the whole
// keyspace (SCAN, KEYS, DBSIZE, FLUSHALL ...). Each node is reached the way
// a `type: redis` backend reaches its server: a few shared, multiplexed
// connections, and a pool of dedicated ones for transactions, blocking
// commands and pub/sub.
package rediscluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/backends/metrics"
	"github.com/mecha-gateway/mecha/backends/redis"
	"github.com/mecha-gateway/mecha/configs"
	"github.com/mecha-gateway/mecha/frontends/redis/resp"
)

func init() {
	backends.RegisterType("redis-cluster", DefaultConfig, func(c *Config, env backends.Env) (backends.Backend, error) {
		return New(c, env)
	})
}

// Config is the `type: redis-cluster` backend's configuration.
type Config struct {
	backends.Base `yaml:",inline"`
	// Servers are some of the cluster's nodes (host:port): Mecha asks
	// them for the cluster's layout and finds the others from it.
	Servers []string `yaml:"servers"`
	// RefreshInterval is how often the layout is read again when nothing
	// (a redirection, a node that fails) asks for it sooner.
	RefreshInterval configs.Duration `yaml:"refresh_interval"`
	// MaxRedirects bounds the MOVED/ASK redirections followed for one
	// command before its client gets the last one.
	MaxRedirects int `yaml:"max_redirects"`
	// Options are the connection settings of every node, as for
	// `type: redis`.
	redis.Options `yaml:",inline"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() *Config {
	return &Config{
		RefreshInterval: configs.Duration(10 * time.Second),
		MaxRedirects:    5,
		Options:         redis.DefaultOptions(),
	}
}

// Validate checks the values (Options checks its own).
func (c *Config) Validate() error {
	var errs []error
	if len(c.Servers) == 0 {
		errs = append(errs, configs.Errorf("servers", "at least one node is required"))
	}
	for i, s := range c.Servers {
		if err := configs.CheckAddr(fmt.Sprintf("servers[%d]", i), s); err != nil {
			errs = append(errs, err)
		}
	}
	if c.RefreshInterval <= 0 {
		errs = append(errs, configs.Errorf("refresh_interval", "must be positive"))
	}
	if c.MaxRedirects < 0 || c.MaxRedirects > 100 {
		errs = append(errs, configs.Errorf("max_redirects", "must be between 0 and 100"))
	}
	return errors.Join(errs...)
}

// node is one master of the cluster.
type node struct {
	addr string
	*redis.Backend
	retired atomic.Bool // no longer in the layout
}

// layout is the cluster's slot map at one moment.
type layout struct {
	// slots maps each slot to its master. A MOVED reply updates one in
	// place, ahead of the next full refresh.
	slots [NumSlots]atomic.Pointer[node]
	// masters serving slots, ordered by their first slot: the order SCAN
	// walks them in.
	masters []*node
	// any serves commands without keys.
	any *node
}

// Backend is a Redis Cluster.
type Backend struct {
	cfg    *Config
	name   string
	log    *slog.Logger
	health backends.HealthCell

	layout atomic.Pointer[layout]

	nodesMu sync.Mutex
	nodes   map[string]*node // every node started, by address

	refreshMu   sync.Mutex // one refresh at a time
	lastRefresh atomic.Int64
	refreshReq  chan struct{}
	stop        chan struct{}
	done        sync.WaitGroup
	closed      atomic.Bool

	redirects   metrics.Counter
	refreshes   metrics.Counter
	refreshErrs metrics.Counter
	crossSlot   metrics.Counter
}

var (
	_ backends.RESPPassthrough = (*Backend)(nil)
	_ backends.RESPRouter      = (*Backend)(nil)
	_ metrics.Collector        = (*Backend)(nil)
)

// New builds the backend; it connects in Start.
func New(cfg *Config, env backends.Env) (*Backend, error) {
	b := &Backend{
		cfg:        cfg,
		name:       env.Name,
		log:        env.Logger,
		nodes:      map[string]*node{},
		refreshReq: make(chan struct{}, 1),
		stop:       make(chan struct{}),
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	// Building the seed nodes checks their settings (TLS files ...) now.
	for _, s := range cfg.Servers {
		if _, err := b.newNode(s); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// newNode builds the node for addr without starting it.
func (b *Backend) newNode(addr string) (*node, error) {
	nc := &redis.Config{Addr: addr, Options: b.cfg.Options}
	nc.Type = "redis"
	rb, err := redis.New(nc, backends.Env{Name: b.name, Logger: b.log.With("node", addr)})
	if err != nil {
		return nil, err
	}
	rb.SetMetricLabel(metrics.Label{Name: "node", Value: addr})
	return &node{addr: addr, Backend: rb}, nil
}

// nodeFor returns the started node for addr, starting it if it is new.
func (b *Backend) nodeFor(ctx context.Context, addr string) (*node, error) {
	b.nodesMu.Lock()
	defer b.nodesMu.Unlock()
	if n := b.nodes[addr]; n != nil {
		n.retired.Store(false)
		return n, nil
	}
	if b.closed.Load() {
		return nil, fmt.Errorf("%w: backend closed", backends.ErrUnavailable)
	}
	n, err := b.newNode(addr)
	if err != nil {
		return nil, err
	}
	if err := n.Start(ctx); err != nil {
		return nil, err
	}
	b.nodes[addr] = n
	return n, nil
}

// Start reads the cluster's layout. A cluster that cannot be reached is
// not an error: the backend reports DOWN and keeps trying.
func (b *Backend) Start(ctx context.Context) error {
	if err := b.refresh(ctx); err != nil {
		b.health.Set(backends.StateDown, err.Error())
		b.log.Warn("cluster layout unavailable", "err", err)
	}
	b.done.Add(1)
	go b.refreshLoop()
	return nil
}

// Close closes every node's connections.
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	close(b.stop)
	b.done.Wait()
	b.nodesMu.Lock()
	nodes := b.nodes
	b.nodes = map[string]*node{}
	b.nodesMu.Unlock()
	for _, n := range nodes {
		n.Close()
	}
	return nil
}

// Health is UP when every slot has a master that is up.
func (b *Backend) Health() backends.Health { return b.health.Get() }

// Databases is 1: a cluster has database 0 only.
func (b *Backend) Databases() int { return 1 }

// Version is the Redis version of the nodes.
func (b *Backend) Version() string {
	if l := b.layout.Load(); l != nil && l.any != nil {
		return l.any.Version()
	}
	return "7.0.0"
}

// Flush sends every deferred request on every node.
func (b *Backend) Flush() {
	if l := b.layout.Load(); l != nil {
		for _, n := range l.masters {
			n.Flush()
		}
	}
}

// requestRefresh asks the refresh loop to read the layout again soon.
func (b *Backend) requestRefresh() {
	select {
	case b.refreshReq <- struct{}{}:
	default:
	}
}

// minRefreshGap spaces refreshes that redirections ask for: during a
// resharding every command of a moved slot asks.
const minRefreshGap = 100 * time.Millisecond

func (b *Backend) refreshLoop() {
	defer b.done.Done()
	health := time.NewTicker(b.cfg.HealthInterval.D())
	defer health.Stop()
	next := time.Now().Add(b.cfg.RefreshInterval.D())
	for {
		select {
		case <-b.stop:
			return
		case <-health.C:
			// The nodes check themselves; a master found down is a
			// reason to look for the replica that replaces it.
			l := b.layout.Load()
			if l == nil || b.updateHealth(l) || time.Now().Before(next) {
				continue
			}
		case <-b.refreshReq:
			if wait := minRefreshGap - time.Duration(time.Now().UnixNano()-b.lastRefresh.Load()); wait > 0 {
				select {
				case <-b.stop:
					return
				case <-time.After(wait):
				}
			}
		}
		next = time.Now().Add(b.cfg.RefreshInterval.D())
		ctx, cancel := context.WithTimeout(context.Background(), b.cfg.DialTimeout.D()+b.cfg.ReadTimeout.D())
		if err := b.refresh(ctx); err != nil {
			b.log.Warn("cluster layout refresh failed", "err", err)
		}
		cancel()
	}
}

// refresh reads the layout (CLUSTER SLOTS) from the first node that
// answers: the nodes of the current layout, then the configured ones.
func (b *Backend) refresh(ctx context.Context) error {
	b.refreshMu.Lock()
	defer b.refreshMu.Unlock()
	b.lastRefresh.Store(time.Now().UnixNano())
	b.refreshes.Inc()
	var candidates []string
	if l := b.layout.Load(); l != nil {
		for _, n := range l.masters {
			candidates = append(candidates, n.addr)
		}
		rand.Shuffle(len(candidates), func(i, j int) { candidates[i], candidates[j] = candidates[j], candidates[i] })
	}
	for _, s := range b.cfg.Servers {
		if !slices.Contains(candidates, s) {
			candidates = append(candidates, s)
		}
	}
	var errs []error
	for _, addr := range candidates {
		n, err := b.nodeFor(ctx, addr)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ranges, err := clusterSlots(ctx, n)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
			continue
		}
		if err := b.apply(ctx, ranges); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
			continue
		}
		return nil
	}
	b.refreshErrs.Inc()
	err := fmt.Errorf("%w: no node gave the cluster layout: %w", backends.ErrUnavailable, errors.Join(errs...))
	b.health.Set(backends.StateDown, err.Error())
	return err
}

// slotRange is one line of CLUSTER SLOTS: slots from..to served by the
// master at addr.
type slotRange struct {
	from, to int
	addr     string
}

// clusterSlots asks n for the slot map.
func clusterSlots(ctx context.Context, n *node) ([]slotRange, error) {
	out, err := backends.Exchange(ctx, n, 0, resp.AppendCommandStrings(nil, "CLUSTER", "SLOTS"), 1)
	if err != nil {
		return nil, err
	}
	v, _, err := resp.DecodeValue(out)
	if err != nil {
		return nil, err
	}
	if v.IsError() {
		return nil, fmt.Errorf("CLUSTER SLOTS: %s", v.Str)
	}
	var ranges []slotRange
	for _, e := range v.Array {
		if len(e.Array) < 3 || len(e.Array[2].Array) < 2 {
			return nil, errors.New("CLUSTER SLOTS: malformed reply")
		}
		host := string(e.Array[2].Array[0].Str)
		port := e.Array[2].Array[1].Int
		if host == "" || host == "?" {
			// A node that does not know its own address answers with an
			// empty host: it is the node that was asked.
			host, _, _ = strings.Cut(n.addr, ":")
			if i := strings.LastIndexByte(n.addr, ':'); i >= 0 {
				host = n.addr[:i]
			}
		}
		r := slotRange{from: int(e.Array[0].Int), to: int(e.Array[1].Int), addr: joinHostPort(host, port)}
		if r.from < 0 || r.to >= NumSlots || r.from > r.to {
			return nil, fmt.Errorf("CLUSTER SLOTS: bad range %d-%d", r.from, r.to)
		}
		ranges = append(ranges, r)
	}
	return ranges, nil
}

func joinHostPort(host string, port int64) string {
	if strings.IndexByte(host, ':') >= 0 {
		return "[" + host + "]:" + strconv.FormatInt(port, 10)
	}
	return host + ":" + strconv.FormatInt(port, 10)
}

// apply installs a new layout, starting nodes it names for the first
// time and retiring those it no longer names.
func (b *Backend) apply(ctx context.Context, ranges []slotRange) error {
	l := &layout{}
	first := map[*node]int{}
	for _, r := range ranges {
		n, err := b.nodeFor(ctx, r.addr)
		if err != nil {
			return err
		}
		for s := r.from; s <= r.to; s++ {
			l.slots[s].Store(n)
		}
		if f, ok := first[n]; !ok || r.from < f {
			first[n] = r.from
		}
	}
	for n := range first {
		l.masters = append(l.masters, n)
	}
	sort := func(a, c *node) int { return first[a] - first[c] }
	slices.SortFunc(l.masters, sort)
	if len(l.masters) > 0 {
		l.any = l.masters[0]
	}
	old := b.layout.Swap(l)
	b.retire(l)
	b.updateHealth(l)
	if old == nil || !sameMasters(old, l) {
		b.log.Info("cluster layout", "masters", len(l.masters), "slots_served", served(l))
	}
	return nil
}

func sameMasters(a, c *layout) bool {
	return slices.Equal(a.masters, c.masters)
}

func served(l *layout) int {
	n := 0
	for i := range l.slots {
		if l.slots[i].Load() != nil {
			n++
		}
	}
	return n
}

// retire closes, after a grace period for the requests in flight, the
// nodes the layout no longer names.
func (b *Backend) retire(l *layout) {
	b.nodesMu.Lock()
	defer b.nodesMu.Unlock()
	for addr, n := range b.nodes {
		if slices.Contains(l.masters, n) || slices.Contains(b.cfg.Servers, addr) {
			continue
		}
		if !n.retired.Swap(true) {
			time.AfterFunc(30*time.Second, func() {
				b.nodesMu.Lock()
				defer b.nodesMu.Unlock()
				if n.retired.Load() && b.nodes[addr] == n {
					delete(b.nodes, addr)
					n.Close()
				}
			})
		}
	}
}

// updateHealth is UP when every slot is served by a master that is up.
// It reports whether that is so.
func (b *Backend) updateHealth(l *layout) bool {
	var down []string
	for _, n := range l.masters {
		if n.Health().State == backends.StateDown {
			down = append(down, n.addr)
		}
	}
	missing := NumSlots - served(l)
	switch {
	case missing > 0:
		b.health.Set(backends.StateDown, fmt.Sprintf("%d slots have no master", missing))
	case len(down) > 0:
		b.health.Set(backends.StateDown, "masters down: "+strings.Join(down, ", "))
	default:
		b.health.Set(backends.StateUp, "")
		return true
	}
	return false
}

// CollectMetrics exports the cluster's and every node's metrics.
func (b *Backend) CollectMetrics(w *metrics.Writer) {
	l := metrics.Label{Name: "backend", Value: b.name}
	w.Counter("mecha_cluster_redirects_total", "MOVED and ASK redirections Mecha followed.", float64(b.redirects.Load()), l)
	w.Counter("mecha_cluster_refreshes_total", "Reads of the cluster's slot map.", float64(b.refreshes.Load()), l)
	w.Counter("mecha_cluster_refresh_errors_total", "Reads of the slot map that no node answered.", float64(b.refreshErrs.Load()), l)
	w.Counter("mecha_cluster_crossslot_total", "Commands refused because their keys are in different slots.", float64(b.crossSlot.Load()), l)
	if lay := b.layout.Load(); lay != nil {
		w.Gauge("mecha_cluster_masters", "Masters serving slots.", float64(len(lay.masters)), l)
		w.Gauge("mecha_cluster_slots_served", "Slots with a master (16384 when the cluster is whole).", float64(served(lay)), l)
	}
	b.nodesMu.Lock()
	nodes := make([]*node, 0, len(b.nodes))
	for _, n := range b.nodes {
		nodes = append(nodes, n)
	}
	b.nodesMu.Unlock()
	slices.SortFunc(nodes, func(a, c *node) int { return strings.Compare(a.addr, c.addr) })
	for _, n := range nodes {
		n.CollectMetrics(w)
	}
}
