package grpcapi_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	daprv1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/mecha-gateway/mecha/backends/redis/redistest"
	"github.com/mecha-gateway/mecha/cmd/mecha/app"
	"github.com/mecha-gateway/mecha/cmd/mecha/app/apptest"
	"github.com/mecha-gateway/mecha/configs"
	"github.com/mecha-gateway/mecha/configs/tlstest"
	pb "github.com/mecha-gateway/mecha/grpcapi/runtimev1"
)

// embeddedYAML is a gRPC API on 127.0.0.1:0 with every capability on
// the embedded components, under dir.
func embeddedYAML(dir, extra string) string {
	return fmt.Sprintf(`
data_dir: %s
admin: { listen: 127.0.0.1:0 }
grpc:
  listen: 127.0.0.1:0
  dapr_listen: 127.0.0.1:0
%s
  components:
    config:    { appcfg: { type: embedded } }
    lock:      { locks:  { type: embedded } }
    pubsub:    { events: { type: embedded } }
    sequencer: { ids:    { type: embedded } }
`, dir, extra)
}

func dial(t testing.TB, m *app.Mecha, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	if len(opts) == 0 {
		opts = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	cc, err := grpc.NewClient(m.GRPCAddr().String(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func wantCode(t testing.TB, err error, code codes.Code, msgPart string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code || !strings.Contains(st.Message(), msgPart) {
		t.Fatalf("got %v (%q), want %v containing %q", st.Code(), st.Message(), code, msgPart)
	}
}

func dur(d time.Duration) *durationpb.Duration { return durationpb.New(d) }

func TestValidationErrors(t *testing.T) {
	m := apptest.Start(t, strings.Replace(embeddedYAML(t.TempDir(), "  segment_size: 10"),
		"lock:      { locks:  { type: embedded } }", "lock: { locks: { type: embedded }, other: { type: embedded } }", 1))
	cc := dial(t, m)
	ctx := ctxT(t)
	lock := pb.NewLockClient(cc)
	_, err := lock.TryLock(ctx, &pb.TryLockRequest{ResourceId: "r", LockOwner: "o", Ttl: dur(time.Second)})
	wantCode(t, err, codes.InvalidArgument, "store_name is required: 2 lock components are configured (locks, other)")
	_, err = lock.TryLock(ctx, &pb.TryLockRequest{StoreName: "nope", ResourceId: "r", LockOwner: "o", Ttl: dur(time.Second)})
	wantCode(t, err, codes.InvalidArgument, `store_name "nope": no such lock component`)
	_, err = lock.TryLock(ctx, &pb.TryLockRequest{StoreName: "locks", LockOwner: "o", Ttl: dur(time.Second)})
	wantCode(t, err, codes.InvalidArgument, "resource_id is required")
	_, err = lock.TryLock(ctx, &pb.TryLockRequest{StoreName: "locks", ResourceId: "r", Ttl: dur(time.Second)})
	wantCode(t, err, codes.InvalidArgument, "lock_owner is required")
	_, err = lock.TryLock(ctx, &pb.TryLockRequest{StoreName: "locks", ResourceId: "r", LockOwner: "o"})
	wantCode(t, err, codes.InvalidArgument, "ttl must be at least 1ms")
	_, err = lock.TryLock(ctx, &pb.TryLockRequest{StoreName: "locks", ResourceId: "r", LockOwner: "o", Ttl: dur(-time.Second)})
	wantCode(t, err, codes.InvalidArgument, "ttl must not be negative")
	_, err = lock.TryLock(ctx, &pb.TryLockRequest{StoreName: "locks", ResourceId: strings.Repeat("x", 2000), LockOwner: "o", Ttl: dur(time.Second)})
	wantCode(t, err, codes.InvalidArgument, "resource_id is 2000 bytes long")

	ps := pb.NewPubSubClient(cc)
	_, err = ps.Publish(ctx, &pb.PublishRequest{Data: []byte("x")})
	wantCode(t, err, codes.InvalidArgument, "topic is required")
	_, err = ps.BulkPublish(ctx, &pb.BulkPublishRequest{Topic: "t", Entries: []*pb.BulkPublishEntry{{EntryId: "a"}, {EntryId: "a"}}})
	wantCode(t, err, codes.InvalidArgument, `entry_id "a" appears twice`)
	_, err = ps.BulkPublish(ctx, &pb.BulkPublishRequest{Topic: "t"})
	wantCode(t, err, codes.InvalidArgument, "entries is empty")
	stream, err := ps.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stream.Send(&pb.SubscribeRequest{Request: &pb.SubscribeRequest_Result{Result: &pb.MessageResult{MessageId: "1"}}})
	_, err = stream.Recv()
	wantCode(t, err, codes.InvalidArgument, "the first message of a subscription must be `subscribe`")
	stream, _ = ps.Subscribe(ctx)
	stream.Send(&pb.SubscribeRequest{Request: &pb.SubscribeRequest_Subscribe{Subscribe: &pb.SubscribeInit{Topic: "t", MinBackoff: dur(time.Minute), MaxBackoff: dur(time.Second)}}})
	_, err = stream.Recv()
	wantCode(t, err, codes.InvalidArgument, "subscribe.min_backoff (1m0s) is above subscribe.max_backoff (1s)")

	cfg := pb.NewConfigurationClient(cc)
	_, err = cfg.Save(ctx, &pb.SaveConfigurationRequest{})
	wantCode(t, err, codes.InvalidArgument, "items is empty")
	_, err = cfg.Save(ctx, &pb.SaveConfigurationRequest{Items: []*pb.ConfigurationItem{{Content: "x"}}})
	wantCode(t, err, codes.InvalidArgument, "items[].key is required")
	_, err = cfg.Save(ctx, &pb.SaveConfigurationRequest{Group: "g", Items: []*pb.ConfigurationItem{{Key: "k"}, {Key: "k", Group: "g"}}})
	wantCode(t, err, codes.InvalidArgument, `key "k" appears twice`)
	_, err = cfg.Get(ctx, &pb.GetConfigurationRequest{Keys: []string{"a", ""}})
	wantCode(t, err, codes.InvalidArgument, "keys[1] is empty")

	seq := pb.NewSequencerClient(cc)
	_, err = seq.NextID(ctx, &pb.NextIDRequest{})
	wantCode(t, err, codes.InvalidArgument, "key is required")
	_, err = seq.NextID(ctx, &pb.NextIDRequest{Key: "k", Mode: 7})
	wantCode(t, err, codes.InvalidArgument, "mode 7 is not a SequencerMode")
}

func TestNoComponentConfigured(t *testing.T) {
	m := apptest.Start(t, `
grpc:
  listen: 127.0.0.1:0
  components:
    sequencer: { ids: { type: embedded } }
data_dir: `+t.TempDir())
	_, err := pb.NewLockClient(dial(t, m)).TryLock(ctxT(t), &pb.TryLockRequest{ResourceId: "r", LockOwner: "o", Ttl: dur(time.Second)})
	wantCode(t, err, codes.FailedPrecondition, "no lock component is configured (grpc.components.lock)")
}

func TestTokenAuth(t *testing.T) {
	m := apptest.Start(t, embeddedYAML(t.TempDir(), "  auth: { token: s3cret-token }"))
	cc := dial(t, m)
	seq := pb.NewSequencerClient(cc)
	ctx := ctxT(t)
	_, err := seq.NextID(ctx, &pb.NextIDRequest{Key: "k"})
	wantCode(t, err, codes.Unauthenticated, "missing token")
	_, err = seq.NextID(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer wrong"), &pb.NextIDRequest{Key: "k"})
	wantCode(t, err, codes.Unauthenticated, "invalid token")
	for _, md := range [][2]string{{"authorization", "Bearer s3cret-token"}, {"dapr-api-token", "s3cret-token"}} {
		r, err := seq.NextID(metadata.AppendToOutgoingContext(ctx, md[0], md[1]), &pb.NextIDRequest{Key: "k"})
		if err != nil {
			t.Fatalf("%s: %v", md[0], err)
		}
		if r.NextId < 1 {
			t.Fatalf("id %d", r.NextId)
		}
	}
	// Health checks need no token (probes cannot send one).
	h, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", h, err)
	}
	// Streams are checked too.
	st, err := pb.NewPubSubClient(cc).Subscribe(ctx)
	if err == nil {
		st.Send(&pb.SubscribeRequest{Request: &pb.SubscribeRequest_Subscribe{Subscribe: &pb.SubscribeInit{Topic: "t"}}})
		_, err = st.Recv()
	}
	wantCode(t, err, codes.Unauthenticated, "missing token")
	// The Dapr listener checks the same token.
	dcc, err := grpc.NewClient(m.DaprAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer dcc.Close()
	dapr := daprv1.NewDaprClient(dcc)
	_, err = dapr.TryLockAlpha1(ctx, &daprv1.TryLockRequest{StoreName: "locks", ResourceId: "r", LockOwner: "o", ExpiryInSeconds: 5})
	wantCode(t, err, codes.Unauthenticated, "missing token")
	if r, err := dapr.TryLockAlpha1(metadata.AppendToOutgoingContext(ctx, "dapr-api-token", "s3cret-token"),
		&daprv1.TryLockRequest{StoreName: "locks", ResourceId: "r", LockOwner: "o", ExpiryInSeconds: 5}); err != nil || !r.Success {
		t.Fatalf("dapr with token: %v %v", r, err)
	}
	if !strings.Contains(apptest.Metrics(t, m), `mecha_grpc_requests_total{service="mecha.runtime.v1.Sequencer",method="NextID",code="Unauthenticated"} 2`) {
		t.Fatalf("metrics lack the refused calls:\n%s", grepLines(apptest.Metrics(t, m), "mecha_grpc"))
	}
}

func grepLines(s, part string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, part) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestTLS(t *testing.T) {
	files := tlstest.Make(t, "server")
	m := apptest.Start(t, embeddedYAML(t.TempDir(), fmt.Sprintf("  tls: { cert_file: %s, key_file: %s }", files.Cert["server"], files.Key["server"])))
	ctx := ctxT(t)
	cc := dial(t, m, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: files.Pool, ServerName: "127.0.0.1"})))
	r, err := pb.NewSequencerClient(cc).NextID(ctx, &pb.NextIDRequest{Key: "tls"})
	if err != nil || r.NextId != 1 {
		t.Fatalf("over TLS: %v %v", r, err)
	}
	plain := dial(t, m)
	_, err = pb.NewSequencerClient(plain).NextID(ctx, &pb.NextIDRequest{Key: "tls"})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("plaintext client against a TLS listener: %v", err)
	}
}

func TestHealthAndReflection(t *testing.T) {
	m := apptest.Start(t, embeddedYAML(t.TempDir(), ""))
	cc := dial(t, m)
	ctx := ctxT(t)
	h := healthpb.NewHealthClient(cc)
	for _, svc := range []string{"", "mecha.runtime.v1.Configuration", "mecha.runtime.v1.Lock", "mecha.runtime.v1.PubSub", "mecha.runtime.v1.Sequencer"} {
		r, err := h.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health of %q: %v %v", svc, r, err)
		}
	}
	rc, err := reflectpb.NewServerReflectionClient(cc).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rc.Send(&reflectpb.ServerReflectionRequest{MessageRequest: &reflectpb.ServerReflectionRequest_ListServices{}})
	resp, err := rc.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().Service {
		names = append(names, s.Name)
	}
	got := strings.Join(names, ",")
	for _, want := range []string{"mecha.runtime.v1.Lock", "mecha.runtime.v1.PubSub", "grpc.health.v1.Health"} {
		if !strings.Contains(got, want) {
			t.Fatalf("reflection lists %s, missing %s", got, want)
		}
	}
	rd := m.Readiness()
	comps := 0
	for _, c := range rd.Components {
		if c.Kind == "component" {
			comps++
			if c.State != "UP" {
				t.Fatalf("component %s is %s", c.Name, c.State)
			}
		}
	}
	if comps != 4 || rd.Status != "UP" {
		t.Fatalf("readiness: %+v", rd)
	}
}

func TestLockWaitAndReleaseOnDisconnect(t *testing.T) {
	m := apptest.Start(t, embeddedYAML(t.TempDir(), ""))
	ctx := ctxT(t)
	a := pb.NewLockClient(dial(t, m))
	b := pb.NewLockClient(dial(t, m))

	held, err := a.TryLock(ctx, &pb.TryLockRequest{ResourceId: "res", LockOwner: "A", Ttl: dur(time.Minute)})
	if err != nil || !held.Success || held.FencingToken == 0 {
		t.Fatalf("A: %v %v", held, err)
	}
	// A wait that runs out reports failure, not an error.
	r, err := b.Lock(ctx, &pb.LockRequest{ResourceId: "res", LockOwner: "B", Ttl: dur(time.Minute), WaitTimeout: dur(50 * time.Millisecond)})
	if err != nil || r.Success {
		t.Fatalf("B's short wait: %v %v", r, err)
	}
	// B waits; A unlocks; B gets it with a larger token.
	got := make(chan *pb.TryLockResponse, 1)
	go func() {
		r, err := b.Lock(ctx, &pb.LockRequest{ResourceId: "res", LockOwner: "B", Ttl: dur(time.Minute), WaitTimeout: dur(20 * time.Second)})
		if err != nil {
			t.Error(err)
		}
		got <- r
	}()
	time.Sleep(100 * time.Millisecond)
	select {
	case r := <-got:
		t.Fatalf("B acquired a held lock: %v", r)
	default:
	}
	u, err := a.Unlock(ctx, &pb.UnlockRequest{ResourceId: "res", LockOwner: "A"})
	if err != nil || u.Status != pb.LockStatus_LOCK_STATUS_SUCCESS {
		t.Fatalf("unlock: %v %v", u, err)
	}
	r = <-got
	if r == nil || !r.Success || r.FencingToken <= held.FencingToken {
		t.Fatalf("B after A's unlock: %v (A's token %d)", r, held.FencingToken)
	}
	u, _ = a.Unlock(ctx, &pb.UnlockRequest{ResourceId: "res", LockOwner: "A"})
	if u.Status != pb.LockStatus_LOCK_STATUS_LOCK_BELONGS_TO_OTHERS {
		t.Fatalf("A unlocking B's lock: %v", u)
	}
	rn, err := b.Renew(ctx, &pb.RenewRequest{ResourceId: "res", LockOwner: "B", Ttl: dur(time.Minute)})
	if err != nil || rn.Status != pb.LockStatus_LOCK_STATUS_SUCCESS || rn.FencingToken != r.FencingToken {
		t.Fatalf("renew: %v %v", rn, err)
	}

	// A lock taken with release_on_disconnect goes when its client's
	// connection closes, long before its lease would end.
	cc := dial(t, m)
	c := pb.NewLockClient(cc)
	r, err = c.TryLock(ctx, &pb.TryLockRequest{ResourceId: "conn-res", LockOwner: "C", Ttl: dur(time.Hour), ReleaseOnDisconnect: true})
	if err != nil || !r.Success {
		t.Fatalf("C: %v %v", r, err)
	}
	r2, err := c.TryLock(ctx, &pb.TryLockRequest{ResourceId: "kept-res", LockOwner: "C", Ttl: dur(time.Hour)})
	if err != nil || !r2.Success {
		t.Fatalf("C: %v %v", r2, err)
	}
	cc.Close()
	w, err := b.Lock(ctx, &pb.LockRequest{ResourceId: "conn-res", LockOwner: "D", Ttl: dur(time.Minute), WaitTimeout: dur(20 * time.Second)})
	if err != nil || !w.Success || w.FencingToken <= r.FencingToken {
		t.Fatalf("D after C disconnected: %v %v", w, err)
	}
	k, err := b.TryLock(ctx, &pb.TryLockRequest{ResourceId: "kept-res", LockOwner: "D", Ttl: dur(time.Minute)})
	if err != nil || k.Success {
		t.Fatalf("a lock taken without release_on_disconnect was released: %v %v", k, err)
	}
}

func TestSequencerModes(t *testing.T) {
	dir := t.TempDir()
	yaml := embeddedYAML(dir, "  segment_size: 100")
	m := apptest.Start(t, yaml)
	ctx := ctxT(t)
	seq := pb.NewSequencerClient(dial(t, m))
	for want := int64(1); want <= 3; want++ {
		r, err := seq.NextID(ctx, &pb.NextIDRequest{Key: "strict"})
		if err != nil || r.NextId != want {
			t.Fatalf("strict: %v %v, want %d", r, err, want)
		}
	}
	var last int64
	for i := 0; i < 250; i++ {
		r, err := seq.NextID(ctx, &pb.NextIDRequest{Key: "seg", Mode: pb.SequencerMode_SEQUENCER_MODE_SEGMENT})
		if err != nil || r.NextId <= last {
			t.Fatalf("segment id %d after %d: %v", r.GetNextId(), last, err)
		}
		last = r.NextId
	}
	if last != 250 {
		t.Fatalf("one Mecha hands out a segment's ids without gaps: last %d", last)
	}
	shut, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m.Shutdown(shut)
	// After a restart segment ids go on above every id handed out (the
	// rest of the reserved block is skipped), strict ones by one.
	m2 := apptest.Start(t, yaml)
	seq = pb.NewSequencerClient(dial(t, m2))
	r, err := seq.NextID(ctx, &pb.NextIDRequest{Key: "seg", Mode: pb.SequencerMode_SEQUENCER_MODE_SEGMENT})
	if err != nil || r.NextId != 301 {
		t.Fatalf("segment after restart: %v %v, want 301", r, err)
	}
	r, err = seq.NextID(ctx, &pb.NextIDRequest{Key: "strict"})
	if err != nil || r.NextId != 4 {
		t.Fatalf("strict after restart: %v %v, want 4", r, err)
	}
}

// subscriber is a mecha.runtime.v1 subscription in a test.
type subscriber struct {
	t      testing.TB
	stream pb.PubSub_SubscribeClient
}

func subscribe(t testing.TB, cc *grpc.ClientConn, init *pb.SubscribeInit) *subscriber {
	t.Helper()
	st, err := pb.NewPubSubClient(cc).Subscribe(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&pb.SubscribeRequest{Request: &pb.SubscribeRequest_Subscribe{Subscribe: init}}); err != nil {
		t.Fatal(err)
	}
	r, err := st.Recv()
	if err != nil || r.GetReady() == nil || r.GetReady().SubscriptionId == "" {
		t.Fatalf("subscribe: %v %v", r, err)
	}
	return &subscriber{t: t, stream: st}
}

func (s *subscriber) next() *pb.Message {
	s.t.Helper()
	r, err := s.stream.Recv()
	if err != nil {
		s.t.Fatalf("receive: %v", err)
	}
	if r.GetMessage() == nil {
		s.t.Fatalf("expected a message, got %v", r)
	}
	return r.GetMessage()
}

func (s *subscriber) settle(id string, a pb.MessageAction) {
	s.t.Helper()
	if err := s.stream.Send(&pb.SubscribeRequest{Request: &pb.SubscribeRequest_Result{Result: &pb.MessageResult{MessageId: id, Action: a}}}); err != nil {
		s.t.Fatal(err)
	}
}

func TestPubSubStream(t *testing.T) {
	m := apptest.Start(t, embeddedYAML(t.TempDir(), ""))
	ctx := ctxT(t)
	cc := dial(t, m)
	ps := pb.NewPubSubClient(cc)
	sub := subscribe(t, cc, &pb.SubscribeInit{Topic: "orders", Group: "billing", MaxAttempts: 2,
		DeadLetterTopic: "orders-dead", MinBackoff: dur(10 * time.Millisecond), MaxBackoff: dur(20 * time.Millisecond)})
	dead := subscribe(t, cc, &pb.SubscribeInit{Topic: "orders-dead", Group: "ops"})

	p, err := ps.Publish(ctx, &pb.PublishRequest{Topic: "orders", Data: []byte(`{"n":1}`), ContentType: "application/json", Metadata: map[string]string{"k": "v"}})
	if err != nil || p.MessageId == "" {
		t.Fatalf("publish: %v %v", p, err)
	}
	msg := sub.next()
	if msg.Id != p.MessageId || string(msg.Data) != `{"n":1}` || msg.ContentType != "application/json" || msg.Metadata["k"] != "v" || msg.Attempt != 1 || msg.Topic != "orders" || msg.PublishTime == nil {
		t.Fatalf("delivered %v", msg)
	}
	// A result for an id the subscription does not hold is ignored.
	sub.settle("no-such-id", pb.MessageAction_MESSAGE_ACTION_ACK)
	sub.settle(msg.Id, pb.MessageAction_MESSAGE_ACTION_NACK)
	again := sub.next()
	if again.Id != msg.Id || again.Attempt != 2 {
		t.Fatalf("after nack: %v", again)
	}
	// Past max_attempts it goes to the dead letter topic.
	sub.settle(again.Id, pb.MessageAction_MESSAGE_ACTION_NACK)
	d := dead.next()
	if string(d.Data) != `{"n":1}` || d.Topic != "orders-dead" {
		t.Fatalf("dead letter: %v", d)
	}
	dead.settle(d.Id, pb.MessageAction_MESSAGE_ACTION_ACK)

	// Bulk publish: one result per entry; a delayed entry comes last.
	start := time.Now()
	bp, err := ps.BulkPublish(ctx, &pb.BulkPublishRequest{Topic: "orders", Entries: []*pb.BulkPublishEntry{
		{EntryId: "late", Data: []byte("late"), Delay: dur(300 * time.Millisecond)},
		{EntryId: "a", Data: []byte("a")},
		{EntryId: "b", Data: []byte("b")},
	}})
	if err != nil || bp.Failed != 0 || len(bp.Results) != 3 || bp.Results[0].EntryId != "late" || bp.Results[1].MessageId == "" {
		t.Fatalf("bulk: %v %v", bp, err)
	}
	var order []string
	for range 3 {
		m := sub.next()
		order = append(order, string(m.Data))
		if string(m.Data) == "late" && time.Since(start) < 300*time.Millisecond {
			t.Fatalf("delayed message delivered after %s", time.Since(start))
		}
		sub.settle(m.Id, pb.MessageAction_MESSAGE_ACTION_ACK)
	}
	if strings.Join(order, ",") != "a,b,late" {
		t.Fatalf("order %v", order)
	}
	// Drop with a dead letter topic dead-letters at once.
	ps.Publish(ctx, &pb.PublishRequest{Topic: "orders", Data: []byte("poison")})
	m1 := sub.next()
	sub.settle(m1.Id, pb.MessageAction_MESSAGE_ACTION_DROP)
	if d := dead.next(); string(d.Data) != "poison" {
		t.Fatalf("dropped message in the dead letter topic: %v", d)
	}

	// A subscriber that goes away with a message unsettled: the message
	// goes to the next member of the group.
	ps.Publish(ctx, &pb.PublishRequest{Topic: "orders", Data: []byte("unsettled")})
	if m := sub.next(); string(m.Data) != "unsettled" {
		t.Fatalf("got %v", m)
	}
	sub.stream.CloseSend()
	for {
		if _, err := sub.stream.Recv(); err != nil {
			if err != io.EOF {
				t.Fatalf("stream end: %v", err)
			}
			break
		}
	}
	other := subscribe(t, dial(t, m), &pb.SubscribeInit{Topic: "orders", Group: "billing"})
	if m := other.next(); string(m.Data) != "unsettled" || m.Attempt != 2 {
		t.Fatalf("redelivered: %v", m)
	}
}

func TestConfigurationSubscribe(t *testing.T) {
	m := apptest.Start(t, embeddedYAML(t.TempDir(), ""))
	ctx := ctxT(t)
	cfg := pb.NewConfigurationClient(dial(t, m))
	sv, err := cfg.Save(ctx, &pb.SaveConfigurationRequest{AppId: "shop", Group: "db", Items: []*pb.ConfigurationItem{
		{Key: "pool", Content: "10", Tags: map[string]string{"env": "prod"}}}})
	if err != nil || len(sv.Items) != 1 || sv.Items[0].Version == "" {
		t.Fatalf("save: %v %v", sv, err)
	}
	st, err := cfg.Subscribe(ctx, &pb.SubscribeConfigurationRequest{AppId: "shop", Group: "db"})
	if err != nil {
		t.Fatal(err)
	}
	first, err := st.Recv()
	if err != nil || first.SubscriptionId == "" || len(first.Changes) != 0 {
		t.Fatalf("first message: %v %v", first, err)
	}
	// A stale version is refused; a new key in the group is reported.
	_, err = cfg.Save(ctx, &pb.SaveConfigurationRequest{AppId: "shop", Group: "db", Items: []*pb.ConfigurationItem{{Key: "pool", Content: "20", Version: "stale"}}})
	wantCode(t, err, codes.Aborted, "")
	if _, err := cfg.Save(ctx, &pb.SaveConfigurationRequest{AppId: "shop", Group: "db", Items: []*pb.ConfigurationItem{{Key: "timeout", Content: "5s"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.Delete(ctx, &pb.DeleteConfigurationRequest{AppId: "shop", Group: "db", Keys: []string{"pool"}}); err != nil {
		t.Fatal(err)
	}
	var seen []string
	for len(seen) < 2 {
		r, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range r.Changes {
			seen = append(seen, c.Type.String()+":"+c.Item.Key)
		}
	}
	if strings.Join(seen, ",") != "CONFIGURATION_CHANGE_TYPE_UPDATED:timeout,CONFIGURATION_CHANGE_TYPE_DELETED:pool" {
		t.Fatalf("changes %v", seen)
	}
	g, err := cfg.Get(ctx, &pb.GetConfigurationRequest{AppId: "shop", Group: "db"})
	if err != nil || len(g.Items) != 1 || g.Items[0].Key != "timeout" || g.Items[0].Content != "5s" {
		t.Fatalf("get: %v %v", g, err)
	}
}

// TestReloadKeepsStreams: a reload that adds a component keeps the
// listener and the open subscriptions.
func TestReloadKeepsStreams(t *testing.T) {
	dir := t.TempDir()
	yaml := strings.Replace(embeddedYAML(dir, ""), "listen: 127.0.0.1:0\n  dapr", fmt.Sprintf("listen: 127.0.0.1:%d\n  dapr", redistest.FreePort(t)), 1)
	m := apptest.Start(t, yaml)
	ctx := ctxT(t)
	cc := dial(t, m)
	sub := subscribe(t, cc, &pb.SubscribeInit{Topic: "t"})
	seq := pb.NewSequencerClient(cc)
	segment := &pb.NextIDRequest{Key: "k", Mode: pb.SequencerMode_SEQUENCER_MODE_SEGMENT}
	if r, err := seq.NextID(ctx, segment); err != nil || r.NextId != 1 {
		t.Fatalf("segment id before the reload: %v %v", r, err)
	}
	yaml = strings.Replace(yaml, "lock:      { locks:  { type: embedded } }", "lock: { locks: { type: embedded }, more: { type: embedded } }", 1)
	cfg, err := configs.Parse("reload.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Reload(ctx, cfg, time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := pb.NewLockClient(cc).TryLock(ctx, &pb.TryLockRequest{StoreName: "more", ResourceId: "r", LockOwner: "o", Ttl: dur(time.Second)}); err != nil {
		t.Fatalf("new component after reload: %v", err)
	}
	if _, err := pb.NewPubSubClient(cc).Publish(ctx, &pb.PublishRequest{Topic: "t", Data: []byte("after reload")}); err != nil {
		t.Fatal(err)
	}
	if got := sub.next(); string(got.Data) != "after reload" {
		t.Fatalf("got %v", got)
	}
	// The sequencer was carried over: its cached block goes on.
	if r, err := seq.NextID(ctx, segment); err != nil || r.NextId != 2 {
		t.Fatalf("segment id after the reload: %v %v, want 2", r, err)
	}
}

// TestConcurrentLockSafety drives the lock service from many clients:
// holders write to a "storage" that accepts fencing tokens in order only,
// and no two holders ever overlap.
func TestConcurrentLockSafety(t *testing.T) {
	m := apptest.Start(t, embeddedYAML(t.TempDir(), ""))
	ctx := ctxT(t)
	var mu sync.Mutex
	holder := ""
	var lastToken uint64
	var wg sync.WaitGroup
	acquired := 0
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := pb.NewLockClient(dial(t, m))
			me := fmt.Sprintf("w%d", i)
			for range 15 {
				r, err := c.Lock(ctx, &pb.LockRequest{ResourceId: "shared", LockOwner: me, Ttl: dur(10 * time.Second), WaitTimeout: dur(10 * time.Second)})
				if err != nil {
					t.Error(err)
					return
				}
				if !r.Success {
					continue
				}
				mu.Lock()
				if holder != "" {
					t.Errorf("%s acquired while %s holds the lock", me, holder)
				}
				if r.FencingToken <= lastToken {
					t.Errorf("token %d after %d", r.FencingToken, lastToken)
				}
				holder, lastToken = me, r.FencingToken
				acquired++
				mu.Unlock()
				time.Sleep(time.Millisecond)
				mu.Lock()
				holder = ""
				mu.Unlock()
				if u, err := c.Unlock(ctx, &pb.UnlockRequest{ResourceId: "shared", LockOwner: me}); err != nil || u.Status != pb.LockStatus_LOCK_STATUS_SUCCESS {
					t.Errorf("unlock: %v %v", u, err)
				}
			}
		}()
	}
	wg.Wait()
	if acquired != 90 {
		t.Fatalf("%d acquisitions, want 90", acquired)
	}
}

// TestPubSubAtLeastOnceAcrossCrashAndRestart: a subscriber acks part of
// what it received and crashes (its connection drops with messages
// unsettled), then Mecha restarts; a new subscriber gets every message
// that was not acked, and none that was.
func TestPubSubAtLeastOnceAcrossCrashAndRestart(t *testing.T) {
	dir := t.TempDir()
	yaml := embeddedYAML(dir, "")
	m := apptest.Start(t, yaml)
	ctx := ctxT(t)
	ps := pb.NewPubSubClient(dial(t, m))
	const n = 200
	published := map[string]bool{}
	for i := range n {
		r, err := ps.Publish(ctx, &pb.PublishRequest{Topic: "jobs", Data: []byte(fmt.Sprint(i))})
		if err != nil {
			t.Fatal(err)
		}
		published[r.MessageId] = true
	}
	crashing, err := grpc.NewClient(m.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	sub := subscribe(t, crashing, &pb.SubscribeInit{Topic: "jobs", Group: "workers", MaxInFlight: 100})
	acked := map[string]bool{}
	for i := 0; i < 120; i++ {
		msg := sub.next()
		if i%2 == 0 {
			sub.settle(msg.Id, pb.MessageAction_MESSAGE_ACTION_ACK)
			acked[msg.Id] = true
		}
	}
	// The subscriber exits with 60 messages unsettled: once Mecha ends
	// the stream, every result sent before has been applied.
	sub.stream.CloseSend()
	for {
		if _, err := sub.stream.Recv(); err != nil {
			break
		}
	}
	crashing.Close()
	shut, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m.Shutdown(shut)

	m2 := apptest.Start(t, yaml)
	sub2 := subscribe(t, dial(t, m2), &pb.SubscribeInit{Topic: "jobs", Group: "workers", MaxInFlight: 50})
	got := map[string]bool{}
	for len(got) < n-len(acked) {
		msg := sub2.next()
		if acked[msg.Id] {
			t.Fatalf("message %s was acked before the restart and came again", msg.Id)
		}
		if !published[msg.Id] {
			t.Fatalf("unknown message %s", msg.Id)
		}
		got[msg.Id] = true
		sub2.settle(msg.Id, pb.MessageAction_MESSAGE_ACTION_ACK)
	}
	for id := range published {
		if !acked[id] && !got[id] {
			t.Fatalf("message %s was never acked and not delivered again", id)
		}
	}
}

// TestPubSubChurn: publishers keep publishing while the members of a
// group ack, nack and drop at random and crash (drop their connection
// without settling) now and then; at the end every published message has
// been acked or dead-lettered: none is lost.
func TestPubSubChurn(t *testing.T) {
	m := apptest.Start(t, embeddedYAML(t.TempDir(), ""))
	ctx := ctxT(t)
	ps := pb.NewPubSubClient(dial(t, m))
	const total = 600
	var mu sync.Mutex
	published := map[string]bool{}
	settled := map[string]bool{} // acked, or seen in the dead letter topic
	var deadLettered, redelivered int

	// The dead letter topic's own subscriber acks everything it gets.
	dead := subscribe(t, dial(t, m), &pb.SubscribeInit{Topic: "churn-dead", Group: "ops"})
	go func() {
		for {
			r, err := dead.stream.Recv()
			if err != nil {
				return
			}
			msg := r.GetMessage()
			mu.Lock()
			settled[msg.Metadata["mecha-dead-letter-id"]] = true
			deadLettered++
			mu.Unlock()
			dead.stream.Send(&pb.SubscribeRequest{Request: &pb.SubscribeRequest_Result{Result: &pb.MessageResult{MessageId: msg.Id}}})
		}
	}()

	stop := make(chan struct{})
	var members sync.WaitGroup
	for w := range 3 {
		members.Add(1)
		go func() {
			defer members.Done()
			rnd := uint64(w*7919 + 1)
			next := func(n uint64) uint64 { rnd = rnd*6364136223846793005 + 1442695040888963407; return (rnd >> 33) % n }
			for {
				select {
				case <-stop:
					return
				default:
				}
				cc, err := grpc.NewClient(m.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
				if err != nil {
					t.Error(err)
					return
				}
				sctx, cancel := context.WithCancel(ctx)
				go func() {
					select {
					case <-stop:
					case <-sctx.Done():
					}
					cancel()
				}()
				st, err := pb.NewPubSubClient(cc).Subscribe(sctx)
				if err == nil {
					err = st.Send(&pb.SubscribeRequest{Request: &pb.SubscribeRequest_Subscribe{Subscribe: &pb.SubscribeInit{
						Topic: "churn", Group: "workers", MaxInFlight: 8, MaxAttempts: 4, DeadLetterTopic: "churn-dead",
						MinBackoff: dur(time.Millisecond), MaxBackoff: dur(5 * time.Millisecond)}}})
				}
				if err == nil {
					_, err = st.Recv() // ready
				}
				// Each session handles a random number of messages, then
				// crashes: the connection goes without settling the rest.
				for n := 10 + next(40); err == nil && n > 0; n-- {
					var r *pb.SubscribeResponse
					if r, err = st.Recv(); err != nil {
						break
					}
					msg := r.GetMessage()
					if msg.Attempt > 1 {
						mu.Lock()
						redelivered++
						mu.Unlock()
					}
					action := pb.MessageAction_MESSAGE_ACTION_ACK
					switch x := next(100); {
					case x < 15:
						action = pb.MessageAction_MESSAGE_ACTION_NACK
					case x < 20:
						action = pb.MessageAction_MESSAGE_ACTION_DROP
					case x < 25:
						continue // left unsettled until the crash
					}
					if err = st.Send(&pb.SubscribeRequest{Request: &pb.SubscribeRequest_Result{Result: &pb.MessageResult{MessageId: msg.Id, Action: action}}}); err != nil {
						break
					}
					if action == pb.MessageAction_MESSAGE_ACTION_ACK {
						// Counted as settled only once the ack surely
						// applied: see the drain below.
						mu.Lock()
						settled[msg.Id] = true
						mu.Unlock()
					}
				}
				cancel()
				cc.Close()
			}
		}()
	}
	for i := range total {
		r, err := ps.Publish(ctx, &pb.PublishRequest{Topic: "churn", Data: []byte(fmt.Sprint(i))})
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		published[r.MessageId] = true
		mu.Unlock()
	}
	// Give the churning members a while, then a well-behaved member acks
	// whatever is left (messages whose acks were lost in a crash come
	// again: at least once).
	time.Sleep(2 * time.Second)
	close(stop)
	members.Wait()
	final := subscribe(t, dial(t, m), &pb.SubscribeInit{Topic: "churn", Group: "workers", MaxInFlight: 100})
	go func() {
		for {
			r, err := final.stream.Recv()
			if err != nil {
				return
			}
			msg := r.GetMessage()
			mu.Lock()
			settled[msg.Id] = true
			mu.Unlock()
			final.stream.Send(&pb.SubscribeRequest{Request: &pb.SubscribeRequest_Result{Result: &pb.MessageResult{MessageId: msg.Id}}})
		}
	}()
	apptest.Eventually(t, 30*time.Second, "every message acked or dead-lettered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for id := range published {
			if !settled[id] {
				return false
			}
		}
		return true
	})
	mu.Lock()
	defer mu.Unlock()
	if deadLettered == 0 || redelivered == 0 {
		t.Fatalf("the churn did not exercise dead letters (%d) and redeliveries (%d)", deadLettered, redelivered)
	}
	t.Logf("%d messages, %d redeliveries, %d dead-lettered", total, redelivered, deadLettered)
}

// TestShutdownEndsSubscriptions: subscriptions never end by themselves,
// so shutdown ends them with UNAVAILABLE (subscribe again) instead of
// waiting out the drain for them; configuration subscriptions too.
func TestShutdownEndsSubscriptions(t *testing.T) {
	m := apptest.Start(t, embeddedYAML(t.TempDir(), ""))
	cc := dial(t, m)
	sub := subscribe(t, cc, &pb.SubscribeInit{Topic: "t"})
	cs, err := pb.NewConfigurationClient(cc).Subscribe(ctxT(t), &pb.SubscribeConfigurationRequest{Group: "g"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Recv(); err != nil {
		t.Fatal(err)
	}
	shut, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m.Shutdown(shut)
	if shut.Err() != nil {
		t.Fatal("shutdown waited out its drain for open subscriptions")
	}
	_, err = sub.stream.Recv()
	wantCode(t, err, codes.Unavailable, "Mecha is shutting down: subscribe again")
	_, err = cs.Recv()
	wantCode(t, err, codes.Unavailable, "Mecha is shutting down: subscribe again")
}

// TestReloadRotatesToken: a new token applies to the next call, over the
// same connection, and open subscriptions stay.
func TestReloadRotatesToken(t *testing.T) {
	dir := t.TempDir()
	yaml := strings.Replace(embeddedYAML(dir, "  auth: { token: old-token }"), "listen: 127.0.0.1:0\n  dapr", fmt.Sprintf("listen: 127.0.0.1:%d\n  dapr", redistest.FreePort(t)), 1)
	m := apptest.Start(t, yaml)
	ctx := ctxT(t)
	cc := dial(t, m)
	oldCtx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer old-token")
	newCtx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer new-token")
	st, err := pb.NewPubSubClient(cc).Subscribe(oldCtx)
	if err != nil {
		t.Fatal(err)
	}
	st.Send(&pb.SubscribeRequest{Request: &pb.SubscribeRequest_Subscribe{Subscribe: &pb.SubscribeInit{Topic: "t"}}})
	if r, err := st.Recv(); err != nil || r.GetReady() == nil {
		t.Fatalf("subscribe: %v %v", r, err)
	}
	cfg, err := configs.Parse("reload.yaml", []byte(strings.Replace(yaml, "old-token", "new-token", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Reload(ctx, cfg, time.Second); err != nil {
		t.Fatal(err)
	}
	seq := pb.NewSequencerClient(cc)
	_, err = seq.NextID(oldCtx, &pb.NextIDRequest{Key: "k"})
	wantCode(t, err, codes.Unauthenticated, "invalid token")
	if _, err := seq.NextID(newCtx, &pb.NextIDRequest{Key: "k"}); err != nil {
		t.Fatalf("new token: %v", err)
	}
	if _, err := pb.NewPubSubClient(cc).Publish(newCtx, &pb.PublishRequest{Topic: "t", Data: []byte("after rotation")}); err != nil {
		t.Fatal(err)
	}
	r, err := st.Recv()
	if err != nil || string(r.GetMessage().GetData()) != "after rotation" {
		t.Fatalf("the open subscription after the rotation: %v %v", r, err)
	}
}

// TestReleaseOnDisconnectFollowsTheLatestAcquisition: a connection that
// took a lock with release_on_disconnect, let it expire, and saw the same
// owner take it again from another connection without the flag, does not
// release that new acquisition when it closes.
func TestReleaseOnDisconnectFollowsTheLatestAcquisition(t *testing.T) {
	m := apptest.Start(t, embeddedYAML(t.TempDir(), ""))
	ctx := ctxT(t)
	first := dial(t, m)
	r, err := pb.NewLockClient(first).TryLock(ctx, &pb.TryLockRequest{ResourceId: "r", LockOwner: "svc", Ttl: dur(50 * time.Millisecond), ReleaseOnDisconnect: true})
	if err != nil || !r.Success {
		t.Fatalf("first: %v %v", r, err)
	}
	second := pb.NewLockClient(dial(t, m))
	apptest.Eventually(t, 10*time.Second, "the first lease to expire and the owner to take the lock again", func() bool {
		r, err := second.TryLock(ctx, &pb.TryLockRequest{ResourceId: "r", LockOwner: "svc", Ttl: dur(time.Hour)})
		return err == nil && r.Success
	})
	first.Close()
	// The close is handled asynchronously: give it time to act, then the
	// lock must still be held (someone else cannot take it).
	time.Sleep(200 * time.Millisecond)
	r, err = second.TryLock(ctx, &pb.TryLockRequest{ResourceId: "r", LockOwner: "other", Ttl: dur(time.Second)})
	if err != nil || r.Success {
		t.Fatalf("the first connection's close released the owner's new lock: %v %v", r, err)
	}
}
