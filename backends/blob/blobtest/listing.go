package blobtest

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/mecha-gateway/mecha/backends/blob"
)

// entry is one line of a listing: an object's key or a common prefix.
type entry struct {
	name   string
	prefix bool
}

func (e entry) String() string {
	if e.prefix {
		return e.name + " (prefix)"
	}
	return e.name
}

// reference computes a listing from S3's definition, over keys: the keys
// under prefix, those whose rest contains the delimiter rolled up to a
// common prefix ending with its first occurrence, in byte order, after
// after.
func reference(keys []string, prefix, delim, after string) []entry {
	seen := map[string]bool{}
	var out []entry
	for _, k := range keys {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		e := entry{name: k}
		if delim != "" {
			if i := strings.Index(k[len(prefix):], delim); i >= 0 {
				e = entry{name: k[:len(prefix)+i+len(delim)], prefix: true}
			}
		}
		if e.name > after && !seen[e.name] {
			seen[e.name] = true
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b entry) int { return strings.Compare(a.name, b.name) })
	return out
}

// entries merges a page's objects and common prefixes in order.
func entries(l *blob.Listing) []entry {
	var out []entry
	for _, o := range l.Objects {
		out = append(out, entry{name: o.Key})
	}
	for _, p := range l.CommonPrefixes {
		out = append(out, entry{name: p, prefix: true})
	}
	slices.SortFunc(out, func(a, b entry) int { return strings.Compare(a.name, b.name) })
	return out
}

func putKeys(t *testing.T, s blob.Store, bucket string, keys []string) {
	t.Helper()
	for _, k := range keys {
		put(t, s, bucket, k, []byte(k), blob.PutOptions{})
	}
}

func testListOrder(t *testing.T, s blob.Store) {
	createBucket(t, s, "bt-order")
	// Written in an order unlike the listing's.
	putKeys(t, s, "bt-order", []string{"é", "z", "a0", "a/b/c", "a/b", "a//b", "a/", "a-b", "a b", "a", "b", "A", "a/b0", "a/b-", "~"})
	want := []string{"A", "a", "a b", "a-b", "a/", "a//b", "a/b", "a/b-", "a/b/c", "a/b0", "a0", "b", "z", "~", "é"}
	if got := keysOf(listAll(t, s, "bt-order", "")); !slices.Equal(got, want) {
		t.Errorf("listing order (UTF-8 binary):\n got %q\nwant %q", got, want)
	}
	l, err := s.ListObjects(ctx(t), "bt-order", blob.ListQuery{Delimiter: "/", MaxKeys: 1000})
	must(t, err, "list with delimiter")
	if got, want := fmt.Sprint(entries(l)), "[A a a b a-b a/ (prefix) a0 b z ~ é]"; got != want {
		t.Errorf("listing with delimiter: %s, want %s", got, want)
	}
}

func testListQueries(t *testing.T, s blob.Store) {
	createBucket(t, s, "bt-list")
	putKeys(t, s, "bt-list", []string{"a", "a-b", "a/b", "a/c", "a/d/e", "b", "b/x", "c", "photos/2024/a.jpg", "photos/2024/b.jpg", "photos/2025/c.jpg", "photos/readme"})
	for _, tc := range []struct {
		q       blob.ListQuery
		want    string // entries, as fmt prints them
		next    string // when truncated
		hasNext bool
	}{
		{blob.ListQuery{MaxKeys: 1000}, "[a a-b a/b a/c a/d/e b b/x c photos/2024/a.jpg photos/2024/b.jpg photos/2025/c.jpg photos/readme]", "", false},
		{blob.ListQuery{MaxKeys: 0}, "[]", "", false},
		{blob.ListQuery{MaxKeys: 3}, "[a a-b a/b]", "a/b", true},
		{blob.ListQuery{MaxKeys: 3, After: "a/b"}, "[a/c a/d/e b]", "b", true},
		{blob.ListQuery{MaxKeys: 1000, After: "a/cz"}, "[a/d/e b b/x c photos/2024/a.jpg photos/2024/b.jpg photos/2025/c.jpg photos/readme]", "", false},
		{blob.ListQuery{Delimiter: "/", MaxKeys: 1000}, "[a a-b a/ (prefix) b b/ (prefix) c photos/ (prefix)]", "", false},
		{blob.ListQuery{Delimiter: "/", MaxKeys: 3}, "[a a-b a/ (prefix)]", "a/", true},
		{blob.ListQuery{Delimiter: "/", MaxKeys: 3, After: "a/"}, "[b b/ (prefix) c]", "c", true},
		{blob.ListQuery{Delimiter: "/", MaxKeys: 3, After: "c"}, "[photos/ (prefix)]", "", false},
		{blob.ListQuery{Prefix: "a/", MaxKeys: 1000}, "[a/b a/c a/d/e]", "", false},
		{blob.ListQuery{Prefix: "a/", Delimiter: "/", MaxKeys: 1000}, "[a/b a/c a/d/ (prefix)]", "", false},
		{blob.ListQuery{Prefix: "a", Delimiter: "/", MaxKeys: 1000}, "[a a-b a/ (prefix)]", "", false},
		{blob.ListQuery{Prefix: "photos/", Delimiter: "/", MaxKeys: 1000}, "[photos/2024/ (prefix) photos/2025/ (prefix) photos/readme]", "", false},
		{blob.ListQuery{Prefix: "photos/", Delimiter: "/", MaxKeys: 1}, "[photos/2024/ (prefix)]", "photos/2024/", true},
		{blob.ListQuery{Prefix: "photos/", Delimiter: "/", MaxKeys: 1, After: "photos/2024/"}, "[photos/2025/ (prefix)]", "photos/2025/", true},
		{blob.ListQuery{Prefix: "photos/2024/", Delimiter: "/", MaxKeys: 1000}, "[photos/2024/a.jpg photos/2024/b.jpg]", "", false},
		{blob.ListQuery{Prefix: "photos/2", Delimiter: "/", MaxKeys: 1000}, "[photos/2024/ (prefix) photos/2025/ (prefix)]", "", false},
		{blob.ListQuery{Prefix: "photos", Delimiter: "2", MaxKeys: 1000}, "[photos/2 (prefix) photos/readme]", "", false},
		{blob.ListQuery{Delimiter: "-", MaxKeys: 1000}, "[a a- (prefix) a/b a/c a/d/e b b/x c photos/2024/a.jpg photos/2024/b.jpg photos/2025/c.jpg photos/readme]", "", false},
		{blob.ListQuery{Delimiter: ".jpg", Prefix: "photos/", MaxKeys: 1000}, "[photos/2024/a.jpg (prefix) photos/2024/b.jpg (prefix) photos/2025/c.jpg (prefix) photos/readme]", "", false},
		{blob.ListQuery{Prefix: "zz", MaxKeys: 1000}, "[]", "", false},
		{blob.ListQuery{Prefix: "a/d/e", MaxKeys: 1000}, "[a/d/e]", "", false},
		{blob.ListQuery{After: "photos/readme", MaxKeys: 1000}, "[]", "", false},
		{blob.ListQuery{After: "\xff", MaxKeys: 1000}, "[]", "", false},
	} {
		l, err := s.ListObjects(ctx(t), "bt-list", tc.q)
		must(t, err, fmt.Sprintf("list %+v", tc.q))
		if got := fmt.Sprint(entries(l)); got != tc.want || l.Truncated != tc.hasNext || (tc.hasNext && l.Next != tc.next) {
			t.Errorf("list %+v:\n got %s truncated %v next %q\nwant %s truncated %v next %q", tc.q, got, l.Truncated, l.Next, tc.want, tc.hasNext, tc.next)
		}
	}
}

// pagingKeys exercise the corners of grouping and ordering: keys that are
// prefixes of others, delimiters next to each other, bytes on either side
// of '/', multi-byte runes.
var pagingKeys = []string{
	"a", "a/", "a/b", "a/b/", "a/b/c", "a/b/d", "a/c", "a-b", "a-b/c", "a//b", "a0",
	"b", "b/a", "b/b/c", "b-", "bb", "c/", "c/d/e/f", "é", "é/x", "éé", "z", "zz/y",
	"x/a-b/c", "x/a/b", "x/a-", "x/b", "x/bb/", "x/b/b/b",
}

func testListPaging(t *testing.T, s blob.Store) {
	createBucket(t, s, "bt-page")
	putKeys(t, s, "bt-page", pagingKeys)
	keys := slices.Clone(pagingKeys)
	slices.Sort(keys)
	for _, prefix := range []string{"", "a", "a/", "a/b", "b", "x/", "x/a", "é", "nope"} {
		for _, delim := range []string{"", "/", "-", "b/", "é", "//"} {
			for _, maxKeys := range []int{1, 2, 3, 1000} {
				what := fmt.Sprintf("prefix %q delimiter %q max %d", prefix, delim, maxKeys)
				want := reference(keys, prefix, delim, "")
				var got []entry
				q := blob.ListQuery{Prefix: prefix, Delimiter: delim, MaxKeys: maxKeys}
				for page := 0; ; page++ {
					if page > len(keys)+1 {
						t.Fatalf("%s: listing does not end", what)
					}
					l, err := s.ListObjects(ctx(t), "bt-page", q)
					must(t, err, what)
					es := entries(l)
					if len(es) > maxKeys {
						t.Errorf("%s: page of %d entries", what, len(es))
					}
					got = append(got, es...)
					if !l.Truncated {
						if l.Next != "" {
							t.Errorf("%s: last page has next %q", what, l.Next)
						}
						break
					}
					if len(es) == 0 || l.Next != es[len(es)-1].name {
						t.Errorf("%s: truncated page %v has next %q", what, es, l.Next)
						break
					}
					q.After = l.Next
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s: paging gave\n %v\nwant\n %v", what, got, want)
				}
			}
		}
	}
	// Listing from any point: a key, a prefix, something in between.
	for _, after := range []string{"a", "a/", "a/b", "a/b/c", "a.", "a0", "b/", "b/b", "é", "x/a", "x/b/", "\x00", "\xff"} {
		for _, delim := range []string{"", "/"} {
			l, err := s.ListObjects(ctx(t), "bt-page", blob.ListQuery{Delimiter: delim, After: after, MaxKeys: 1000})
			must(t, err, "list after "+after)
			if got, want := fmt.Sprint(entries(l)), fmt.Sprint(reference(keys, "", delim, after)); got != want {
				t.Errorf("list after %q delimiter %q:\n got %s\nwant %s", after, delim, got, want)
			}
		}
	}
}
