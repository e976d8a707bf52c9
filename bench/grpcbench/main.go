// Command grpcbench measures Mecha's gRPC API side by side with the same
// operations done directly on Redis by a Go client (go-redis), in one
// run: added latency at a fixed request rate for TryLock+Unlock, config
// Get, Publish and NextID on the Redis components, Mecha's memory with
// all four capabilities configured, and the embedded components'
// throughput.
//
//	go run ./bench/grpcbench -mecha bin/mecha [-rate 1000] [-duration 5s] [-rounds 3]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/mecha-gateway/mecha/bench/internal/benchutil"
	pb "github.com/mecha-gateway/mecha/grpcapi/runtimev1"
)

type options struct {
	mecha     string
	redisAddr string
	rate      int
	duration  time.Duration
	rounds    int
	conc      int
	tput      time.Duration
	suites    string
}

func main() {
	var o options
	flag.StringVar(&o.mecha, "mecha", "bin/mecha", "the mecha binary")
	flag.StringVar(&o.redisAddr, "redis", "127.0.0.1:6379", "the Redis server both Mecha's components and the direct client use")
	flag.IntVar(&o.rate, "rate", 1000, "requests per second in the latency runs")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "length of one latency run")
	flag.IntVar(&o.rounds, "rounds", 3, "latency runs per target (medians are reported)")
	flag.IntVar(&o.conc, "concurrency", 8, "clients in the embedded throughput runs")
	flag.DurationVar(&o.tput, "throughput-duration", 3*time.Second, "length of one throughput run")
	flag.StringVar(&o.suites, "suite", "redis,embedded", "what to run: redis (latency against direct Redis, memory), embedded (throughput)")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "grpcbench:", err)
		os.Exit(1)
	}
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "grpcbench:", err)
		os.Exit(1)
	}
}

// mecha is a running Mecha process with a gRPC API.
type mecha struct {
	pid  int
	stop func()
	cc   *grpc.ClientConn
}

func startMecha(dir, bin, name, components string) *mecha {
	grpcPort, _ := benchutil.FreePort()
	admin, _ := benchutil.FreePort()
	cfg := filepath.Join(dir, name+".yaml")
	check(os.WriteFile(cfg, []byte(fmt.Sprintf(`admin: {listen: 127.0.0.1:%d}
log: {level: warn}
data_dir: %s
grpc:
  listen: 127.0.0.1:%d
  components:%s
`, admin, filepath.Join(dir, name+"-data"), grpcPort, components)), 0o644))
	cmd, err := benchutil.Start(dir, name, bin, "run", "-c", cfg)
	check(err)
	if _, err := benchutil.WaitReady(admin); err != nil {
		benchutil.Stop(cmd)
		check(fmt.Errorf("%w\n%s", err, benchutil.Tail(filepath.Join(dir, name+".log"), 20)))
	}
	cc, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", grpcPort), grpc.WithTransportCredentials(insecure.NewCredentials()))
	check(err)
	return &mecha{pid: cmd.Process.Pid, cc: cc, stop: func() { cc.Close(); benchutil.Stop(cmd) }}
}

// op is one operation measured through Mecha and directly.
type op struct {
	name          string
	mecha, direct func(ctx context.Context, i int64) error
}

func run(o options) error {
	dir, err := os.MkdirTemp("", "grpcbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if strings.Contains(o.suites, "redis") {
		if err := redisSuite(dir, o); err != nil {
			return err
		}
	}
	if strings.Contains(o.suites, "embedded") {
		embedded(dir, o)
	}
	return nil
}

// redisSuite: the four capabilities on the Redis components against the
// same operations on Redis directly, and Mecha's memory.
func redisSuite(dir string, o options) error {
	prefix := fmt.Sprintf("grpcbench-%d", time.Now().UnixNano())
	meta := fmt.Sprintf(`{ redisHost: "%s" }`, o.redisAddr)
	redisComponents := fmt.Sprintf(`
    config:    { cfg:    { type: redis, metadata: { redisHost: "%[1]s", keyPrefix: "%[2]s" } } }
    lock:      { locks:  { type: redis, metadata: { redisHost: "%[1]s", keyPrefix: "%[2]s" } } }
    pubsub:    { events: { type: redis, metadata: %[3]s } }
    sequencer: { ids:    { type: redis, metadata: { redisHost: "%[1]s", keyPrefix: "%[2]s" } } }`, o.redisAddr, prefix, meta)
	m := startMecha(dir, o.mecha, "mecha-redis", redisComponents)
	defer m.stop()
	time.Sleep(200 * time.Millisecond)
	idleRSS := benchutil.RSS(m.pid)

	rdb := redis.NewClient(&redis.Options{Addr: o.redisAddr, PoolSize: 64})
	defer rdb.Close()
	ctx := context.Background()
	lock, cfg, ps, seq := pb.NewLockClient(m.cc), pb.NewConfigurationClient(m.cc), pb.NewPubSubClient(m.cc), pb.NewSequencerClient(m.cc)
	if _, err := cfg.Save(ctx, &pb.SaveConfigurationRequest{Group: "bench", Items: []*pb.ConfigurationItem{{Key: "k", Content: strings.Repeat("v", 100)}}}); err != nil {
		return fmt.Errorf("save config: %w", err)
	}
	rdb.Set(ctx, prefix+"-direct-cfg", strings.Repeat("v", 100), 0)
	unlockScript := redis.NewScript(`if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`)
	ttl := durationpb.New(10 * time.Second)
	payload := []byte(strings.Repeat("x", 100))
	stream := prefix + "-direct-stream"
	defer rdb.Del(context.Background(), stream, prefix+"-direct-cfg", prefix+"-direct-seq")
	ops := []op{
		{name: "TryLock+Unlock",
			mecha: func(ctx context.Context, i int64) error {
				res := fmt.Sprintf("r%d", i)
				r, err := lock.TryLock(ctx, &pb.TryLockRequest{ResourceId: res, LockOwner: "bench", Ttl: ttl})
				if err != nil {
					return err
				}
				if !r.Success {
					return fmt.Errorf("lock %s not acquired", res)
				}
				_, err = lock.Unlock(ctx, &pb.UnlockRequest{ResourceId: res, LockOwner: "bench"})
				return err
			},
			direct: func(ctx context.Context, i int64) error {
				key := fmt.Sprintf("%s-direct-lock-%d", prefix, i)
				ok, err := rdb.SetNX(ctx, key, "bench", 10*time.Second).Result()
				if err != nil {
					return err
				}
				if !ok {
					return fmt.Errorf("lock %s not acquired", key)
				}
				return unlockScript.Run(ctx, rdb, []string{key}, "bench").Err()
			}},
		{name: "config Get",
			mecha: func(ctx context.Context, i int64) error {
				r, err := cfg.Get(ctx, &pb.GetConfigurationRequest{Group: "bench", Keys: []string{"k"}})
				if err == nil && len(r.Items) != 1 {
					err = fmt.Errorf("config item missing")
				}
				return err
			},
			direct: func(ctx context.Context, i int64) error { return rdb.Get(ctx, prefix+"-direct-cfg").Err() }},
		{name: "Publish",
			mecha: func(ctx context.Context, i int64) error {
				_, err := ps.Publish(ctx, &pb.PublishRequest{Topic: prefix + "-topic", Data: payload})
				return err
			},
			direct: func(ctx context.Context, i int64) error {
				return rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{"data", payload}}).Err()
			}},
		{name: "NextID",
			mecha: func(ctx context.Context, i int64) error {
				_, err := seq.NextID(ctx, &pb.NextIDRequest{Key: "bench"})
				return err
			},
			direct: func(ctx context.Context, i int64) error { return rdb.Incr(ctx, prefix+"-direct-seq").Err() }},
	}

	fmt.Printf("== gRPC API on the Redis components vs the same operation on Redis directly (go-redis) ==\n")
	fmt.Printf("open loop at %d req/s, %s per run, %d rounds alternating; medians of the rounds\n\n", o.rate, o.duration, o.rounds)
	fmt.Printf("%-16s %10s %10s %10s %10s %12s %12s %8s\n", "operation", "mecha p50", "direct p50", "mecha p99", "direct p99", "added p50", "added p99", "errors")
	var seqN atomic.Int64
	for _, op := range ops {
		var mp50, mp99, dp50, dp99 []float64
		var errs int64
		for r := 0; r < o.rounds; r++ {
			p50, p99, e := openLoop(o, op.mecha, &seqN)
			mp50, mp99, errs = append(mp50, p50), append(mp99, p99), errs+e
			p50, p99, e = openLoop(o, op.direct, &seqN)
			dp50, dp99, errs = append(dp50, p50), append(dp99, p99), errs+e
		}
		m50, d50, m99, d99 := benchutil.Median(mp50), benchutil.Median(dp50), benchutil.Median(mp99), benchutil.Median(dp99)
		fmt.Printf("%-16s %8.3fms %8.3fms %8.3fms %8.3fms %10.3fms %10.3fms %8d\n", op.name, m50, d50, m99, d99, m50-d50, m99-d99, errs)
	}
	fmt.Printf("\nMecha RSS with config, lock, pubsub and sequencer on Redis: idle %.1f MiB, after the runs %.1f MiB (peak %.1f MiB)\n",
		benchutil.MB(idleRSS), benchutil.MB(benchutil.RSS(m.pid)), benchutil.MB(benchutil.ProcStatus(m.pid, "VmHWM")))
	m.stop()
	rdb.Del(ctx, prefix+"-topic")
	cleanup(rdb, prefix)
	return nil
}

// cleanup deletes the keys a run left in Redis.
func cleanup(rdb *redis.Client, prefix string) {
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, "*"+prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		rdb.Del(ctx, iter.Val())
	}
}

// openLoop issues fn at o.rate for o.duration, each call timed from
// when it was due (so a stall counts against the caller, as it would in
// an application), and returns p50 and p99 in milliseconds.
func openLoop(o options, fn func(context.Context, int64) error, seqN *atomic.Int64) (float64, float64, int64) {
	total := int(float64(o.rate) * o.duration.Seconds())
	lat := make([]float64, total)
	interval := time.Second / time.Duration(o.rate)
	var wg sync.WaitGroup
	var errs atomic.Int64
	start := time.Now().Add(10 * time.Millisecond)
	jobs := make(chan int, total)
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				due := start.Add(time.Duration(i) * interval)
				if d := time.Until(due); d > 0 {
					time.Sleep(d)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				if err := fn(ctx, seqN.Add(1)); err != nil {
					if errs.Add(1) == 1 {
						fmt.Fprintln(os.Stderr, "  error:", err)
					}
				}
				cancel()
				lat[i] = float64(time.Since(due)) / 1e6
			}
		}()
	}
	for i := 0; i < total; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	sort.Float64s(lat)
	return lat[total/2], lat[total*99/100], errs.Load()
}

// embedded measures the embedded components' throughput: o.conc clients
// calling as fast as they can.
func embedded(dir string, o options) {
	m := startMecha(dir, o.mecha, "mecha-embedded", `
    config:    { cfg:    { type: embedded } }
    lock:      { locks:  { type: embedded } }
    pubsub:    { events: { type: embedded } }
    sequencer: { ids:    { type: embedded } }`)
	defer m.stop()
	ctx := context.Background()
	lock, cfg, ps, seq := pb.NewLockClient(m.cc), pb.NewConfigurationClient(m.cc), pb.NewPubSubClient(m.cc), pb.NewSequencerClient(m.cc)
	if _, err := cfg.Save(ctx, &pb.SaveConfigurationRequest{Group: "bench", Items: []*pb.ConfigurationItem{{Key: "k", Content: "v"}}}); err != nil {
		check(err)
	}
	ttl := durationpb.New(10 * time.Second)
	payload := []byte(strings.Repeat("x", 100))
	var n atomic.Int64
	fmt.Printf("\n== embedded components: throughput, %d clients, %s per run (median of %d) ==\n", o.conc, o.tput, o.rounds)
	for _, c := range []struct {
		name string
		fn   func(ctx context.Context) error
	}{
		{"TryLock+Unlock", func(ctx context.Context) error {
			res := fmt.Sprintf("r%d", n.Add(1))
			if _, err := lock.TryLock(ctx, &pb.TryLockRequest{ResourceId: res, LockOwner: "b", Ttl: ttl}); err != nil {
				return err
			}
			_, err := lock.Unlock(ctx, &pb.UnlockRequest{ResourceId: res, LockOwner: "b"})
			return err
		}},
		{"config Get", func(ctx context.Context) error {
			_, err := cfg.Get(ctx, &pb.GetConfigurationRequest{Group: "bench", Keys: []string{"k"}})
			return err
		}},
		{"config Save", func(ctx context.Context) error {
			_, err := cfg.Save(ctx, &pb.SaveConfigurationRequest{Group: "bench", Items: []*pb.ConfigurationItem{{Key: fmt.Sprintf("k%d", n.Add(1)%100), Content: "v"}}})
			return err
		}},
		{"Publish", func(ctx context.Context) error {
			_, err := ps.Publish(ctx, &pb.PublishRequest{Topic: "bench", Data: payload})
			return err
		}},
		{"NextID strict", func(ctx context.Context) error {
			_, err := seq.NextID(ctx, &pb.NextIDRequest{Key: "strict"})
			return err
		}},
		{"NextID segment", func(ctx context.Context) error {
			_, err := seq.NextID(ctx, &pb.NextIDRequest{Key: "segment", Mode: pb.SequencerMode_SEQUENCER_MODE_SEGMENT})
			return err
		}},
	} {
		var rates []float64
		for r := 0; r < o.rounds; r++ {
			rates = append(rates, closedLoop(o, c.fn))
		}
		fmt.Printf("%-16s %10.0f ops/s\n", c.name, benchutil.Median(rates))
	}
	fmt.Printf("Mecha RSS with the four embedded components after the runs: %.1f MiB\n", benchutil.MB(benchutil.RSS(m.pid)))
}

func closedLoop(o options, fn func(context.Context) error) float64 {
	var done atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(o.tput)
	began := time.Now()
	for w := 0; w < o.conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if err := fn(context.Background()); err != nil {
					check(err)
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(done.Load()) / time.Since(began).Seconds()
}
