package embedded

import (
	"context"
	"fmt"
	stdsync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mecha-gateway/mecha/grpcapi/component"
)

// The benchmarks measure the embedded components alone, with fsync on
// (the default): run them with -cpu to vary the concurrent callers, e.g.
// go test -run X -bench . -cpu 1,16 ./grpcapi/components/embedded/

func BenchmarkReserve(b *testing.B) {
	s, err := NewSequencer(DefaultSequencerConfig(), env(b.TempDir(), "bench"))
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Reserve(context.Background(), "k", 1); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkTryLockUnlock(b *testing.B) {
	l, err := NewLockStore(DefaultLockConfig(), env(b.TempDir(), "bench"))
	if err != nil {
		b.Fatal(err)
	}
	if err := l.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	var n atomic.Int64
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		res := fmt.Sprint("r", n.Add(1))
		for pb.Next() {
			if _, ok, err := l.TryLock(context.Background(), res, "o", time.Minute); err != nil || !ok {
				b.Error(ok, err)
				return
			}
			if _, err := l.Unlock(context.Background(), res, "o"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkPublishConsume publishes b.N messages from parallel publishers
// while one subscriber acks them, one at a time as a gRPC stream does; it
// ends when all are acked.
func BenchmarkPublishConsume(b *testing.B) {
	b.Run("sync", func(b *testing.B) { benchPublishConsume(b, true, false) })
	b.Run("sync-concurrent-acks", func(b *testing.B) { benchPublishConsume(b, true, true) })
	b.Run("nosync", func(b *testing.B) { benchPublishConsume(b, false, false) })
}

// benchPublishConsume: with concurrentAcks the subscriber acks each
// message from a goroutine of its own, so that acks share commits.
func benchPublishConsume(b *testing.B, sync, concurrentAcks bool) {
	ctx := context.Background()
	cfg := DefaultPubSubConfig()
	cfg.Store.Sync = sync
	ps, err := NewPubSub(cfg, env(b.TempDir(), "bench"))
	if err != nil {
		b.Fatal(err)
	}
	if err := ps.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer ps.Close()
	sub, err := ps.Subscribe(ctx, component.SubscribeSpec{Topic: "t", Group: "g", MaxInFlight: 256, MaxAttempts: 3, MinBackoff: time.Second, MaxBackoff: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg stdsync.WaitGroup
		defer wg.Wait()
		for range b.N {
			m := <-sub.Messages()
			if !concurrentAcks {
				if err := sub.Ack(ctx, m.ID); err != nil {
					b.Error(err)
					return
				}
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := sub.Ack(ctx, m.ID); err != nil {
					b.Error(err)
				}
			}()
		}
	}()
	payload := make([]byte, 256)
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if r := ps.Publish(ctx, "t", []component.OutMessage{{Data: payload}}); r[0].Err != nil {
				b.Error(r[0].Err)
				return
			}
		}
	})
	<-done
}
