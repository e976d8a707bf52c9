// Package contribpubsub turns a github.com/dapr/components-contrib pub/sub
// component into a Mecha pub/sub component, and registers the types
// redis (Redis streams), rabbitmq, jetstream (NATS JetStream) and mqtt3.
//
// Contrib publishes bytes and calls a handler once per message; the Mecha
// API promises more, which the adapter adds on top of every broker alike:
// message ids (each message travels in a small envelope, see envelope.go),
// consumer groups with several members per Mecha, explicit ack / nack /
// drop with backoff, attempts and dead-letter topics, a bound on messages
// in flight per subscriber, and delayed delivery. The contrib handler of a
// message blocks until a Mecha subscriber settles it, so the broker holds
// the message unacknowledged until then and redelivers it if Mecha dies:
// delivery is at least once.
package contribpubsub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dapr/components-contrib/metadata"
	"github.com/dapr/components-contrib/pubsub"
	"github.com/rs/xid"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/grpcapi/component"
)

// downAfter is how many failed probes in a row close the broker
// connections.
const downAfter = 2

var (
	errClosed = errors.New("pubsub component closed")
	errDown   = errors.New("broker unreachable")
	// errReleased is what a contrib handler returns for a message Mecha
	// hands back to the broker unsettled.
	errReleased = errors.New("message handed back to the broker")
)

// Adapter is a Mecha pub/sub component built on a contrib component.
type Adapter struct {
	drv      *driver
	name     string
	md       map[string]string
	maxHold  time.Duration
	linger   time.Duration
	interval time.Duration
	initWait time.Duration
	instance string
	log      *slog.Logger
	klog     *kitLogger
	health   backends.HealthCell

	mu        sync.Mutex
	pub       *pubConn
	groups    map[groupKey]*group
	detaching map[groupKey]chan struct{}
	closed    bool
	started   bool

	stop      chan struct{}
	probeNow  chan struct{}
	wg        sync.WaitGroup
	pubErrors atomic.Int32 // publishes failed in a row

	// Used by the supervising goroutine only: connection attempts that
	// fail back off, so that a broker refusing Mecha (bad credentials) is
	// not hammered.
	retryAt    time.Time
	retryDelay time.Duration
	retryErr   string
}

// pubConn is the contrib instance that publishes, with a count of the
// calls using it so that it is closed only once they have returned.
type pubConn struct {
	ps    pubsub.PubSub
	users sync.WaitGroup
}

type groupKey struct{ topic, group string }

func newAdapter(drv *driver, cfg *Config, env component.Env) (*Adapter, error) {
	md := props(cfg.Metadata)
	drv.defaults(md)
	if _, err := drv.addrs(md); err != nil {
		return nil, fmt.Errorf("%s pubsub %q: %w", drv.typ, env.Name, err)
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Adapter{
		drv:       drv,
		name:      env.Name,
		md:        md,
		maxHold:   cfg.MaxHold.D(),
		linger:    cfg.GroupLinger.D(),
		interval:  cfg.HealthInterval.D(),
		initWait:  cfg.InitTimeout.D(),
		instance:  instanceName(md, env.Name),
		log:       log,
		klog:      newKitLogger(log),
		groups:    map[groupKey]*group{},
		detaching: map[groupKey]chan struct{}{},
		stop:      make(chan struct{}),
		probeNow:  make(chan struct{}, 1),
	}
	if a.maxHold < 0 {
		a.maxHold = drv.maxHold(md)
	}
	if a.interval <= 0 {
		a.interval = time.Second
	}
	if a.initWait <= 0 {
		a.initWait = 10 * time.Second
	}
	return a, nil
}

// instanceName names this Mecha for client ids that must differ between
// Mecha processes (MQTT): the user's consumerID, or the host and component
// names.
func instanceName(md map[string]string, name string) string {
	if v, ok := prop(md, "consumerID"); ok && v != "" {
		return v
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "host"
	}
	return "mecha-" + host + "-" + name
}

// Start connects to the broker. It returns nil when the broker is down:
// the component reports DOWN and connects by itself once the broker
// answers.
func (a *Adapter) Start(ctx context.Context) error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return errClosed
	}
	if a.started {
		a.mu.Unlock()
		return nil
	}
	a.started = true
	a.wg.Add(1) // before Close can wait
	a.mu.Unlock()
	failures := 0
	a.check(ctx, &failures)
	go a.supervise(failures)
	return nil
}

// supervise probes the broker every interval (and after a failed publish),
// closing the broker connections when it stops answering and reopening
// them when it is back.
func (a *Adapter) supervise(failures int) {
	defer a.wg.Done()
	t := time.NewTicker(a.interval)
	defer t.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-a.stop
		cancel()
	}()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
		case <-a.probeNow:
		}
		a.check(ctx, &failures)
	}
}

func (a *Adapter) check(ctx context.Context, failures *int) {
	err := a.probe(ctx)
	a.mu.Lock()
	connected := a.pub != nil
	a.mu.Unlock()
	if err != nil {
		*failures++
		a.setHealth(backends.StateDown, err.Error())
		if connected && *failures >= downAfter {
			a.disconnect()
		}
		return
	}
	*failures = 0
	if connected && a.pubErrors.Load() >= 3 {
		// The broker answers but publishing keeps failing: the contrib
		// component may have given up on its connection (JetStream's
		// client stops reconnecting after 60 attempts). Open a new one.
		a.log.Warn("pubsub publisher keeps failing; reconnecting", "type", a.drv.typ)
		a.dropPublisher()
		connected = false
	}
	if !connected {
		if time.Now().Before(a.retryAt) {
			a.setHealth(backends.StateDown, a.retryErr)
			return
		}
		if err := a.connect(ctx); err != nil {
			a.retryDelay = min(max(2*a.retryDelay, a.interval), 30*time.Second)
			a.retryAt = time.Now().Add(a.retryDelay)
			a.retryErr = err.Error()
			a.setHealth(backends.StateDown, err.Error())
			return
		}
		a.retryDelay, a.retryAt, a.retryErr = 0, time.Time{}, ""
	}
	a.revive(ctx)
	a.setHealth(backends.StateUp, "")
}

func (a *Adapter) setHealth(s backends.State, detail string) {
	if a.health.Set(s, detail) {
		if s == backends.StateUp {
			a.log.Info("pubsub broker up", "type", a.drv.typ)
		} else {
			a.log.Warn("pubsub broker down", "type", a.drv.typ, "err", detail)
		}
	}
}

// probe dials the broker: a reachable port is what the contrib components
// need to connect (they do not all offer a ping).
func (a *Adapter) probe(ctx context.Context) error {
	addrs, err := a.drv.addrs(a.md)
	if err != nil {
		return err
	}
	var last error
	for _, addr := range addrs {
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		var d net.Dialer
		c, err := d.DialContext(dctx, "tcp", addr)
		cancel()
		if err == nil {
			c.Close()
			return nil
		}
		last = err
	}
	return fmt.Errorf("%w: %w", errDown, last)
}

// connect initialises the publishing instance.
func (a *Adapter) connect(ctx context.Context) error {
	ps, err := a.newInstance(ctx, a.drv.publisher(props(a.md), a.instance))
	if err != nil {
		return err
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		closeQuietly(ps)
		return errClosed
	}
	a.pub = &pubConn{ps: ps}
	a.mu.Unlock()
	a.pubErrors.Store(0)
	return nil
}

// dropPublisher closes the publishing instance (once its users are done).
func (a *Adapter) dropPublisher() {
	a.mu.Lock()
	pc := a.pub
	a.pub = nil
	a.mu.Unlock()
	if pc != nil {
		go func() {
			pc.users.Wait()
			closeQuietly(pc.ps)
		}()
	}
}

// newInstance creates and initialises a contrib component.
func (a *Adapter) newInstance(ctx context.Context, md map[string]string) (pubsub.PubSub, error) {
	ictx, cancel := context.WithTimeout(ctx, a.initWait)
	defer cancel()
	ps := a.drv.newPubSub(a.klog)
	err := ps.Init(ictx, pubsub.Metadata{Base: metadata.Base{Name: a.name, Properties: md}})
	if err != nil {
		// Contrib gap: a failed Init may leave a half-built component whose
		// Close dereferences nil (jetstream); closeQuietly contains that.
		closeQuietly(ps)
		return nil, component.Unavailable(fmt.Errorf("connect %s: %w", a.drv.typ, err))
	}
	return ps, nil
}

// closeQuietly closes a contrib component, surviving the panics some of
// them raise when closed after a failed Init.
func closeQuietly(ps pubsub.PubSub) {
	defer func() { _ = recover() }()
	_ = ps.Close()
}

// disconnect closes every broker connection: groups hand their messages
// back to the broker; subscribers stay open and receive again once the
// broker is back.
func (a *Adapter) disconnect() {
	a.dropPublisher()
	a.mu.Lock()
	groups := make([]*group, 0, len(a.groups))
	for _, g := range a.groups {
		groups = append(groups, g)
	}
	a.mu.Unlock()
	for _, g := range groups {
		g.detach()
	}
}

// revive attaches the groups that have subscribers and no broker
// subscription (after an outage).
func (a *Adapter) revive(ctx context.Context) {
	a.mu.Lock()
	var todo []*group
	for _, g := range a.groups {
		todo = append(todo, g)
	}
	a.mu.Unlock()
	for _, g := range todo {
		if !g.hasMembers() {
			continue
		}
		if err := g.attach(ctx); err != nil {
			a.log.Warn("pubsub resubscribe failed", "topic", g.topic, "group", g.name, "err", err)
		}
	}
}

// Health reports whether the broker answers.
func (a *Adapter) Health() backends.Health { return a.health.Get() }

// Close ends every subscription and closes the broker connections.
func (a *Adapter) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	groups := make([]*group, 0, len(a.groups))
	for _, g := range a.groups {
		groups = append(groups, g)
	}
	a.groups = map[groupKey]*group{}
	pc := a.pub
	a.pub = nil
	a.mu.Unlock()
	close(a.stop)
	a.wg.Wait()
	for _, g := range groups {
		g.shutdown(component.Unavailable(errClosed))
	}
	if pc != nil {
		pc.users.Wait()
		closeQuietly(pc.ps)
	}
	if a.drv.closePrepare != nil {
		a.drv.closePrepare()
	}
	return nil
}

// acquire returns the publishing instance, or nil when the broker is
// down; release it with pc.users.Done().
func (a *Adapter) acquire() *pubConn {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pub == nil {
		return nil
	}
	a.pub.users.Add(1)
	return a.pub
}

func (a *Adapter) unavailable() error {
	a.mu.Lock()
	closed := a.closed
	a.mu.Unlock()
	if closed {
		return component.Unavailable(errClosed)
	}
	h := a.health.Get()
	if h.Detail != "" {
		return component.Unavailable(fmt.Errorf("%w: %s", errDown, h.Detail))
	}
	return component.Unavailable(errDown)
}

func (a *Adapter) prepare(ctx context.Context, topic string) error {
	if a.drv.prepare == nil {
		return nil
	}
	if err := a.drv.prepare(ctx, topic); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return component.Unavailable(fmt.Errorf("prepare topic %s: %w", topic, err))
	}
	return nil
}

// Publish stores each message on topic in an envelope carrying a new id.
// A message has an id only once the contrib component's Publish returned
// nil, which for these types means the broker acknowledged it (RabbitMQ
// with publisher confirms, which Mecha turns on by default).
func (a *Adapter) Publish(ctx context.Context, topic string, msgs []component.OutMessage) []component.PublishResult {
	res := make([]component.PublishResult, len(msgs))
	fail := func(err error) []component.PublishResult {
		for i := range res {
			res[i] = component.PublishResult{Err: err}
		}
		return res
	}
	if err := a.drv.checkTopic(topic); err != nil {
		return fail(err)
	}
	if err := a.prepare(ctx, topic); err != nil {
		return fail(err)
	}
	now := time.Now()
	for i, m := range msgs {
		env := &envelope{
			ID:          xid.New().String(),
			ContentType: m.ContentType,
			Metadata:    m.Metadata,
			PublishTime: now.UnixNano(),
			DeliverAt:   nanos(m.DeliverAt),
			Data:        m.Data,
		}
		env.Copy = env.ID
		if err := a.publish(ctx, topic, env, m.Metadata); err != nil {
			res[i] = component.PublishResult{Err: err}
			continue
		}
		res[i] = component.PublishResult{ID: env.ID}
	}
	return res
}

// publish sends one envelope. md is given to the contrib component as
// request metadata, so that its per-message options (RabbitMQ
// ttlInSeconds, priority, routingKey; MQTT retain) work as in Dapr.
func (a *Adapter) publish(ctx context.Context, topic string, env *envelope, md map[string]string) error {
	data, err := env.encode()
	if err != nil {
		return fmt.Errorf("encode message: %w", err)
	}
	if a.drv.publishMetadata != nil {
		md = a.drv.publishMetadata(md, env.ID)
	}
	pc := a.acquire()
	if pc == nil {
		return a.unavailable()
	}
	defer pc.users.Done()
	err = pc.ps.Publish(ctx, &pubsub.PublishRequest{Data: data, PubsubName: a.name, Topic: topic, Metadata: md})
	if err == nil && ctx.Err() != nil {
		// Contrib bug (rabbitmq): Publish returns nil when ctx ends while
		// it waits to retry, though nothing was published. A message must
		// not be acknowledged unless the broker has it.
		err = ctx.Err()
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		a.pubErrors.Add(1)
		select {
		case a.probeNow <- struct{}{}:
		default:
		}
		return component.Unavailable(fmt.Errorf("publish to %s: %w", topic, err))
	}
	a.pubErrors.Store(0)
	return nil
}

// Subscribe joins spec.Group on spec.Topic. The members of a group in this
// Mecha share one broker subscription; the broker shares the group's
// messages between Mecha processes.
func (a *Adapter) Subscribe(ctx context.Context, spec component.SubscribeSpec) (component.Subscription, error) {
	if err := a.drv.checkTopic(spec.Topic); err != nil {
		return nil, err
	}
	if spec.DeadLetterTopic != "" {
		if err := a.drv.checkTopic(spec.DeadLetterTopic); err != nil {
			return nil, fmt.Errorf("dead letter topic: %w", err)
		}
	}
	if spec.MaxInFlight <= 0 {
		spec.MaxInFlight = 1
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil, component.Unavailable(errClosed)
	}
	if a.pub == nil {
		a.mu.Unlock()
		return nil, a.unavailable()
	}
	key := groupKey{spec.Topic, spec.Group}
	g := a.groups[key]
	if g == nil {
		g = newGroup(a, key, spec.Metadata)
		a.groups[key] = g
	}
	m := g.join(spec)
	a.mu.Unlock()
	if err := a.prepare(ctx, spec.Topic); err != nil {
		m.Close()
		return nil, err
	}
	if err := g.attach(ctx); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// expire removes g once its linger has passed without a new member, and
// hands its messages back to the broker.
func (a *Adapter) expire(g *group) {
	a.mu.Lock()
	if a.groups[g.key] != g || !g.idle() {
		a.mu.Unlock()
		return
	}
	delete(a.groups, g.key)
	done := make(chan struct{})
	a.detaching[g.key] = done
	a.mu.Unlock()
	g.detach()
	a.mu.Lock()
	if a.detaching[g.key] == done {
		delete(a.detaching, g.key)
	}
	a.mu.Unlock()
	close(done)
}

// waitDetached waits until an earlier broker subscription of key is
// closed, so that two never run at once under one client id (MQTT).
func (a *Adapter) waitDetached(ctx context.Context, key groupKey) error {
	a.mu.Lock()
	ch := a.detaching[key]
	a.mu.Unlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

var _ component.PubSub = (*Adapter)(nil)
