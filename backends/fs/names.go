package fs

import (
	"strings"
)

// How keys become paths. Every valid S3 key (up to 1024 bytes) maps to
// exactly one path under its bucket's directory, made only of names that
// are safe on any file system: no "/", no NUL, no "." or "..", nothing
// starting with a dot, at most 255 bytes. The mapping keeps plain keys
// readable ("photos/2024/cat.jpg" is the directory photos/2024 holding
// cat.jpg~m and cat.jpg~v…) and lets a directory walk list keys in S3's
// order (see list.go).
//
// A key is cut into components at each "/"; every component but the last
// is a directory, the last names the object. A component of maxComponent
// bytes or more is cut further, every maxComponent bytes, into
// continuation directories, so that no name grows past the limit. In a
// directory standing for the key prefix P, the names are:
//
//	E          directory of the keys starting P + c + "/" (E = enc(c), c not empty)
//	~          directory of the keys starting P + "/" (the empty component: "a//b")
//	E~c        continuation: directory of the keys starting P + x, with x
//	           exactly maxComponent bytes without "/" (E = enc(x))
//	E~m        the object P + d: its metadata, JSON (E = enc(d), possibly empty,
//	           d shorter than maxComponent, without "/")
//	E~v<ver>   the object P + d: the data of one of its versions
//
// enc keeps the bytes a-z, 0-9, "-", "_" and "." (but not a leading ".")
// and A-Z (unless the file system ignores case), and writes every other
// byte as "%" and two upper-case hex digits: "~" never appears in an
// encoded component, and multi-byte UTF-8 is escaped too, so that file
// systems that normalise Unicode cannot merge two keys. Names that do not
// parse this way (another program's files) are ignored.
const maxComponent = 64

// enc encodes one component of a key (see above).
func enc(x string, fold bool) string {
	var b strings.Builder
	for i := 0; i < len(x); i++ {
		c := x[i]
		if plainByte(c, fold) && !(i == 0 && c == '.') {
			b.WriteByte(c)
			continue
		}
		const hexDigits = "0123456789ABCDEF"
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

func plainByte(c byte, fold bool) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		return true
	case c >= 'A' && c <= 'Z':
		return !fold
	}
	return false
}

// dec decodes an encoded component; ok is false unless e is exactly what
// enc gives for it.
func dec(e string, fold bool) (string, bool) {
	if !strings.Contains(e, "%") {
		return e, enc(e, fold) == e
	}
	var b strings.Builder
	for i := 0; i < len(e); i++ {
		if e[i] != '%' {
			b.WriteByte(e[i])
			continue
		}
		if i+2 >= len(e) {
			return "", false
		}
		hi, lo := unhex(e[i+1]), unhex(e[i+2])
		if hi < 0 || lo < 0 {
			return "", false
		}
		b.WriteByte(byte(hi<<4 | lo))
		i += 2
	}
	x := b.String()
	return x, enc(x, fold) == e
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

// keyPath is where a key lives in its bucket's directory: the directories
// (encoded names, outermost first) and the encoded name of the object.
type keyPath struct {
	dirs []string
	name string
}

// splitKey maps a key to its path (see above).
func splitKey(key string, fold bool) keyPath {
	var p keyPath
	rest := key
	for {
		i := strings.IndexByte(rest, '/')
		switch {
		case i >= 0 && i < maxComponent:
			if i == 0 {
				p.dirs = append(p.dirs, "~")
			} else {
				p.dirs = append(p.dirs, enc(rest[:i], fold))
			}
			rest = rest[i+1:]
		case i < 0 && len(rest) < maxComponent:
			p.name = enc(rest, fold)
			return p
		default:
			p.dirs = append(p.dirs, enc(rest[:maxComponent], fold)+"~c")
			rest = rest[maxComponent:]
		}
	}
}

// dir is the path of the key's directory, relative to the bucket's.
func (p keyPath) dir() string { return strings.Join(p.dirs, "/") }

// entryKind is what a name in a bucket's tree stands for.
type entryKind int

const (
	kindOther entryKind = iota // not ours, or a data file
	kindDir                    // keys under P + c + "/"
	kindCont                   // keys under P + x
	kindMeta                   // the object P + d
	kindData                   // a version of the object P + d
)

// parseName tells what a name in a directory of the tree stands for and
// returns the part of the key it adds to the directory's prefix: c + "/"
// for a directory, x for a continuation, d for an object (kindMeta and
// kindData); for kindData also the version.
func parseName(name string, fold bool) (kind entryKind, part, version string) {
	e, suffix, tilde := strings.Cut(name, "~")
	if !tilde {
		if c, ok := dec(e, fold); ok && c != "" && !strings.Contains(c, "/") {
			return kindDir, c + "/", ""
		}
		return kindOther, "", ""
	}
	switch {
	case suffix == "" && e == "":
		return kindDir, "/", ""
	case suffix == "c":
		if x, ok := dec(e, fold); ok && len(x) == maxComponent && !strings.Contains(x, "/") {
			return kindCont, x, ""
		}
	case suffix == "m":
		if d, ok := dec(e, fold); ok && len(d) < maxComponent && !strings.Contains(d, "/") {
			return kindMeta, d, ""
		}
	case strings.HasPrefix(suffix, "v") && validVersion(suffix[1:]):
		if d, ok := dec(e, fold); ok && len(d) < maxComponent && !strings.Contains(d, "/") {
			return kindData, d, suffix[1:]
		}
	}
	return kindOther, "", ""
}

// validVersion accepts what newVersion makes: lower-case hex digits and
// one "-".
func validVersion(v string) bool {
	if len(v) == 0 || len(v) > 40 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c == '-') {
			return false
		}
	}
	return true
}

// validBucket accepts plain names only: 1 to 255 bytes of a-z, 0-9, ".",
// "-" and "_", starting with a letter or digit. The S3 frontend checks
// S3's stricter rules first; this keeps the store safe on its own.
func validBucket(name string) bool {
	if len(name) == 0 || len(name) > 255 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '.' || c == '-' || c == '_') && i > 0:
		default:
			return false
		}
	}
	return true
}

// validUploadID accepts what newUploadID makes: 32 lower-case hex digits.
func validUploadID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
