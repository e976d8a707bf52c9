package grpcapi_test

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/mecha-gateway/mecha/backends/redis/redistest"
	"github.com/mecha-gateway/mecha/cmd/mecha/app/apptest"
	pb "github.com/mecha-gateway/mecha/grpcapi/runtimev1"
)

// TestStoreDownAndBack: while the Redis behind the components is down,
// calls fail with UNAVAILABLE, /readyz and grpc.health.v1 say so; when
// it is back, the same connections work again.
func TestStoreDownAndBack(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	rs := redistest.Start(t)
	m := apptest.Start(t, fmt.Sprintf(`
data_dir: %s
admin: { listen: 127.0.0.1:0 }
grpc:
  listen: 127.0.0.1:0
  components:
    lock:      { locks: { type: redis, metadata: { redisHost: "%[2]s" } } }
    sequencer: { ids:   { type: redis, metadata: { redisHost: "%[2]s" } } }
`, t.TempDir(), rs.Addr()))
	cc := dial(t, m)
	ctx := ctxT(t)
	seq := pb.NewSequencerClient(cc)
	lock := pb.NewLockClient(cc)
	if r, err := seq.NextID(ctx, &pb.NextIDRequest{Key: "k"}); err != nil || r.NextId != 1 {
		t.Fatalf("before: %v %v", r, err)
	}
	rs.Stop()
	_, err := seq.NextID(ctx, &pb.NextIDRequest{Key: "k"})
	wantCode(t, err, codes.Unavailable, "")
	_, err = lock.TryLock(ctx, &pb.TryLockRequest{ResourceId: "r", LockOwner: "o", Ttl: dur(time.Second)})
	wantCode(t, err, codes.Unavailable, "")
	health := healthpb.NewHealthClient(cc)
	apptest.Eventually(t, 10*time.Second, "lock service NOT_SERVING", func() bool {
		r, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: "mecha.runtime.v1.Lock"})
		return err == nil && r.Status == healthpb.HealthCheckResponse_NOT_SERVING && m.Readiness().Status == "DOWN"
	})
	rs.Restart()
	apptest.Eventually(t, 20*time.Second, "calls work again", func() bool {
		r, err := lock.TryLock(ctx, &pb.TryLockRequest{ResourceId: "r", LockOwner: "o", Ttl: dur(time.Second)})
		return err == nil && r.Success
	})
	apptest.Eventually(t, 10*time.Second, "ready again", func() bool { return m.Readiness().Status == "UP" })
	// The restarted Redis kept nothing: the sequence starts again (a
	// Redis that persists would go on).
	if _, err := seq.NextID(ctx, &pb.NextIDRequest{Key: "k"}); err != nil {
		t.Fatal(err)
	}
}
