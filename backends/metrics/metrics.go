// Package metrics holds the metric primitives Mecha's modules share and
// writes them in the Prometheus text exposition format. It is small on
// purpose: counters and histograms are plain atomics so that recording on
// the request path costs a few nanoseconds.
package metrics

import (
	"bytes"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Counter is a monotonically increasing count.
type Counter struct{ v atomic.Uint64 }

// Add adds n.
func (c *Counter) Add(n uint64) { c.v.Add(n) }

// Inc adds one.
func (c *Counter) Inc() { c.v.Add(1) }

// Load returns the count.
func (c *Counter) Load() uint64 { return c.v.Load() }

// Gauge is a value that goes up and down.
type Gauge struct{ v atomic.Int64 }

// Add adds n (which may be negative).
func (g *Gauge) Add(n int64) { g.v.Add(n) }

// Set sets the value.
func (g *Gauge) Set(n int64) { g.v.Store(n) }

// Load returns the value.
func (g *Gauge) Load() int64 { return g.v.Load() }

// LatencyBuckets are the upper bounds, in seconds, of latency histograms:
// fine below a millisecond, where a gateway's overhead lives.
var LatencyBuckets = []float64{
	0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
	0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

var latencyBoundsNS = func() []int64 {
	out := make([]int64, len(LatencyBuckets))
	for i, b := range LatencyBuckets {
		out[i] = int64(b * 1e9)
	}
	return out
}()

// Histogram counts latencies in LatencyBuckets.
type Histogram struct {
	buckets [18]atomic.Uint64 // len(LatencyBuckets)+1, the last is +Inf
	sumNS   atomic.Uint64
}

// Observe records one latency.
func (h *Histogram) Observe(d time.Duration) { h.ObserveN(d, 1) }

// ObserveN records n requests that each took d.
func (h *Histogram) ObserveN(d time.Duration, n uint64) {
	ns := int64(d)
	if ns < 0 {
		ns = 0
	}
	i := 0
	for i < len(latencyBoundsNS) && ns > latencyBoundsNS[i] {
		i++
	}
	h.buckets[i].Add(n)
	h.sumNS.Add(uint64(ns) * n)
}

// Label is one name="value" pair.
type Label struct{ Name, Value string }

// Writer collects samples and writes them grouped by family, as the text
// format requires, whatever order components report them in.
type Writer struct {
	families map[string]*family
	order    []string
}

type family struct {
	help, typ string
	body      bytes.Buffer
}

// NewWriter returns an empty Writer.
func NewWriter() *Writer { return &Writer{families: map[string]*family{}} }

func (w *Writer) family(name, help, typ string) *family {
	f, ok := w.families[name]
	if !ok {
		f = &family{help: help, typ: typ}
		w.families[name] = f
		w.order = append(w.order, name)
	}
	return f
}

// Counter writes a counter sample.
func (w *Writer) Counter(name, help string, v float64, labels ...Label) {
	f := w.family(name, help, "counter")
	writeSample(&f.body, name, labels, v)
}

// Gauge writes a gauge sample.
func (w *Writer) Gauge(name, help string, v float64, labels ...Label) {
	f := w.family(name, help, "gauge")
	writeSample(&f.body, name, labels, v)
}

// Histogram writes a latency histogram (seconds).
func (w *Writer) Histogram(name, help string, h *Histogram, labels ...Label) {
	f := w.family(name, help, "histogram")
	var cum uint64
	le := make([]Label, len(labels)+1)
	copy(le, labels)
	for i, b := range LatencyBuckets {
		cum += h.buckets[i].Load()
		le[len(labels)] = Label{"le", strconv.FormatFloat(b, 'g', -1, 64)}
		writeSample(&f.body, name+"_bucket", le, float64(cum))
	}
	cum += h.buckets[len(LatencyBuckets)].Load()
	le[len(labels)] = Label{"le", "+Inf"}
	writeSample(&f.body, name+"_bucket", le, float64(cum))
	writeSample(&f.body, name+"_sum", labels, float64(h.sumNS.Load())/1e9)
	writeSample(&f.body, name+"_count", labels, float64(cum))
}

// Count returns how many observations the histogram holds.
func (h *Histogram) Count() uint64 {
	var n uint64
	for i := range h.buckets {
		n += h.buckets[i].Load()
	}
	return n
}

// WriteTo writes every family, sorted by name.
func (w *Writer) WriteTo(out io.Writer) (int64, error) {
	names := append([]string(nil), w.order...)
	sort.Strings(names)
	var b bytes.Buffer
	for _, n := range names {
		f := w.families[n]
		b.WriteString("# HELP " + n + " " + f.help + "\n")
		b.WriteString("# TYPE " + n + " " + f.typ + "\n")
		b.Write(f.body.Bytes())
	}
	return b.WriteTo(out)
}

func writeSample(b *bytes.Buffer, name string, labels []Label, v float64) {
	b.WriteString(name)
	if len(labels) > 0 {
		b.WriteByte('{')
		for i, l := range labels {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(l.Name)
			b.WriteString(`="`)
			b.WriteString(escapeLabel(l.Value))
			b.WriteByte('"')
		}
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	switch {
	case math.IsInf(v, 1):
		b.WriteString("+Inf")
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		b.WriteString(strconv.FormatInt(int64(v), 10))
	default:
		b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
	}
	b.WriteByte('\n')
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }

// Collector is implemented by components that export metrics.
type Collector interface {
	CollectMetrics(w *Writer)
}

// CommandStats are the request metrics of one command or operation.
type CommandStats struct {
	Calls   Counter
	Errors  Counter
	Latency Histogram
}

// CommandTable holds CommandStats for a fixed set of command names, by a
// dense index, allocating each on first use.
type CommandTable struct {
	names []string
	stats []atomic.Pointer[CommandStats]
}

// NewCommandTable returns a table for names; index i is names[i].
func NewCommandTable(names []string) *CommandTable {
	return &CommandTable{names: names, stats: make([]atomic.Pointer[CommandStats], len(names))}
}

// Get returns the stats of command i.
func (t *CommandTable) Get(i int) *CommandStats {
	if s := t.stats[i].Load(); s != nil {
		return s
	}
	s := &CommandStats{}
	if t.stats[i].CompareAndSwap(nil, s) {
		return s
	}
	return t.stats[i].Load()
}

// Collect writes the table as <prefix>_requests_total, _errors_total and
// _duration_seconds, labelled with command plus labels.
func (t *CommandTable) Collect(w *Writer, prefix, what string, labels ...Label) {
	l := make([]Label, len(labels)+1)
	copy(l, labels)
	for i := range t.stats {
		s := t.stats[i].Load()
		if s == nil {
			continue
		}
		l[len(labels)] = Label{"command", t.names[i]}
		w.Counter(prefix+"_requests_total", what+" received, by command.", float64(s.Calls.Load()), l...)
		w.Counter(prefix+"_errors_total", what+" answered with an error, by command.", float64(s.Errors.Load()), l...)
		w.Histogram(prefix+"_duration_seconds", "Time from a command's arrival to its reply, by command.", &s.Latency, l...)
	}
}
