package contribpubsub

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/configs"
	"github.com/mecha-gateway/mecha/grpcapi/component"
)

// privateServer is a broker process of the test's own, on a free port, so
// that the test may stop and start it.
type privateServer struct {
	t    *testing.T
	port int
	args func(port int, dir string) (string, []string)
	dir  string
	cmd  *exec.Cmd
}

func newPrivateServer(t *testing.T, bin string, args func(port int, dir string) []string) *privateServer {
	t.Helper()
	if _, err := exec.LookPath(bin); err != nil {
		t.Skipf("%s not installed: %v", bin, err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &privateServer{t: t, port: port, dir: t.TempDir(), args: func(p int, d string) (string, []string) { return bin, args(p, d) }}
	t.Cleanup(s.stop)
	return s
}

func (s *privateServer) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

func (s *privateServer) start() {
	s.t.Helper()
	bin, args := s.args(s.port, s.dir)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Dir = s.dir
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	waitFor(s.t, 10*time.Second, bin+" listening", func() bool {
		c, err := net.DialTimeout("tcp", s.addr(), 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

func (s *privateServer) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

func fastHealth(c any) {
	switch c := c.(type) {
	case *Config:
		c.HealthInterval = configs.Duration(50 * time.Millisecond)
		c.InitTimeout = configs.Duration(2 * time.Second)
	case *JetStreamConfig:
		c.HealthInterval = configs.Duration(50 * time.Millisecond)
		c.InitTimeout = configs.Duration(2 * time.Second)
	}
}

// testOutage starts a component with its broker down (it reports DOWN and
// refuses to publish, quickly), starts the broker (UP, messages flow),
// stops it under an open subscription (DOWN) and starts it again: the
// subscription receives again without being renewed.
func testOutage(t *testing.T, srv *privateServer, bc brokerCase) {
	o := newOpener(t, bc, fastHealth)
	a := o.build(t)
	if err := a.Start(context.Background()); err != nil {
		t.Fatalf("Start with the broker down: %v", err)
	}
	defer a.Close()
	if h := a.Health(); h.State != backends.StateDown {
		t.Fatalf("health %v with the broker down, want DOWN", h)
	}
	res := a.Publish(context.Background(), "t", []component.OutMessage{{Data: []byte("x")}})
	if !errors.Is(res[0].Err, component.ErrUnavailable) {
		t.Fatalf("Publish with the broker down: %v, want ErrUnavailable", res[0].Err)
	}
	if _, err := a.Subscribe(context.Background(), component.SubscribeSpec{Topic: "t", Group: "g", MaxInFlight: 1}); !errors.Is(err, component.ErrUnavailable) {
		t.Fatalf("Subscribe with the broker down: %v, want ErrUnavailable", err)
	}

	srv.start()
	waitFor(t, 10*time.Second, "UP once the broker runs", func() bool { return a.Health().State == backends.StateUp })
	topic := unique(t, "outage")
	sub := subscribeT(t, a, component.SubscribeSpec{Topic: topic, Group: "g"})
	id := publishT(t, a, topic, component.OutMessage{Data: []byte("before")})[0]
	if m := receive(t, sub, 10*time.Second); m.ID != id {
		t.Fatalf("got %q want %q", m.ID, id)
	}
	_ = sub.Ack(context.Background(), id)

	srv.stop()
	waitFor(t, 10*time.Second, "DOWN once the broker stops", func() bool { return a.Health().State == backends.StateDown })
	waitFor(t, 10*time.Second, "the broker connections closed", func() bool {
		a.mu.Lock()
		g, pub := a.groups[groupKey{topic, "g"}], a.pub
		a.mu.Unlock()
		if pub != nil || g == nil {
			return false
		}
		g.attachMu.Lock()
		defer g.attachMu.Unlock()
		return g.sub == nil
	})
	srv.start()
	waitFor(t, 10*time.Second, "UP once the broker is back", func() bool { return a.Health().State == backends.StateUp })
	// The broker lost its state with the restart (these private servers
	// do not persist), so what is published before the subscription is
	// back in place may be lost (MQTT drops messages nobody subscribes
	// to): publish until one arrives.
	sent := map[string]bool{}
	deadline := time.Now().Add(15 * time.Second)
	for {
		res := a.Publish(context.Background(), topic, []component.OutMessage{{Data: []byte("after")}})
		if res[0].Err == nil {
			sent[res[0].ID] = true
		}
		select {
		case m, ok := <-sub.Messages():
			if !ok {
				t.Fatalf("subscription ended: %v", sub.Err())
			}
			_ = sub.Ack(context.Background(), m.ID)
			if sent[m.ID] {
				return
			}
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no message published after the outage arrived (%d published)", len(sent))
		}
	}
}

func TestRedisOutage(t *testing.T) {
	srv := newPrivateServer(t, "redis-server", func(port int, dir string) []string {
		return []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir}
	})
	testOutage(t, srv, brokerCase{"redis", map[string]string{"redisHost": srv.addr(), "processingTimeout": "2s", "redeliverInterval": "500ms"}})
}

func TestJetStreamOutage(t *testing.T) {
	srv := newPrivateServer(t, "nats-server", func(port int, dir string) []string {
		return []string{"-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", dir}
	})
	testOutage(t, srv, brokerCase{"jetstream", map[string]string{"natsURL": "nats://" + srv.addr()}})
}

func TestMQTTOutage(t *testing.T) {
	srv := newPrivateServer(t, "mosquitto", func(port int, dir string) []string {
		return []string{"-p", strconv.Itoa(port)}
	})
	testOutage(t, srv, brokerCase{"mqtt3", map[string]string{"url": fmt.Sprintf("tcp://%s", srv.addr())}})
}
