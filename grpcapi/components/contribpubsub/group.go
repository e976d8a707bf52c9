package contribpubsub

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/dapr/components-contrib/pubsub"
	"github.com/rs/xid"

	"github.com/mecha-gateway/mecha/grpcapi/component"
)

// group is one consumer group on one topic in this Mecha: one contrib
// subscription (which the broker treats as a member of the group, see each
// driver) shared by the group's subscribers here.
//
// Every broker message the contrib component hands to the group is a
// delivery. Its handler call blocks until the delivery is finished: acked
// (the handler returns nil and contrib acknowledges the broker message),
// dead-lettered or dropped (likewise, after publishing to the dead letter
// topic), parked (a copy was republished for this group; the original is
// acknowledged) or released (the handler returns an error, so the broker
// keeps the message and delivers it again).
type group struct {
	a     *Adapter
	key   groupKey
	topic string
	name  string
	subMD map[string]string

	attachMu sync.Mutex // serialises attach and detach
	sub      io.Closer  // the broker subscription; nil when detached

	mu      sync.Mutex
	gen     uint64 // bumped by detach: older handlers hand messages back
	seq     uint64
	members []*member
	rr      int
	ready   []*delivery          // due, waiting for a member with room
	held    map[string]*delivery // every unfinished delivery, by copy
	acked   recentSet            // copies settled lately (see handler)
	// acking counts handler calls finished with nil that have not yet
	// returned to contrib (which acknowledges the broker message as soon
	// as they do); lastAck is when the last of them returned.
	acking  int
	lastAck time.Time
	linger  *time.Timer
	dead    bool
}

// delivery is one broker message held by a contrib handler call.
type delivery struct {
	env  *envelope // nil: a non-Mecha payload
	copy string    // identifies the broker message (see envelope.Copy)
	seq  uint64
	msg  component.Message
	// due is when the message may be delivered (zero: now).
	due time.Time
	// since is when the broker handed it over: holding it is bounded from
	// then (Adapter.maxHold).
	since time.Time

	// Under group.mu:
	timer    *time.Timer
	member   *member
	sent     bool // the member's channel took it
	settling bool // dead-lettering in progress
	finished bool
	err      error
	done     chan struct{}
}

func newGroup(a *Adapter, key groupKey, md map[string]string) *group {
	return &group{
		a:     a,
		key:   key,
		topic: key.topic,
		name:  key.group,
		subMD: props(md),
		held:  map[string]*delivery{},
	}
}

// join adds a member.
func (g *group) join(spec component.SubscribeSpec) *member {
	m := &member{
		g:         g,
		spec:      spec,
		out:       make(chan *component.Message),
		wake:      make(chan struct{}, 1),
		done:      make(chan struct{}),
		exited:    make(chan struct{}),
		unsettled: map[string]*delivery{},
	}
	g.mu.Lock()
	if g.linger != nil {
		g.linger.Stop()
		g.linger = nil
	}
	g.members = append(g.members, m)
	g.dispatch()
	g.mu.Unlock()
	go m.pump()
	return m
}

func (g *group) hasMembers() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.members) > 0
}

func (g *group) idle() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.members) == 0
}

// attach opens the group's broker subscription unless it is open.
func (g *group) attach(ctx context.Context) error {
	g.attachMu.Lock()
	defer g.attachMu.Unlock()
	if g.sub != nil {
		return nil
	}
	g.mu.Lock()
	dead, gen := g.dead, g.gen
	g.mu.Unlock()
	if dead {
		return component.Unavailable(errClosed)
	}
	if err := g.a.waitDetached(ctx, g.key); err != nil {
		return err
	}
	md, topic, err := g.a.drv.consumer(props(g.a.md), g.a.instance, g.topic, g.name)
	if err != nil {
		return err
	}
	if sub := g.a.drv.subscribe; sub != nil {
		ictx, cancel := context.WithTimeout(ctx, g.a.initWait)
		defer cancel()
		c, err := sub(ictx, g.a.klog, md, topic, g.handler(gen))
		if err != nil {
			return component.Unavailable(fmt.Errorf("subscribe to %s for group %s: %w", g.topic, g.name, err))
		}
		g.sub = c
		return nil
	}
	ps, err := g.a.newInstance(ctx, md)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(context.Background())
	err = ps.Subscribe(sctx, pubsub.SubscribeRequest{Topic: topic, Metadata: props(g.subMD)}, g.handler(gen))
	if err != nil {
		cancel()
		closeQuietly(ps)
		return fmt.Errorf("subscribe to %s for group %s: %w", g.topic, g.name, err)
	}
	g.sub = &contribSub{ps: ps, cancel: cancel}
	return nil
}

// contribSub is a subscription made through a contrib component.
type contribSub struct {
	ps     pubsub.PubSub
	cancel context.CancelFunc
}

func (c *contribSub) Close() error {
	c.cancel()
	closeQuietly(c.ps)
	return nil
}

// detach closes the broker subscription and hands every message the group
// holds back to the broker.
func (g *group) detach() {
	g.attachMu.Lock()
	defer g.attachMu.Unlock()
	sub := g.sub
	g.sub = nil
	// From here on the handlers hand new messages straight back.
	g.mu.Lock()
	g.gen++
	g.mu.Unlock()
	if sub == nil {
		g.release()
		return
	}
	g.settleAcks()
	// Close first, release after: a released message is nacked, and a
	// broker that requeues it at once (RabbitMQ, JetStream) should find the
	// consumer gone rather than hand it straight back. Close waits for the
	// handlers, which the release ends; a subscription that can stop
	// receiving without waiting for them does so first.
	if st, ok := sub.(interface{ Stop() }); ok {
		st.Stop()
	}
	closed := make(chan struct{})
	go func() {
		_ = sub.Close()
		close(closed)
	}()
	g.release()
	<-closed
}

// settleAcks lets the acks of messages settled just before a detach reach
// the broker before the contrib component closes. Contrib acknowledges a
// broker message after the handler returns, on a connection Close tears
// down without waiting for it (Redis streams closes its client before
// waiting for its workers; RabbitMQ closes the channel): an ack still on
// its way would be lost and the message delivered again.
func (g *group) settleAcks() {
	deadline := time.Now().Add(2 * time.Second)
	for {
		g.mu.Lock()
		n, last := g.acking, g.lastAck
		g.mu.Unlock()
		if n > 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
			continue
		}
		if wait := time.Until(last.Add(50 * time.Millisecond)); wait > 0 {
			time.Sleep(wait)
		}
		return
	}
}

// release hands every message the group holds back to the broker.
func (g *group) release() {
	g.mu.Lock()
	g.gen++
	for _, d := range g.held {
		if d.member != nil {
			d.member.forget(d)
		}
		g.finish(d, errReleased)
	}
	clear(g.ready)
	g.ready = g.ready[:0]
	g.mu.Unlock()
}

// shutdown ends the members with err and detaches (the adapter closes).
func (g *group) shutdown(err error) {
	g.mu.Lock()
	g.dead = true
	if g.linger != nil {
		g.linger.Stop()
		g.linger = nil
	}
	members := g.members
	g.members = nil
	for _, m := range members {
		m.end(err)
	}
	g.mu.Unlock()
	g.detach()
	for _, m := range members {
		<-m.exited
	}
}

// handler is the contrib handler of the attachment numbered gen.
func (g *group) handler(gen uint64) pubsub.Handler {
	return func(_ context.Context, nm *pubsub.NewMessage) error {
		// The contrib context is ignored on purpose: Redis streams cancels
		// it after processingTimeout while Mecha legitimately still holds
		// the message, and every component's Close, which is how Mecha
		// stops a subscription, is matched by a release below.
		d := g.newDelivery(nm)
		if d == nil {
			return nil // a copy addressed to another group
		}
		g.mu.Lock()
		if g.gen != gen || g.dead {
			g.mu.Unlock()
			return errReleased
		}
		if old := g.held[d.copy]; old != nil {
			// The broker redelivered a message Mecha still holds (its
			// redelivery timeout fired), or contrib called the handler
			// twice for one message (mqtt3, see the README): settle both
			// the same way.
			g.mu.Unlock()
			<-old.done
			return old.err
		}
		if g.acked.has(d.copy) {
			// A second call for a message already settled: acknowledge it
			// again rather than deliver it twice.
			g.mu.Unlock()
			return nil
		}
		g.seq++
		d.seq = g.seq
		g.held[d.copy] = d
		g.schedule(d)
		g.mu.Unlock()
		<-d.done
		if d.err == nil {
			g.mu.Lock()
			g.acking--
			g.lastAck = time.Now()
			g.mu.Unlock()
		}
		return d.err
	}
}

func (g *group) newDelivery(nm *pubsub.NewMessage) *delivery {
	d := &delivery{since: time.Now(), done: make(chan struct{})}
	if env, err := decodeEnvelope(nm.Data); err == nil {
		if env.Group != "" && env.Group != g.name {
			return nil
		}
		d.env = env
		d.copy = "e:" + env.Copy
		d.due = unixNano(env.DeliverAt)
		d.msg = component.Message{
			ID:          env.ID,
			Topic:       g.topic,
			Data:        env.Data,
			ContentType: env.ContentType,
			Metadata:    env.Metadata,
			PublishTime: unixNano(env.PublishTime),
			Attempt:     env.Attempt,
		}
		return d
	}
	// A payload of a non-Mecha producer: delivered as it is, with the id
	// the broker gives it (RabbitMQ message-id) or a new one.
	var id, ct string
	if g.a.drv.rawMessage != nil {
		id, ct = g.a.drv.rawMessage(nm.Metadata)
	}
	if id == "" {
		id = xid.New().String()
	}
	d.copy = "r:" + xid.New().String()
	d.msg = component.Message{
		ID:          id,
		Topic:       g.topic,
		Data:        nm.Data,
		ContentType: ct,
		Metadata:    nm.Metadata,
		Attempt:     1,
	}
	return d
}

// schedule makes d ready when it is due, or parks it when holding it until
// then would exceed the hold limit. Called with g.mu held.
func (g *group) schedule(d *delivery) {
	now := time.Now()
	if !d.due.After(now) {
		d.due = time.Time{}
		g.ready = append(g.ready, d)
		g.dispatch()
		return
	}
	if hold := g.a.maxHold; hold > 0 {
		if limit := d.since.Add(hold); d.due.After(limit) {
			d.timer = time.AfterFunc(max(0, limit.Sub(now)), func() { g.park(d) })
			return
		}
	}
	d.timer = time.AfterFunc(d.due.Sub(now), func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if d.finished {
			return
		}
		d.timer = nil
		d.due = time.Time{}
		g.ready = append(g.ready, d)
		g.dispatch()
	})
}

// park republishes d for this group only, with its delivery time and
// attempt, and acknowledges the original: the broker keeps the message
// durably while the hold would otherwise run into its redelivery timeout.
func (g *group) park(d *delivery) {
	g.mu.Lock()
	if d.finished {
		g.mu.Unlock()
		return
	}
	d.timer = nil
	env := d.envelopeFor(g.name)
	env.DeliverAt = nanos(d.due)
	g.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), g.a.initWait)
	err := g.a.publish(ctx, g.topic, env, nil)
	cancel()
	g.mu.Lock()
	defer g.mu.Unlock()
	if d.finished {
		return // released meanwhile: the broker delivers it again, maybe twice
	}
	if err != nil {
		g.a.log.Warn("pubsub park failed; holding the message", "topic", g.topic, "group", g.name, "id", d.msg.ID, "err", err)
		d.timer = time.AfterFunc(2*time.Second, func() { g.park(d) })
		return
	}
	g.finish(d, nil)
}

// envelopeFor returns a new broker copy of d addressed to group (empty:
// to every group). Called with g.mu held.
func (d *delivery) envelopeFor(group string) *envelope {
	return &envelope{
		ID:          d.msg.ID,
		Copy:        xid.New().String(),
		ContentType: d.msg.ContentType,
		Metadata:    d.msg.Metadata,
		PublishTime: nanos(d.msg.PublishTime),
		Attempt:     d.msg.Attempt,
		Group:       group,
		Data:        d.msg.Data,
	}
}

// dispatch hands ready deliveries to members with room, round robin.
// Called with g.mu held.
func (g *group) dispatch() {
	for len(g.ready) > 0 {
		d := g.ready[0]
		m := g.pick(d)
		if m == nil {
			return
		}
		g.ready[0] = nil
		g.ready = g.ready[1:]
		m.assign(d)
	}
}

func (g *group) pick(d *delivery) *member {
	n := len(g.members)
	for i := range n {
		m := g.members[(g.rr+i)%n]
		if !m.closed && len(m.unsettled) < m.spec.MaxInFlight && m.unsettled[d.msg.ID] == nil {
			g.rr = (g.rr + i + 1) % n
			return m
		}
	}
	return nil
}

// finish ends d's handler call: err nil acknowledges the broker message,
// errReleased hands it back. Called with g.mu held.
func (g *group) finish(d *delivery, err error) {
	if d.finished {
		return
	}
	d.finished = true
	d.err = err
	d.member = nil
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	if g.held[d.copy] == d {
		delete(g.held, d.copy)
	}
	if err == nil {
		g.acking++
		if d.env != nil {
			g.acked.add(d.copy, time.Now())
		}
	}
	close(d.done)
}

// recentSet remembers keys for recentWindow, at most recentMax of them.
type recentSet struct {
	at    map[string]time.Time
	order []string
}

const (
	recentWindow = time.Minute
	recentMax    = 10000
)

func (r *recentSet) add(key string, now time.Time) {
	if r.at == nil {
		r.at = map[string]time.Time{}
	}
	for len(r.order) > 0 {
		k := r.order[0]
		if len(r.order) < recentMax && now.Sub(r.at[k]) < recentWindow {
			break
		}
		delete(r.at, k)
		r.order[0] = ""
		r.order = r.order[1:]
	}
	if _, ok := r.at[key]; !ok {
		r.order = append(r.order, key)
	}
	r.at[key] = now
}

func (r *recentSet) has(key string) bool {
	at, ok := r.at[key]
	return ok && time.Since(at) < recentWindow
}

// requeue puts deliveries back at the head of the ready queue, oldest
// first. Called with g.mu held.
func (g *group) requeue(ds []*delivery) {
	if len(ds) == 0 {
		return
	}
	slices.SortFunc(ds, func(a, b *delivery) int { return cmp.Compare(a.seq, b.seq) })
	g.ready = append(ds, g.ready...)
	g.dispatch()
}

// leave removes m, which has closed. Called with g.mu held.
func (g *group) leave(m *member) {
	if i := slices.Index(g.members, m); i >= 0 {
		g.members = slices.Delete(g.members, i, i+1)
	}
	if len(g.members) > 0 || g.dead {
		return
	}
	if g.a.linger <= 0 {
		go g.a.expire(g)
		return
	}
	g.linger = time.AfterFunc(g.a.linger, func() { g.a.expire(g) })
}

// member is one subscriber: a component.Subscription.
type member struct {
	g      *group
	spec   component.SubscribeSpec
	out    chan *component.Message
	wake   chan struct{}
	done   chan struct{} // closed when the member ends
	exited chan struct{} // closed when pump has returned (and closed out)

	// Under g.mu:
	unsettled map[string]*delivery // by message id
	queue     []*delivery          // assigned, not yet taken by the channel
	closed    bool
	err       error
}

// assign gives d to m. Called with g.mu held.
func (m *member) assign(d *delivery) {
	d.member = m
	d.sent = false
	m.unsettled[d.msg.ID] = d
	m.queue = append(m.queue, d)
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// forget removes d from m. Called with g.mu held.
func (m *member) forget(d *delivery) {
	if m.unsettled[d.msg.ID] == d {
		delete(m.unsettled, d.msg.ID)
	}
	if i := slices.Index(m.queue, d); i >= 0 {
		m.queue = slices.Delete(m.queue, i, i+1)
	}
	d.member = nil
}

// end marks m ended with err. Called with g.mu held.
func (m *member) end(err error) {
	if m.closed {
		return
	}
	m.closed = true
	m.err = err
	close(m.done)
}

// pump moves assigned deliveries to the Messages channel.
func (m *member) pump() {
	defer close(m.exited)
	defer close(m.out)
	g := m.g
	for {
		g.mu.Lock()
		for len(m.queue) == 0 && !m.closed {
			g.mu.Unlock()
			select {
			case <-m.wake:
			case <-m.done:
			}
			g.mu.Lock()
		}
		if m.closed {
			g.mu.Unlock()
			return
		}
		d := m.queue[0]
		m.queue[0] = nil
		m.queue = m.queue[1:]
		msg := d.msg
		g.mu.Unlock()
		select {
		case m.out <- &msg:
			g.mu.Lock()
			if d.member == m {
				d.sent = true
			}
			g.mu.Unlock()
		case <-m.done:
			return
		}
	}
}

// Messages delivers the member's messages.
func (m *member) Messages() <-chan *component.Message { return m.out }

func (m *member) take(id string) (*delivery, error) {
	d := m.unsettled[id]
	if d == nil || d.settling || m.closed {
		return nil, fmt.Errorf("%w: %s", component.ErrUnknownMessage, id)
	}
	return d, nil
}

// Ack settles a message as processed: contrib acknowledges it to the
// broker.
func (m *member) Ack(_ context.Context, id string) error {
	g := m.g
	g.mu.Lock()
	defer g.mu.Unlock()
	d, err := m.take(id)
	if err != nil {
		return err
	}
	m.forget(d)
	g.finish(d, nil)
	g.dispatch()
	return nil
}

// Nack delivers the message again after retryAfter (0: the spec's
// backoff) to a member of the group, with the next attempt number; past
// MaxAttempts it is dead-lettered (or dropped) instead.
func (m *member) Nack(ctx context.Context, id string, retryAfter time.Duration) error {
	g := m.g
	g.mu.Lock()
	d, err := m.take(id)
	if err != nil {
		g.mu.Unlock()
		return err
	}
	if limit := m.spec.MaxAttempts; limit > 0 && d.msg.Attempt >= limit {
		d.settling = true
		g.mu.Unlock()
		return m.settleDead(ctx, d)
	}
	m.forget(d)
	wait := retryAfter
	if wait <= 0 {
		wait = m.spec.Backoff(d.msg.Attempt)
	}
	d.msg.Attempt++
	d.due = time.Now().Add(wait)
	g.schedule(d)
	g.dispatch()
	g.mu.Unlock()
	return nil
}

// Drop settles a message as never to be delivered again; it goes to the
// dead letter topic when there is one.
func (m *member) Drop(ctx context.Context, id string) error {
	g := m.g
	g.mu.Lock()
	d, err := m.take(id)
	if err != nil {
		g.mu.Unlock()
		return err
	}
	d.settling = true
	g.mu.Unlock()
	return m.settleDead(ctx, d)
}

// settleDead publishes d to the dead letter topic, if any, then finishes
// it. If publishing fails the message stays unsettled (the caller may try
// again) and the error is returned.
func (m *member) settleDead(ctx context.Context, d *delivery) error {
	g := m.g
	if topic := m.spec.DeadLetterTopic; topic != "" {
		g.mu.Lock()
		env := d.envelopeFor("")
		g.mu.Unlock()
		// A new message for the dead letter topic's groups: their first
		// delivery of it is their attempt 1.
		env.Attempt = 1
		err := g.a.prepare(ctx, topic)
		if err == nil {
			err = g.a.publish(ctx, topic, env, nil)
		}
		if err != nil {
			g.mu.Lock()
			d.settling = false
			if d.member != m && !d.finished {
				// m closed meanwhile: the message goes to another member.
				g.requeue([]*delivery{d})
			}
			g.mu.Unlock()
			return fmt.Errorf("dead-letter to %s: %w", topic, err)
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if d.member == m {
		m.forget(d)
	}
	g.finish(d, nil)
	g.dispatch()
	return nil
}

// Close ends the subscription. Its unsettled messages go to the group's
// other members in this Mecha, with the next attempt number when the
// member had received them; with no other member they wait for one for
// group_linger, then go back to the broker.
func (m *member) Close() error {
	g := m.g
	g.mu.Lock()
	if m.closed {
		g.mu.Unlock()
		<-m.exited
		return nil
	}
	m.end(nil)
	g.mu.Unlock()
	// Once pump has returned, every delivery's sent flag is final.
	<-m.exited
	g.mu.Lock()
	defer g.mu.Unlock()
	var back []*delivery
	for _, d := range m.unsettled {
		d.member = nil
		if d.settling {
			continue // settleDead requeues it if dead-lettering fails
		}
		if d.sent {
			d.msg.Attempt++
		}
		back = append(back, d)
	}
	clear(m.unsettled)
	m.queue = nil
	g.leave(m)
	g.requeue(back)
	return nil
}

// Err is why Messages was closed: nil after Close, an ErrUnavailable when
// the component closed.
func (m *member) Err() error {
	m.g.mu.Lock()
	defer m.g.mu.Unlock()
	return m.err
}

var _ component.Subscription = (*member)(nil)
