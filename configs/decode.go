package configs

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Pos is a position in a configuration file.
type Pos struct {
	File   string
	Line   int
	Column int
}

func (p Pos) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
}

// Error is one problem in a configuration, located by file, line and key.
type Error struct {
	Pos Pos
	// Key is the dotted path of the offending key, e.g.
	// "frontends[0].limits.max_clients".
	Key string
	Msg string
}

func (e *Error) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("%s: %s", e.Pos, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", e.Pos, e.Key, e.Msg)
}

// Errors is every problem found in a configuration.
type Errors []*Error

func (es Errors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

// Add appends err's problems: those of an Errors or an *Error as they
// are, any other error as one problem at pos (and key, when set).
func (es *Errors) Add(err error, pos Pos, key string) {
	var ce Errors
	var one *Error
	switch {
	case errors.As(err, &ce):
		*es = append(*es, ce...)
	case errors.As(err, &one):
		*es = append(*es, one)
	default:
		*es = append(*es, &Error{Pos: pos, Key: key, Msg: err.Error()})
	}
}

// FieldError is returned by a Validate method to blame one key, given as a
// path relative to the section being validated ("limits.max_clients").
type FieldError struct {
	Key string
	Msg string
}

func (e *FieldError) Error() string { return e.Key + ": " + e.Msg }

// Errorf returns a FieldError for key.
func Errorf(key, format string, args ...any) error {
	return &FieldError{Key: key, Msg: fmt.Sprintf(format, args...)}
}

// Validator is implemented by configuration sections that check their
// values after decoding. It returns a *FieldError, a joined list of them
// (errors.Join), or any other error (blamed on the section itself).
type Validator interface {
	Validate() error
}

// Duration is a time.Duration written as "5s", "250ms", "1m30s".
type Duration time.Duration

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Size is a byte count written as a number with an optional unit, with
// Redis' conventions: 1k = 1000, 1kb = 1024, 1m = 1000000, 1mb = 1048576,
// 1g, 1gb.
type Size int64

// Secret is a password or key. It never appears in logs or in printed
// configurations.
type Secret string

// String redacts the secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "******"
}

// LogValue keeps the secret out of structured logs.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// GoString keeps the secret out of %#v.
func (s Secret) GoString() string { return `"` + s.String() + `"` }

// Reveal returns the secret itself.
func (s Secret) Reveal() string { return string(s) }

// Node is an undecoded section of a configuration, kept so that a module
// can decode its own options once its type is known.
type Node struct {
	node *yaml.Node
	file string
	path string
}

// Pos returns where the section starts.
func (n Node) Pos() Pos {
	if n.node == nil {
		return Pos{File: n.file}
	}
	return Pos{File: n.file, Line: n.node.Line, Column: n.node.Column}
}

// Path is the dotted key path of the section.
func (n Node) Path() string { return n.path }

// IsZero reports whether the node is absent.
func (n Node) IsZero() bool { return n.node == nil }

// Equal reports whether two nodes hold the same content, wherever they are.
func (n Node) Equal(o Node) bool {
	return nodeEqual(n.node, o.node)
}

func nodeEqual(a, b *yaml.Node) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.Kind != b.Kind || a.Value != b.Value || len(a.Content) != len(b.Content) {
		return false
	}
	if a.Kind == yaml.ScalarNode && a.Tag != b.Tag && a.ShortTag() != b.ShortTag() {
		return false
	}
	for i := range a.Content {
		if !nodeEqual(a.Content[i], b.Content[i]) {
			return false
		}
	}
	return true
}

// Scalar returns the string value of key in a mapping node, and whether it
// is present.
func (n Node) Scalar(key string) (string, bool) {
	if n.node == nil || n.node.Kind != yaml.MappingNode {
		return "", false
	}
	for i := 0; i+1 < len(n.node.Content); i += 2 {
		if n.node.Content[i].Value == key && n.node.Content[i+1].Kind == yaml.ScalarNode {
			return expandEnv(n.node.Content[i+1].Value), true
		}
	}
	return "", false
}

// Has reports whether a mapping node has key, whatever its value.
func (n Node) Has(key string) bool {
	if n.node == nil || n.node.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i+1 < len(n.node.Content); i += 2 {
		if n.node.Content[i].Value == key {
			return true
		}
	}
	return false
}

// Decode decodes the section strictly into out (a pointer to a struct
// holding defaults), then runs its Validate method if it has one. Unknown
// keys, values of the wrong type and invalid values are reported with
// their position.
func (n Node) Decode(out any) error {
	d := &decoder{file: n.file, positions: map[string]Pos{}}
	if n.node != nil {
		d.decode(n.node, reflect.ValueOf(out).Elem(), n.path)
	}
	if len(d.errs) > 0 {
		return d.errs
	}
	return d.validate(out, n.path, n.Pos())
}

type decoder struct {
	file      string
	errs      Errors
	positions map[string]Pos
}

func (d *decoder) pos(n *yaml.Node) Pos { return Pos{File: d.file, Line: n.Line, Column: n.Column} }

func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, &Error{Pos: d.pos(n), Key: path, Msg: fmt.Sprintf(format, args...)})
}

var (
	durationType = reflect.TypeOf(Duration(0))
	sizeType     = reflect.TypeOf(Size(0))
	nodeType     = reflect.TypeOf(Node{})
)

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	d.positions[path] = d.pos(n)
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return
		}
		n = n.Content[0]
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if v.Type() == nodeType {
		v.Set(reflect.ValueOf(Node{node: n, file: d.file, path: path}))
		return
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // an empty value keeps the default
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.fail(n, path, "expected a mapping, got %s", kindName(n))
			return
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if seen[k.Value] {
				d.fail(k, join(path, k.Value), "duplicate key")
				continue
			}
			seen[k.Value] = true
			ev := reflect.New(v.Type().Elem()).Elem()
			if old := v.MapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key())); old.IsValid() {
				ev.Set(old)
			}
			d.decode(val, ev, join(path, k.Value))
			v.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), ev)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(n, path, "expected a list, got %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	default:
		d.decodeScalar(n, v, path)
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a mapping, got %s", kindName(n))
		return
	}
	fields := map[string]reflect.Value{}
	var names []string
	collectFields(v, fields, &names)
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := k.Value
		fp := join(path, key)
		if seen[key] {
			d.fail(k, fp, "duplicate key")
			continue
		}
		seen[key] = true
		f, ok := fields[key]
		if !ok {
			msg := "unknown key"
			if s := suggest(key, names); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			} else if len(names) > 0 {
				sort.Strings(names)
				msg += " (known keys: " + strings.Join(names, ", ") + ")"
			}
			d.fail(k, fp, "%s", msg)
			continue
		}
		d.positions[fp] = d.pos(k)
		d.decode(val, f, fp)
		d.positions[fp] = d.pos(k)
	}
}

func collectFields(v reflect.Value, fields map[string]reflect.Value, names *[]string) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag := sf.Tag.Get("yaml")
		if tag == "-" || !sf.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if opts == "inline" {
			collectFields(v.Field(i), fields, names)
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		fields[name] = v.Field(i)
		*names = append(*names, name)
	}
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

func (d *decoder) decodeScalar(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		d.fail(n, path, "expected a single value, got %s", kindName(n))
		return
	}
	s := expandEnv(n.Value)
	switch {
	case v.Type() == durationType:
		dur, err := time.ParseDuration(s)
		if err != nil || dur < 0 {
			d.fail(n, path, "invalid duration %q (use e.g. 500ms, 5s, 1m)", s)
			return
		}
		v.SetInt(int64(dur))
		return
	case v.Type() == sizeType:
		sz, err := ParseSize(s)
		if err != nil {
			d.fail(n, path, "%v", err)
			return
		}
		v.SetInt(sz)
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			d.fail(n, path, "expected true or false, got %q", s)
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v.OverflowInt(i) {
			d.fail(n, path, "expected an integer, got %q", s)
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint64, reflect.Uint32:
		u, err := strconv.ParseUint(s, 10, 64)
		if err != nil || v.OverflowUint(u) {
			d.fail(n, path, "expected a non-negative integer, got %q", s)
			return
		}
		v.SetUint(u)
	case reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			d.fail(n, path, "expected a number, got %q", s)
			return
		}
		v.SetFloat(f)
	default:
		d.fail(n, path, "cannot decode into %s", v.Type())
	}
}

// validate runs Validate on every Validator in out, depth first, mapping
// the keys they blame to positions.
func (d *decoder) validate(out any, path string, at Pos) error {
	var errs Errors
	d.walkValidate(reflect.ValueOf(out), path, at, &errs)
	if len(errs) > 0 {
		return errs
	}
	return nil
}

func (d *decoder) walkValidate(v reflect.Value, path string, at Pos, errs *Errors) {
	if !v.IsValid() {
		return
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	if p, ok := d.positions[path]; ok {
		at = p
	}
	switch v.Kind() {
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			if !sf.IsExported() || sf.Type == nodeType {
				continue
			}
			name, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
			if name == "-" {
				continue
			}
			fp := path
			if opts != "inline" {
				if name == "" {
					name = strings.ToLower(sf.Name)
				}
				fp = join(path, name)
			}
			d.walkValidate(v.Field(i), fp, at, errs)
		}
	case reflect.Map:
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		for _, k := range keys {
			d.walkValidate(v.MapIndex(k), join(path, k.String()), at, errs)
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			d.walkValidate(v.Index(i), fmt.Sprintf("%s[%d]", path, i), at, errs)
		}
	}
	if v.CanAddr() {
		if val, ok := v.Addr().Interface().(Validator); ok {
			d.report(val.Validate(), path, at, errs)
		}
	} else if val, ok := v.Interface().(Validator); ok {
		d.report(val.Validate(), path, at, errs)
	}
}

func (d *decoder) report(err error, path string, at Pos, errs *Errors) {
	if err == nil {
		return
	}
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	for _, e := range list {
		var fe *FieldError
		if errors.As(e, &fe) {
			key := join(path, fe.Key)
			p, ok := d.positions[key]
			if !ok {
				p = at
			}
			*errs = append(*errs, &Error{Pos: p, Key: key, Msg: fe.Msg})
			continue
		}
		*errs = append(*errs, &Error{Pos: at, Key: path, Msg: e.Error()})
	}
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// expandEnv replaces ${NAME} and ${NAME:-default} with environment values,
// so that secrets can stay out of configuration files.
func expandEnv(s string) string {
	if !strings.Contains(s, "${") {
		return s
	}
	return envRef.ReplaceAllStringFunc(s, func(m string) string {
		sub := envRef.FindStringSubmatch(m)
		if v, ok := os.LookupEnv(sub[1]); ok {
			return v
		}
		return sub[3]
	})
}

// ParseSize parses a byte count with Redis' unit conventions.
func ParseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"gb", 1 << 30}, {"mb", 1 << 20}, {"kb", 1 << 10}, {"g", 1e9}, {"m", 1e6}, {"k", 1e3}, {"b", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t = strings.TrimSpace(strings.TrimSuffix(t, u.suffix))
			mult = u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || (n > 0 && n > (1<<63-1)/mult) {
		return 0, fmt.Errorf("invalid size %q (use e.g. 512mb, 64kb, 1000000)", s)
	}
	return n * mult, nil
}

// suggest returns the known name closest to key when it is plausibly a
// typo of it.
func suggest(key string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(key, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
