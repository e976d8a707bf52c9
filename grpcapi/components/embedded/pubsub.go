package embedded

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mecha-gateway/mecha/configs"
	"github.com/mecha-gateway/mecha/grpcapi/component"
)

func init() {
	component.RegisterType(component.CapPubSub, Type, DefaultPubSubConfig, NewPubSub)
}

// PubSubConfig is the configuration of an embedded pub/sub component.
type PubSubConfig struct {
	component.Base `yaml:",inline"`
	Store          StoreOptions `yaml:",inline"`
	// Retention is how long messages of a topic that no consumer group
	// has subscribed to are kept (default 24h). Once a topic has a group,
	// its messages are kept until every group has acknowledged them.
	Retention configs.Duration `yaml:"retention"`
	// SweepInterval is how often messages past retention, or acknowledged
	// by every group, are deleted (default 1m).
	SweepInterval configs.Duration `yaml:"sweep_interval"`
}

// DefaultPubSubConfig returns the defaults.
func DefaultPubSubConfig() *PubSubConfig {
	return &PubSubConfig{
		Store:         defaultStoreOptions(),
		Retention:     configs.Duration(24 * time.Hour),
		SweepInterval: configs.Duration(time.Minute),
	}
}

// Validate checks the values.
func (c *PubSubConfig) Validate() error {
	var errs []error
	errs = append(errs, checkBase(&c.Base))
	if c.Retention <= 0 {
		errs = append(errs, configs.Errorf("retention", "must be positive"))
	}
	if c.SweepInterval <= 0 {
		errs = append(errs, configs.Errorf("sweep_interval", "must be positive"))
	}
	return errors.Join(errs...)
}

// PubSub is the embedded pub/sub component: a durable log per topic and,
// per consumer group, a cursor and the set of messages dispatched and not
// yet settled; a dispatcher in memory per (topic, group) hands messages to
// the group's members. See README.md for the design.
type PubSub struct {
	*base
	retention time.Duration
	sweepInt  time.Duration
	now       func() time.Time

	create      sync.Mutex // serialises creating dispatchers
	mu          sync.RWMutex
	dispatchers map[groupKey]*dispatcher
	byTopic     map[string][]*dispatcher
	closed      bool

	stop chan struct{}
	wg   sync.WaitGroup
}

type groupKey struct{ topic, group string }

// Layout: bucket "topics" holds a bucket per topic with key "n" (the next
// sequence), bucket "m" (sequence → message) and bucket "g" (a bucket per
// group with key "c", its cursor, and bucket "p", its pending messages:
// sequence → attempts, due time).
var (
	bucketTopics = []byte("topics")
	keyNext      = []byte("n")
	bucketMsgs   = []byte("m")
	bucketGroups = []byte("g")
	keyCursor    = []byte("c")
	bucketPend   = []byte("p")
)

// NewPubSub builds an embedded pub/sub component; Start opens its file.
func NewPubSub(c *PubSubConfig, env component.Env) (*PubSub, error) {
	b, err := newBase(component.CapPubSub, c.Store, env, string(bucketTopics))
	if err != nil {
		return nil, err
	}
	return &PubSub{
		base: b, retention: c.Retention.D(), sweepInt: c.SweepInterval.D(), now: time.Now,
		dispatchers: map[groupKey]*dispatcher{}, byTopic: map[string][]*dispatcher{},
		stop: make(chan struct{}),
	}, nil
}

// Start opens the file and starts the retention sweeper.
func (s *PubSub) Start(ctx context.Context) error {
	if err := s.start(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(s.sweepInt)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.Sweep()
			}
		}
	}()
	return nil
}

// Close stops the dispatchers and the sweeper, ends every subscription
// (unsettled messages stay pending in the file) and closes the file.
func (s *PubSub) Close() error {
	s.create.Lock()
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.stop)
	}
	ds := make([]*dispatcher, 0, len(s.dispatchers))
	for _, d := range s.dispatchers {
		ds = append(ds, d)
	}
	s.dispatchers, s.byTopic = map[groupKey]*dispatcher{}, map[string][]*dispatcher{}
	s.mu.Unlock()
	s.create.Unlock()
	for _, d := range ds {
		d.shutdown()
	}
	s.wg.Wait()
	return s.close()
}

// wakeTopic tells topic's dispatchers that there are new messages.
func (s *PubSub) wakeTopic(topic string) {
	s.mu.RLock()
	for _, d := range s.byTopic[topic] {
		d.poke()
	}
	s.mu.RUnlock()
}

// ---- messages ----

type storedMsg struct {
	publish, deliverAt int64 // unix nanoseconds; deliverAt 0: at once
	contentType        string
	metadata           map[string]string
	data               []byte
}

func (m *storedMsg) encode() []byte {
	b := appendVarint(nil, m.publish)
	b = appendVarint(b, m.deliverAt)
	b = appendString(b, m.contentType)
	b = appendMap(b, m.metadata)
	return appendBytes(b, m.data)
}

func decodeMsg(v []byte) (storedMsg, error) {
	r := reader{b: v}
	m := storedMsg{publish: r.varint(), deliverAt: r.varint(), contentType: r.string(), metadata: r.stringMap(), data: r.bytes()}
	return m, r.err
}

// deliverAtOf reads only the header of a message.
func deliverAtOf(v []byte) int64 {
	r := reader{b: v}
	r.varint()
	return r.varint()
}

func (m *storedMsg) message(topic string, seq uint64, attempt int) *component.Message {
	return &component.Message{
		ID: strconv.FormatUint(seq, 10), Topic: topic, Data: m.data, ContentType: m.contentType,
		Metadata: m.metadata, PublishTime: time.Unix(0, m.publish), Attempt: attempt,
	}
}

func encodePending(attempts int, due int64) []byte {
	return appendVarint(appendUvarint(nil, uint64(attempts)), due)
}

func decodePending(v []byte) (attempts int, due int64, ok bool) {
	r := reader{b: v}
	a := r.uvarint()
	due = r.varint()
	return int(a), due, r.err == nil
}

// topicBucket returns topic's bucket, creating it if create is set (nil
// if it does not exist and create is not set).
func topicBucket(tx *bolt.Tx, topic string, create bool) (*bolt.Bucket, error) {
	root := tx.Bucket(bucketTopics)
	if tb := root.Bucket([]byte(topic)); tb != nil || !create {
		return tb, nil
	}
	tb, err := root.CreateBucket([]byte(topic))
	if err != nil {
		return nil, fmt.Errorf("topic %q: %w", topic, err)
	}
	if _, err := tb.CreateBucket(bucketMsgs); err != nil {
		return nil, err
	}
	if _, err := tb.CreateBucket(bucketGroups); err != nil {
		return nil, err
	}
	return tb, tb.Put(keyNext, be8(1))
}

// appendMsg stores m as topic's next message and returns its sequence.
func appendMsg(tb *bolt.Bucket, m *storedMsg) (uint64, error) {
	seq, ok := fromBE8(tb.Get(keyNext))
	if !ok {
		return 0, errCorrupt
	}
	if err := tb.Put(keyNext, be8(seq+1)); err != nil {
		return 0, err
	}
	return seq, tb.Bucket(bucketMsgs).Put(be8(seq), m.encode())
}

// Publish stores msgs in one (shared) transaction; each gets the next
// sequence of topic, its id.
func (s *PubSub) Publish(ctx context.Context, topic string, msgs []component.OutMessage) []component.PublishResult {
	results := make([]component.PublishResult, len(msgs))
	fail := func(err error) []component.PublishResult {
		for i := range results {
			results[i] = component.PublishResult{Err: err}
		}
		return results
	}
	if topic == "" {
		return fail(errors.New("publish: topic is required"))
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	seqs := make([]uint64, len(msgs))
	err := s.update(func(tx *bolt.Tx) error {
		tb, err := topicBucket(tx, topic, true)
		if err != nil {
			return err
		}
		now := s.now().UnixNano()
		for i, m := range msgs {
			sm := storedMsg{publish: now, contentType: m.ContentType, metadata: m.Metadata, data: m.Data}
			if !m.DeliverAt.IsZero() {
				sm.deliverAt = m.DeliverAt.UnixNano()
			}
			if seqs[i], err = appendMsg(tb, &sm); err != nil {
				return err
			}
		}
		return nil
	}, func() { s.wakeTopic(topic) })
	if err != nil {
		return fail(err)
	}
	for i, seq := range seqs {
		results[i].ID = strconv.FormatUint(seq, 10)
	}
	return results
}

// ---- subscriptions ----

// Subscribe joins spec.Group on spec.Topic, creating the group (at the
// topic's earliest retained message) if it is new.
func (s *PubSub) Subscribe(ctx context.Context, spec component.SubscribeSpec) (component.Subscription, error) {
	if spec.Topic == "" || spec.Group == "" {
		return nil, errors.New("subscribe: topic and group are required")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if spec.MaxInFlight <= 0 {
		spec.MaxInFlight = 32
	}
	spec.MaxInFlight = min(spec.MaxInFlight, 1<<16)
	if spec.MaxAttempts <= 0 {
		spec.MaxAttempts = 10
	}
	if spec.MinBackoff <= 0 {
		spec.MinBackoff = 100 * time.Millisecond
	}
	if spec.MaxBackoff <= 0 {
		spec.MaxBackoff = 30 * time.Second
	}
	spec.MaxBackoff = max(spec.MaxBackoff, spec.MinBackoff)
	d, err := s.dispatcher(spec.Topic, spec.Group)
	if err != nil {
		return nil, err
	}
	m := &member{d: d, spec: spec, ch: make(chan *component.Message, spec.MaxInFlight), held: map[uint64]*entry{}}
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		return nil, component.Unavailable(errClosed)
	}
	d.members = append(d.members, m)
	d.mu.Unlock()
	d.poke()
	return m, nil
}

// dispatcher returns the dispatcher of (topic, group), creating the group
// in the file and loading its state on first use.
func (s *PubSub) dispatcher(topic, group string) (*dispatcher, error) {
	s.create.Lock()
	defer s.create.Unlock()
	key := groupKey{topic, group}
	s.mu.RLock()
	d, closed := s.dispatchers[key], s.closed
	s.mu.RUnlock()
	if closed {
		return nil, component.Unavailable(errClosed)
	}
	if d != nil {
		return d, nil
	}
	err := s.update(func(tx *bolt.Tx) error {
		tb, err := topicBucket(tx, topic, true)
		if err != nil {
			return err
		}
		gs := tb.Bucket(bucketGroups)
		if gs.Bucket([]byte(group)) != nil {
			return nil
		}
		gb, err := gs.CreateBucket([]byte(group))
		if err != nil {
			return fmt.Errorf("group %q: %w", group, err)
		}
		if _, err := gb.CreateBucket(bucketPend); err != nil {
			return err
		}
		start, _ := fromBE8(tb.Get(keyNext))
		if k, _ := tb.Bucket(bucketMsgs).Cursor().First(); k != nil {
			start, _ = fromBE8(k)
		}
		return gb.Put(keyCursor, be8(start))
	}, nil)
	if err != nil {
		return nil, err
	}
	d = &dispatcher{
		ps: s, topic: topic, group: group, pending: map[uint64]*entry{},
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	err = s.view(func(tx *bolt.Tx) error {
		gb := groupBucket(tx, topic, group)
		if gb == nil {
			return fmt.Errorf("group %q of topic %q: %w", group, topic, errCorrupt)
		}
		var ok bool
		if d.cursor, ok = fromBE8(gb.Get(keyCursor)); !ok {
			return fmt.Errorf("cursor of group %q: %w", group, errCorrupt)
		}
		return gb.Bucket(bucketPend).ForEach(func(k, v []byte) error {
			seq, ok1 := fromBE8(k)
			attempts, due, ok2 := decodePending(v)
			if !ok1 || !ok2 {
				return fmt.Errorf("pending entry of group %q: %w", group, errCorrupt)
			}
			e := &entry{seq: seq, attempts: attempts, due: time.Unix(0, due), idx: -1}
			d.pending[seq] = e
			heap.Push(&d.ready, e)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.dispatchers[key] = d
	s.byTopic[topic] = append(s.byTopic[topic], d)
	s.mu.Unlock()
	go d.run()
	return d, nil
}

func groupBucket(tx *bolt.Tx, topic, group string) *bolt.Bucket {
	tb, _ := topicBucket(tx, topic, false)
	if tb == nil {
		return nil
	}
	return tb.Bucket(bucketGroups).Bucket([]byte(group))
}

// entry is a pending message of a group: dispatched and not settled, or
// held back (delayed, nacked, left unsettled by a member that closed)
// until due.
type entry struct {
	seq      uint64
	attempts int       // deliveries so far
	due      time.Time // when it may be dispatched, while not held
	holder   *member   // the member it is delivered to, until settled
	settling bool      // an ack, nack or drop of it is being committed
	idx      int       // place in the ready heap; -1 when not in it
}

// readyHeap orders entries waiting for dispatch by due time, then
// sequence.
type readyHeap []*entry

func (h readyHeap) Len() int { return len(h) }
func (h readyHeap) Less(i, j int) bool {
	if !h[i].due.Equal(h[j].due) {
		return h[i].due.Before(h[j].due)
	}
	return h[i].seq < h[j].seq
}
func (h readyHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *readyHeap) Push(x any) {
	e := x.(*entry)
	e.idx = len(*h)
	*h = append(*h, e)
}
func (h *readyHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.idx = -1
	return e
}

// dispatcher hands a group's messages to its members, round robin,
// within each member's MaxInFlight. Its goroutine runs dispatch rounds
// when woken (a publish, a settlement, a member joining or leaving) or
// when the earliest held-back message is due.
type dispatcher struct {
	ps           *PubSub
	topic, group string

	mu      sync.Mutex
	members []*member
	rr      int
	cursor  uint64 // the next sequence never dispatched, as committed
	pending map[uint64]*entry
	ready   readyHeap
	retryAt time.Time // after a failed round
	stopped bool

	wake chan struct{}
	stop chan struct{}
	done chan struct{}
}

func (d *dispatcher) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// maxPerRound bounds the messages one round dispatches (and so the size
// of its transaction); maxScan bounds the log entries it reads.
const (
	maxPerRound = 512
	maxScan     = 4096
)

func (d *dispatcher) run() {
	defer close(d.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		for d.round() {
			select {
			case <-d.stop:
				return
			default:
			}
		}
		d.mu.Lock()
		next := d.retryAt
		if len(d.ready) > 0 && len(d.members) > 0 && (next.IsZero() || d.ready[0].due.Before(next)) {
			next = d.ready[0].due
		}
		d.mu.Unlock()
		if !next.IsZero() {
			timer.Reset(max(time.Until(next), 0))
		}
		select {
		case <-d.stop:
			timer.Stop()
			return
		case <-d.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

type delivery struct {
	e   *entry // nil for a message read from the log
	seq uint64
	msg storedMsg
}

// round dispatches what it can: due pending messages first, then new
// ones from the cursor. The dispatch is committed before the messages are
// handed over, so an ack can never precede it in the file. It reports
// whether another round may find more to do.
func (d *dispatcher) round() bool {
	now := d.ps.now()
	d.mu.Lock()
	d.retryAt = time.Time{}
	// Reserve slots round robin over the members with room.
	free := make([]int, len(d.members))
	total := 0
	for i, m := range d.members {
		// Room within MaxInFlight, and in the channel: a client could
		// settle a message it has not read yet (its id is guessable), and
		// the dispatcher must never block sending.
		free[i] = max(0, min(m.spec.MaxInFlight-m.inflight, cap(m.ch)-len(m.ch)))
		total += free[i]
	}
	slots := make([]*member, 0, min(total, maxPerRound))
	for i := d.rr; len(slots) < cap(slots); i++ {
		j := i % len(d.members)
		if free[j] > 0 {
			free[j]--
			slots = append(slots, d.members[j])
		}
	}
	if len(slots) == 0 {
		d.mu.Unlock()
		return false
	}
	for _, m := range slots {
		m.inflight++
	}
	var picked []*entry
	for len(picked) < len(slots) && len(d.ready) > 0 && !d.ready[0].due.After(now) {
		picked = append(picked, heap.Pop(&d.ready).(*entry))
	}
	cursor := d.cursor
	d.mu.Unlock()

	// Read the messages (outside the lock: settlements go on meanwhile).
	var (
		deliveries []delivery
		missing    []*entry
		delayed    []*entry
		newCursor  = cursor
	)
	err := d.ps.view(func(tx *bolt.Tx) error {
		tb, _ := topicBucket(tx, d.topic, false)
		if tb == nil {
			return fmt.Errorf("topic %q: %w", d.topic, errCorrupt)
		}
		mb := tb.Bucket(bucketMsgs)
		for _, e := range picked {
			v := mb.Get(be8(e.seq))
			if v == nil {
				missing = append(missing, e)
				continue
			}
			m, err := decodeMsg(v)
			if err != nil {
				return fmt.Errorf("message %d of topic %q: %w", e.seq, d.topic, err)
			}
			deliveries = append(deliveries, delivery{e: e, seq: e.seq, msg: m})
		}
		if len(deliveries) == len(slots) {
			return nil
		}
		c := mb.Cursor()
		scanned := 0
		for k, v := c.Seek(be8(cursor)); k != nil && len(deliveries) < len(slots) && scanned < maxScan; k, v = c.Next() {
			scanned++
			seq, ok := fromBE8(k)
			if !ok {
				return fmt.Errorf("message key of topic %q: %w", d.topic, errCorrupt)
			}
			newCursor = seq + 1
			if at := deliverAtOf(v); at > now.UnixNano() {
				delayed = append(delayed, &entry{seq: seq, due: time.Unix(0, at), idx: -1})
				continue
			}
			m, err := decodeMsg(v)
			if err != nil {
				return fmt.Errorf("message %d of topic %q: %w", seq, d.topic, err)
			}
			deliveries = append(deliveries, delivery{seq: seq, msg: m})
		}
		return nil
	})
	if err == nil && (len(deliveries) > 0 || len(missing) > 0 || len(delayed) > 0) {
		nowNs := now.UnixNano()
		err = d.ps.update(func(tx *bolt.Tx) error {
			gb := groupBucket(tx, d.topic, d.group)
			if gb == nil {
				return fmt.Errorf("group %q of topic %q: %w", d.group, d.topic, errCorrupt)
			}
			pb := gb.Bucket(bucketPend)
			for _, dl := range deliveries {
				attempts := 1
				if dl.e != nil {
					attempts = dl.e.attempts + 1
				}
				if err := pb.Put(be8(dl.seq), encodePending(attempts, nowNs)); err != nil {
					return err
				}
			}
			for _, e := range delayed {
				if err := pb.Put(be8(e.seq), encodePending(0, e.due.UnixNano())); err != nil {
					return err
				}
			}
			for _, e := range missing {
				if err := pb.Delete(be8(e.seq)); err != nil {
					return err
				}
			}
			if newCursor != cursor {
				return gb.Put(keyCursor, be8(newCursor))
			}
			return nil
		}, nil)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		for _, m := range slots {
			m.inflight--
		}
		for _, e := range picked {
			heap.Push(&d.ready, e)
		}
		d.retryAt = now.Add(time.Second)
		if !errors.Is(err, errClosed) {
			d.ps.log.Error("embedded pubsub: dispatch failed", "topic", d.topic, "group", d.group, "err", err)
		}
		return false
	}
	d.cursor = newCursor
	for _, e := range delayed {
		d.pending[e.seq] = e
		heap.Push(&d.ready, e)
	}
	for _, e := range missing {
		delete(d.pending, e.seq)
	}
	for i, dl := range deliveries {
		m, e := slots[i], dl.e
		if e == nil {
			e = &entry{seq: dl.seq, idx: -1}
			d.pending[dl.seq] = e
		}
		e.attempts++
		if m.closed {
			// The member left during the round: the message waits for
			// another one.
			e.due = now
			heap.Push(&d.ready, e)
			continue
		}
		e.holder = m
		m.held[e.seq] = e
		m.ch <- dl.msg.message(d.topic, dl.seq, e.attempts) // room was reserved
		for j, mm := range d.members {
			if mm == m {
				d.rr = j + 1
			}
		}
	}
	for _, m := range slots[len(deliveries):] {
		m.inflight--
	}
	return len(deliveries) > 0 || len(delayed) > 0 || len(missing) > 0
}

// shutdown stops the dispatcher and ends its members' subscriptions.
func (d *dispatcher) shutdown() {
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		return
	}
	d.stopped = true
	close(d.stop)
	d.mu.Unlock()
	<-d.done
	d.mu.Lock()
	for _, m := range d.members {
		m.closed = true
		m.err = component.Unavailable(errClosed)
		close(m.ch)
	}
	d.members = nil
	d.mu.Unlock()
}

// member is one subscription of a group.
type member struct {
	d        *dispatcher
	spec     component.SubscribeSpec
	ch       chan *component.Message
	inflight int               // messages held plus slots reserved in a round
	held     map[uint64]*entry // messages delivered and not settled
	closed   bool
	err      error
}

// Messages delivers the subscription's messages.
func (m *member) Messages() <-chan *component.Message { return m.ch }

// Err is why Messages was closed: nil after Close, ErrUnavailable when
// the component closed.
func (m *member) Err() error {
	m.d.mu.Lock()
	defer m.d.mu.Unlock()
	return m.err
}

// Close leaves the group; the messages it held are due again at once.
func (m *member) Close() error {
	d := m.d
	d.mu.Lock()
	if m.closed {
		d.mu.Unlock()
		return nil
	}
	m.closed = true
	for i, mm := range d.members {
		if mm == m {
			d.members = append(d.members[:i], d.members[i+1:]...)
			break
		}
	}
	now := d.ps.now()
	for seq, e := range m.held {
		if e.settling {
			continue // the settlement in progress decides
		}
		e.holder = nil
		e.due = now
		heap.Push(&d.ready, e)
		delete(m.held, seq)
	}
	close(m.ch)
	d.mu.Unlock()
	d.poke()
	return nil
}

type action int

const (
	actAck action = iota
	actNack
	actDrop
)

// Ack settles a message as processed.
func (m *member) Ack(ctx context.Context, id string) error { return m.settle(ctx, id, actAck, 0) }

// Nack asks for the message again after retryAfter (0: the backoff), or
// dead-letters it past MaxAttempts.
func (m *member) Nack(ctx context.Context, id string, retryAfter time.Duration) error {
	return m.settle(ctx, id, actNack, retryAfter)
}

// Drop dead-letters a message, or deletes it when there is no dead letter
// topic.
func (m *member) Drop(ctx context.Context, id string) error { return m.settle(ctx, id, actDrop, 0) }

func (m *member) settle(ctx context.Context, id string, act action, retryAfter time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	seq, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %q", component.ErrUnknownMessage, id)
	}
	d := m.d
	d.mu.Lock()
	e := m.held[seq]
	if e == nil || e.settling {
		d.mu.Unlock()
		return fmt.Errorf("%w: %q", component.ErrUnknownMessage, id)
	}
	e.settling = true
	attempts := e.attempts
	d.mu.Unlock()

	now := d.ps.now()
	deadLetter := act == actDrop || (act == actNack && attempts >= m.spec.MaxAttempts)
	var due time.Time
	if act == actNack && !deadLetter {
		wait := retryAfter
		if wait <= 0 {
			wait = m.spec.Backoff(attempts)
		}
		due = now.Add(wait)
	}
	dlt := ""
	if deadLetter {
		dlt = m.spec.DeadLetterTopic
	}
	err = d.ps.update(func(tx *bolt.Tx) error {
		gb := groupBucket(tx, d.topic, d.group)
		if gb == nil {
			return fmt.Errorf("group %q of topic %q: %w", d.group, d.topic, errCorrupt)
		}
		pb := gb.Bucket(bucketPend)
		if act == actNack && !deadLetter {
			return pb.Put(be8(seq), encodePending(attempts, due.UnixNano()))
		}
		if dlt != "" {
			tb, _ := topicBucket(tx, d.topic, false)
			if v := tb.Bucket(bucketMsgs).Get(be8(seq)); v != nil {
				orig, err := decodeMsg(v)
				if err != nil {
					return err
				}
				md := maps.Clone(orig.metadata)
				if md == nil {
					md = map[string]string{}
				}
				reason := "max-attempts"
				if act == actDrop {
					reason = "dropped"
				}
				md["mecha-dead-letter-topic"] = d.topic
				md["mecha-dead-letter-id"] = id
				md["mecha-dead-letter-group"] = d.group
				md["mecha-dead-letter-reason"] = reason
				md["mecha-dead-letter-attempts"] = strconv.Itoa(attempts)
				dead := storedMsg{publish: now.UnixNano(), contentType: orig.contentType, metadata: md, data: orig.data}
				dtb, err := topicBucket(tx, dlt, true)
				if err != nil {
					return err
				}
				if _, err := appendMsg(dtb, &dead); err != nil {
					return err
				}
			}
		}
		return pb.Delete(be8(seq))
	}, func() {
		if dlt != "" {
			d.ps.wakeTopic(dlt)
		}
	})

	d.mu.Lock()
	e.settling = false
	if err != nil {
		if m.closed {
			e.holder = nil
			e.due = now
			delete(m.held, seq)
			heap.Push(&d.ready, e)
		}
		d.mu.Unlock()
		d.poke()
		return err
	}
	m.inflight--
	e.holder = nil
	delete(m.held, seq)
	if act == actNack && !deadLetter {
		e.due = due
		heap.Push(&d.ready, e)
	} else {
		delete(d.pending, seq)
	}
	d.mu.Unlock()
	d.poke()
	return nil
}

// ---- retention ----

// Sweep deletes the messages every group has acknowledged and, on topics
// without a group, those older than the retention. It runs every
// sweep_interval.
func (s *PubSub) Sweep() {
	var topics []string
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTopics).ForEach(func(k, v []byte) error {
			if v == nil {
				topics = append(topics, string(k))
			}
			return nil
		})
	})
	if err != nil {
		return
	}
	for _, topic := range topics {
		for {
			n, err := s.sweepTopic(topic, 10000)
			if err != nil {
				s.log.Warn("embedded pubsub: retention", "topic", topic, "err", err)
				return
			}
			if n < 10000 {
				break
			}
		}
	}
}

func (s *PubSub) sweepTopic(topic string, limit int) (int, error) {
	n := 0
	err := s.update(func(tx *bolt.Tx) error {
		n = 0
		tb, _ := topicBucket(tx, topic, false)
		if tb == nil {
			return nil
		}
		mb := tb.Bucket(bucketMsgs)
		// below is the lowest sequence a group still needs; with no group
		// the retention decides.
		below, groups := ^uint64(0), 0
		err := tb.Bucket(bucketGroups).ForEach(func(k, v []byte) error {
			gb := tb.Bucket(bucketGroups).Bucket(k)
			if gb == nil {
				return nil
			}
			groups++
			c, _ := fromBE8(gb.Get(keyCursor))
			if k, _ := gb.Bucket(bucketPend).Cursor().First(); k != nil {
				if p, ok := fromBE8(k); ok {
					c = min(c, p)
				}
			}
			below = min(below, c)
			return nil
		})
		if err != nil {
			return err
		}
		cutoff := s.now().Add(-s.retention).UnixNano()
		var doomed [][]byte
		c := mb.Cursor()
		for k, v := c.First(); k != nil && len(doomed) < limit; k, v = c.Next() {
			seq, _ := fromBE8(k)
			if groups > 0 && seq >= below {
				break
			}
			if groups == 0 {
				r := reader{b: v}
				if r.varint() >= cutoff {
					break
				}
			}
			doomed = append(doomed, append([]byte(nil), k...))
		}
		for _, k := range doomed {
			if err := mb.Delete(k); err != nil {
				return err
			}
		}
		n = len(doomed)
		return nil
	}, nil)
	return n, err
}

var (
	_ component.PubSub       = (*PubSub)(nil)
	_ component.Subscription = (*member)(nil)
)
