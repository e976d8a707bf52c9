// Package grpc runs unmodified gRPC clients against Mecha's gRPC API: the
// Dapr Go SDK (v1.11.0) against the Dapr-compatible listener, on the
// embedded components and on the Redis ones, and grpcurl against the
// mecha.runtime.v1 services through server reflection.
package grpc

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	dapr "github.com/dapr/go-sdk/client"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/mecha-gateway/mecha/cmd/mecha/app"
	"github.com/mecha-gateway/mecha/cmd/mecha/app/apptest"
	pb "github.com/mecha-gateway/mecha/grpcapi/runtimev1"
)

// componentSets are the component configurations every Dapr SDK test
// runs against; prefix keeps Redis keys of parallel runs apart.
func componentSets(prefix string) map[string]string {
	return map[string]string{
		"embedded": `
    config:    { appcfg: { type: embedded } }
    lock:      { locks:  { type: embedded } }
    pubsub:    { events: { type: embedded } }`,
		"redis": fmt.Sprintf(`
    config:    { appcfg: { type: redis, metadata: { redisHost: "127.0.0.1:6379", keyPrefix: "%[1]s" } } }
    lock:      { locks:  { type: redis, metadata: { redisHost: "127.0.0.1:6379", keyPrefix: "%[1]s" } } }
    pubsub:    { events: { type: redis, metadata: { redisHost: "127.0.0.1:6379", processingTimeout: "5s", redeliverInterval: "1s" } } }`, prefix),
		// The other brokers, for pub/sub (configuration and locks on the
		// embedded components).
		"rabbitmq": embeddedCfgLock + `
    pubsub:    { events: { type: rabbitmq, metadata: { connectionString: "amqp://guest:guest@127.0.0.1:5672/" } } }`,
		"jetstream": embeddedCfgLock + `
    pubsub:    { events: { type: jetstream, create_streams: true, metadata: { natsURL: "nats://127.0.0.1:4222" } } }`,
		"mqtt3": embeddedCfgLock + fmt.Sprintf(`
    pubsub:    { events: { type: mqtt3, metadata: { url: "tcp://127.0.0.1:1883", consumerID: "%s" } } }`, prefix),
	}
}

const embeddedCfgLock = `
    config:    { appcfg: { type: embedded } }
    lock:      { locks:  { type: embedded } }`

func startMecha(t *testing.T, components string) *app.Mecha {
	t.Helper()
	if testing.Short() {
		t.Skip("compatibility tests use the machine's Redis")
	}
	return apptest.Start(t, fmt.Sprintf(`
data_dir: %s
grpc:
  listen: 127.0.0.1:0
  dapr_listen: 127.0.0.1:0
  components:%s
`, t.TempDir(), components))
}

func eachSet(t *testing.T, fn func(t *testing.T, m *app.Mecha, c dapr.Client, uniq string)) {
	for name, comps := range componentSets(fmt.Sprintf("mecha-compat-%d", time.Now().UnixNano())) {
		t.Run(name, func(t *testing.T) {
			m := startMecha(t, comps)
			// What an unmodified application does: DAPR_GRPC_ENDPOINT
			// names the sidecar; NewClientWithAddress is what NewClient
			// calls with it.
			t.Setenv("DAPR_GRPC_ENDPOINT", m.DaprAddr().String())
			c, err := dapr.NewClientWithAddress(m.DaprAddr().String())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			fn(t, m, c, fmt.Sprintf("%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), time.Now().UnixNano()))
		})
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mechaConn(t *testing.T, m *app.Mecha) *grpc.ClientConn {
	cc, err := grpc.NewClient(m.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func TestDaprSDKLock(t *testing.T) {
	eachSet(t, func(t *testing.T, m *app.Mecha, c dapr.Client, uniq string) {
		ctx := ctxT(t)
		r, err := c.TryLockAlpha1(ctx, "locks", &dapr.LockRequest{ResourceID: uniq, LockOwner: "a", ExpiryInSeconds: 30})
		if err != nil || !r.Success {
			t.Fatalf("a: %v %v", r, err)
		}
		r, err = c.TryLockAlpha1(ctx, "locks", &dapr.LockRequest{ResourceID: uniq, LockOwner: "b", ExpiryInSeconds: 30})
		if err != nil || r.Success {
			t.Fatalf("b acquired a held lock: %v %v", r, err)
		}
		u, err := c.UnlockAlpha1(ctx, "locks", &dapr.UnlockRequest{ResourceID: uniq, LockOwner: "b"})
		if err != nil || u.Status != "LOCK_BELONGS_TO_OTHERS" {
			t.Fatalf("b unlocking: %v %v", u, err)
		}
		u, err = c.UnlockAlpha1(ctx, "locks", &dapr.UnlockRequest{ResourceID: uniq, LockOwner: "a"})
		if err != nil || u.Status != "SUCCESS" {
			t.Fatalf("a unlocking: %v %v", u, err)
		}
		u, err = c.UnlockAlpha1(ctx, "locks", &dapr.UnlockRequest{ResourceID: uniq, LockOwner: "a"})
		if err != nil || u.Status != "LOCK_DOES_NOT_EXIST" {
			t.Fatalf("unlocking a free lock: %v %v", u, err)
		}
		_, err = c.TryLockAlpha1(ctx, "nope", &dapr.LockRequest{ResourceID: uniq, LockOwner: "a", ExpiryInSeconds: 30})
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("unknown store: %v", err)
		}
	})
}

func TestDaprSDKConfiguration(t *testing.T) {
	eachSet(t, func(t *testing.T, m *app.Mecha, c dapr.Client, uniq string) {
		ctx := ctxT(t)
		cfg := pb.NewConfigurationClient(mechaConn(t, m))
		// Dapr's flat keys live in the empty scope of Mecha's API.
		k1, k2 := uniq+"-pool", uniq+"-timeout"
		if _, err := cfg.Save(ctx, &pb.SaveConfigurationRequest{Items: []*pb.ConfigurationItem{{Key: k1, Content: "10"}}}); err != nil {
			t.Fatal(err)
		}
		it, err := c.GetConfigurationItem(ctx, "appcfg", k1)
		if err != nil || it == nil || it.Value != "10" || it.Version == "" {
			t.Fatalf("get: %+v %v", it, err)
		}
		items, err := c.GetConfigurationItems(ctx, "appcfg", []string{k1, k2})
		if err != nil || len(items) != 1 || items[k1].Value != "10" {
			t.Fatalf("get items: %+v %v", items, err)
		}
		var mu sync.Mutex
		got := map[string]string{}
		id, err := c.SubscribeConfigurationItems(ctx, "appcfg", []string{k1, k2}, func(id string, items map[string]*dapr.ConfigurationItem) {
			mu.Lock()
			defer mu.Unlock()
			for k, v := range items {
				got[k] = v.Value
			}
		})
		if err != nil || id == "" {
			t.Fatalf("subscribe: %q %v", id, err)
		}
		if _, err := cfg.Save(ctx, &pb.SaveConfigurationRequest{Items: []*pb.ConfigurationItem{{Key: k1, Content: "20"}, {Key: k2, Content: "5s"}}}); err != nil {
			t.Fatal(err)
		}
		apptest.Eventually(t, 10*time.Second, "both updates", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return got[k1] == "20" && got[k2] == "5s"
		})
		if err := c.UnsubscribeConfigurationItems(ctx, "appcfg", id); err != nil {
			t.Fatalf("unsubscribe: %v", err)
		}
		if err := c.UnsubscribeConfigurationItems(ctx, "appcfg", id); err == nil {
			t.Fatal("unsubscribing twice succeeded")
		}
	})
}

func TestDaprSDKPubSub(t *testing.T) {
	eachSet(t, func(t *testing.T, m *app.Mecha, c dapr.Client, uniq string) {
		ctx := ctxT(t)
		topic := uniq
		sub, err := c.Subscribe(ctx, dapr.SubscriptionOptions{PubsubName: "events", Topic: topic})
		if err != nil {
			t.Fatalf("subscribe: %v", err)
		}
		defer sub.Close()
		if err := c.PublishEvent(ctx, "events", topic, map[string]any{"order": 1}); err != nil {
			t.Fatalf("publish: %v", err)
		}
		msg, err := sub.Receive()
		if err != nil {
			t.Fatal(err)
		}
		data, ok := msg.Data.(map[string]any)
		if !ok || data["order"] != float64(1) || msg.Topic != topic || msg.PubsubName != "events" || msg.ID == "" {
			t.Fatalf("received %+v", msg.TopicEvent)
		}
		// Retry: the event comes again.
		if err := msg.Retry(); err != nil {
			t.Fatal(err)
		}
		again, err := sub.Receive()
		if err != nil || again.ID != msg.ID {
			t.Fatalf("after retry: %+v %v", again, err)
		}
		if err := again.Success(); err != nil {
			t.Fatal(err)
		}
		res := c.PublishEvents(ctx, "events", topic, []any{"two", "three"})
		if res.Error != nil || len(res.FailedEvents) != 0 {
			t.Fatalf("bulk publish: %+v", res)
		}
		var texts []string
		for range 2 {
			mm, err := sub.Receive()
			if err != nil {
				t.Fatal(err)
			}
			texts = append(texts, fmt.Sprint(mm.Data))
			mm.Success()
		}
		// Brokers whose consumers run handlers in parallel (Redis streams
		// through contrib) may deliver the two in either order.
		sort.Strings(texts)
		if strings.Join(texts, ",") != "three,two" {
			t.Fatalf("bulk messages: %v", texts)
		}
		// Everything else the Dapr service has is UNIMPLEMENTED.
		_, err = c.GetState(ctx, "statestore", "k", nil)
		if status.Code(err) != codes.Unimplemented {
			t.Fatalf("GetState: %v", err)
		}
	})
}
