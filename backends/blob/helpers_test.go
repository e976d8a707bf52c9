package blob

import (
	"reflect"
	"sort"
	"testing"
)

func listOf(keys ...string) func(string, func(Info) bool) error {
	sort.Strings(keys)
	return func(from string, fn func(Info) bool) error {
		for _, k := range keys {
			if k >= from && !fn(Info{Key: k}) {
				break
			}
		}
		return nil
	}
}

func names(l *Listing) (objs []string) {
	for _, o := range l.Objects {
		objs = append(objs, o.Key)
	}
	return objs
}

func TestListPage(t *testing.T) {
	each := listOf("a", "a-b", "a/b", "a/c", "a/d/e", "b", "b/x", "c")
	for _, tc := range []struct {
		q        ListQuery
		objs     []string
		prefixes []string
		next     string
	}{
		{ListQuery{MaxKeys: 1000}, []string{"a", "a-b", "a/b", "a/c", "a/d/e", "b", "b/x", "c"}, nil, ""},
		{ListQuery{Delimiter: "/", MaxKeys: 1000}, []string{"a", "a-b", "b", "c"}, []string{"a/", "b/"}, ""},
		{ListQuery{Delimiter: "/", MaxKeys: 3}, []string{"a", "a-b"}, []string{"a/"}, "a/"},
		{ListQuery{Delimiter: "/", After: "a/", MaxKeys: 3}, []string{"b", "c"}, []string{"b/"}, ""},
		{ListQuery{Prefix: "a/", Delimiter: "/", MaxKeys: 1000}, []string{"a/b", "a/c"}, []string{"a/d/"}, ""},
		{ListQuery{Prefix: "a/", MaxKeys: 2}, []string{"a/b", "a/c"}, nil, "a/c"},
		{ListQuery{Prefix: "a/", After: "a/c", MaxKeys: 2}, []string{"a/d/e"}, nil, ""},
		{ListQuery{Prefix: "zz", MaxKeys: 2}, nil, nil, ""},
		{ListQuery{MaxKeys: 0}, nil, nil, ""},
	} {
		l, err := ListPage(tc.q, each)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(names(l), tc.objs) || !reflect.DeepEqual(l.CommonPrefixes, tc.prefixes) || l.Next != tc.next || l.Truncated != (tc.next != "") {
			t.Errorf("%+v: objects %q prefixes %q next %q truncated %v", tc.q, names(l), l.CommonPrefixes, l.Next, l.Truncated)
		}
	}
}

func TestRangeResolve(t *testing.T) {
	for _, tc := range []struct {
		r          Range
		size       int64
		start, end int64
		ok         bool
	}{
		{Range{First: 0, Last: 9}, 100, 0, 9, true},
		{Range{First: 90, Last: -1}, 100, 90, 99, true},
		{Range{First: 50, Last: 500}, 100, 50, 99, true},
		{Range{First: 100, Last: -1}, 100, 0, 0, false},
		{Range{Suffix: 10}, 100, 90, 99, true},
		{Range{Suffix: 500}, 100, 0, 99, true},
		{Range{Suffix: 5}, 0, 0, 0, false},
	} {
		s, e, ok := tc.r.Resolve(tc.size)
		if s != tc.start || e != tc.end || ok != tc.ok {
			t.Errorf("%+v of %d: %d-%d %v", tc.r, tc.size, s, e, ok)
		}
	}
}

func TestMultipartETagAndParts(t *testing.T) {
	// Two parts whose MD5s are those of "a" and "b".
	got := MultipartETag([]string{`"0cc175b9c0f1b6a831c399e269772661"`, "92eb5ffee6ae2fec3ad71c777531578f"})
	// md5(md5("a") || md5("b")), computed apart.
	if got != "96e024ba2074fe77e8e965ba43a704be-2" {
		t.Fatalf("etag %q", got)
	}
	up := map[int]Part{1: {Number: 1, ETag: "x", Size: MinPartSize}, 2: {Number: 2, ETag: "y", Size: 1}, 3: {Number: 3, ETag: "z", Size: 1}}
	if _, err := CheckParts(up, []CompletePart{{2, "y"}, {1, "x"}}); err != ErrInvalidPartOrder {
		t.Fatal(err)
	}
	if _, err := CheckParts(up, []CompletePart{{1, `"x"`}, {2, "nope"}}); err != ErrInvalidPart {
		t.Fatal(err)
	}
	if _, err := CheckParts(up, []CompletePart{{2, "y"}, {3, "z"}}); err != ErrEntityTooSmall {
		t.Fatal(err)
	}
	parts, err := CheckParts(up, []CompletePart{{1, `"x"`}, {3, "z"}})
	if err != nil || len(parts) != 2 || parts[1].Number != 3 {
		t.Fatal(parts, err)
	}
}
