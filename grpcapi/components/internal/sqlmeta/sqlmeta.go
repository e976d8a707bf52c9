// Package sqlmeta reads the metadata keys that the gRPC API's components
// on SQL servers (PostgreSQL, MySQL) share, spelled as contrib's SQL
// components spell them: keys match without regard to case and through
// aliases, durations are Go durations or whole seconds, and every
// problem is a configs error naming its key.
package sqlmeta

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mecha-gateway/mecha/configs"
)

// Key is a metadata key a component reads.
type Key struct {
	// Name is the canonical spelling.
	Name string
	// Aliases are other spellings of the same key.
	Aliases []string
}

// Read returns md's values by the canonical name of their key, and an
// error for each key of md that is none of keys (listing those, in
// order of md's keys).
func Read(md map[string]string, keys []Key) (map[string]string, []error) {
	known := map[string]string{}
	var names []string
	for _, k := range keys {
		known[strings.ToLower(k.Name)] = k.Name
		names = append(names, k.Name)
		for _, a := range k.Aliases {
			known[strings.ToLower(a)] = k.Name
		}
	}
	slices.Sort(names)
	vals := map[string]string{}
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(md)) {
		canon, ok := known[strings.ToLower(k)]
		if !ok {
			errs = append(errs, configs.Errorf("metadata."+k, "unknown key (known: %s)", strings.Join(names, ", ")))
			continue
		}
		vals[canon] = md[k]
	}
	return vals, errs
}

// ParseDuration reads a Go duration or a number of seconds.
func ParseDuration(v string) (time.Duration, error) {
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(v)
}

// Timeout reads the timeout key of vals, at least 1s; def when absent.
func Timeout(vals map[string]string, def time.Duration) (time.Duration, error) {
	v, ok := vals["timeout"]
	if !ok {
		return def, nil
	}
	d, err := ParseDuration(v)
	if err != nil || d < time.Second {
		return 0, configs.Errorf("metadata.timeout", "must be a duration of at least 1s (\"20s\", or seconds: \"20\")")
	}
	return d, nil
}

// MaxConns reads the maxConns key of vals, a positive integer; 0 when
// absent.
func MaxConns(vals map[string]string) (int, error) {
	v, ok := vals["maxConns"]
	if !ok {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, configs.Errorf("metadata.maxConns", "must be a positive integer")
	}
	return n, nil
}
