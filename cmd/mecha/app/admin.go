package app

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/backends/metrics"
)

func (m *Mecha) startAdmin(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("admin: listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", m.readyz)
	mux.HandleFunc("GET /metrics", m.metrics)
	if m.plan.Load().cfg.Admin.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	m.admin = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	m.adminAddr = ln.Addr()
	go m.admin.Serve(ln)
	return nil
}

// Component is one entry of /readyz.
type Component struct {
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Type   string `json:"type"`
	State  string `json:"state"`
	Detail string `json:"detail,omitempty"`
}

// Readiness is the /readyz document.
type Readiness struct {
	Status     string      `json:"status"`
	Components []Component `json:"components"`
}

// Readiness reports every component's state.
func (m *Mecha) Readiness() Readiness {
	p := m.plan.Load()
	r := Readiness{Status: "UP"}
	addC := func(kind, name, typ string, h backends.Health) {
		r.Components = append(r.Components, Component{Kind: kind, Name: name, Type: typ, State: h.State.String(), Detail: h.Detail})
		if h.State != backends.StateUp {
			r.Status = "DOWN"
		}
	}
	for _, fe := range p.frontends {
		addC("frontend", fe.name, fe.protocol, fe.f.Health())
	}
	for _, name := range sortedKeys(p.backends) {
		e := p.backends[name]
		addC("backend", name, e.typ, e.b.Health())
	}
	if g := p.grpc; g != nil && g.srv != nil {
		addC("frontend", "grpc", "grpc", g.srv.Health())
		for _, e := range g.set.Entries() {
			addC("component", string(e.Capability)+"/"+e.Name, e.Type, e.C.Health())
		}
	}
	return r
}

func (m *Mecha) readyz(w http.ResponseWriter, r *http.Request) {
	rd := m.Readiness()
	w.Header().Set("Content-Type", "application/json")
	if rd.Status != "UP" {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(rd)
}

func (m *Mecha) metrics(w http.ResponseWriter, r *http.Request) {
	p := m.plan.Load()
	mw := metrics.NewWriter()
	for _, fe := range p.frontends {
		h := fe.f.Health()
		l := []metrics.Label{{Name: "frontend", Value: fe.name}, {Name: "protocol", Value: fe.protocol}}
		mw.Gauge("mecha_frontend_up", "1 when the frontend is serving.", boolF(h.State == backends.StateUp), l...)
		if c, ok := fe.f.(metrics.Collector); ok {
			c.CollectMetrics(mw)
		}
	}
	for _, name := range sortedKeys(p.backends) {
		e := p.backends[name]
		h := e.b.Health()
		l := []metrics.Label{{Name: "backend", Value: name}, {Name: "type", Value: e.typ}}
		mw.Gauge("mecha_backend_up", "1 when the backend is healthy.", boolF(h.State == backends.StateUp), l...)
		for _, st := range []backends.State{backends.StateInit, backends.StateUp, backends.StateDown} {
			mw.Gauge("mecha_backend_state", "The backend's health state (INIT, UP, DOWN): 1 for the current one.",
				boolF(h.State == st), append(l, metrics.Label{Name: "state", Value: st.String()})...)
		}
		if c, ok := e.b.(metrics.Collector); ok {
			c.CollectMetrics(mw)
		}
	}
	if g := p.grpc; g != nil && g.srv != nil {
		g.srv.CollectMetrics(mw)
	}
	mw.Gauge("mecha_build_info", "Mecha's version.", 1, metrics.Label{Name: "version", Value: m.version}, metrics.Label{Name: "goversion", Value: runtime.Version()})
	mw.Gauge("mecha_start_time_seconds", "When Mecha started, in Unix seconds.", float64(m.started.Unix()))
	mw.Counter("mecha_config_reloads_total", "Configurations applied by reload.", float64(m.reloads.Load()))
	mw.Counter("mecha_config_reload_errors_total", "Reloads refused or failed.", float64(m.reloadErrors.Load()))
	mw.Gauge("mecha_goroutines", "Goroutines now.", float64(runtime.NumGoroutine()))
	if rss := residentBytes(); rss > 0 {
		mw.Gauge("process_resident_memory_bytes", "Resident memory size in bytes.", float64(rss))
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mw.Gauge("mecha_heap_inuse_bytes", "Bytes in in-use heap spans.", float64(ms.HeapInuse))
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	mw.WriteTo(w)
}

// residentBytes reads the process' RSS from /proc (Linux).
func residentBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

func boolF(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
