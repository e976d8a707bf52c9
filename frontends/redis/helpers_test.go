package redis_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mecha-gateway/mecha/backends/redis/redistest"
	"github.com/mecha-gateway/mecha/cmd/mecha/app"
	"github.com/mecha-gateway/mecha/cmd/mecha/app/apptest"
)

// gateway is a Mecha in front of its own redis-server.
type gateway struct {
	redis *redistest.Server
	m     *app.Mecha
	addr  string
}

// startGateway starts a redis-server and Mecha in front of it. extra is
// YAML added to the frontend entry (indented keys such as "auth: {...}").
func startGateway(t *testing.T, frontendExtra, backendExtra string, redisArgs ...string) *gateway {
	t.Helper()
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	rs := redistest.Start(t, redisArgs...)
	cfg := fmt.Sprintf(`
admin: {listen: "127.0.0.1:0"}
frontends:
  - name: cache
    protocol: redis
    listen: 127.0.0.1:0
    backend: upstream
%s
backends:
  upstream:
    type: redis
    addr: %s
    health_interval: 100ms
%s
`, indent(frontendExtra, "    "), rs.Addr(), indent(backendExtra, "    "))
	m := apptest.Start(t, cfg)
	return &gateway{redis: rs, m: m, addr: apptest.Addr(t, m, "cache")}
}

func indent(s, prefix string) string {
	if strings.TrimSpace(s) == "" {
		return ""
	}
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		b.WriteString(prefix + strings.TrimSpace(l) + "\n")
	}
	return b.String()
}

var (
	exchange = redistest.Exchange
	bulk     = redistest.Bulk
)

func dial(t *testing.T, addr string) *redistest.Client { return redistest.Dial(t, addr) }
