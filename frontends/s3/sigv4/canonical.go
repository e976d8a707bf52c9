package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

const (
	// algorithm is the one signing algorithm Mecha verifies.
	algorithm = "AWS4-HMAC-SHA256"
	// service is the service name of S3's credential scopes.
	service = "s3"
	// terminal ends every credential scope.
	terminal = "aws4_request"
	// amzDateFormat is the ISO 8601 basic format of x-amz-date and
	// X-Amz-Date.
	amzDateFormat = "20060102T150405Z"
	// scopeDateFormat is the format of the date in a credential scope.
	scopeDateFormat = "20060102"
	// emptySHA256 is the hex SHA-256 of nothing.
	emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

// param is one name=value pair of a query string, percent-decoded.
type param struct {
	name, value string
}

// parseQuery splits a raw query string into its pairs, in order. Escapes
// are decoded leniently (a '%' not followed by two hex digits stays a
// '%'), and '+' is a space, as S3 reads query strings.
func parseQuery(raw string) []param {
	var params []param
	for raw != "" {
		var piece string
		piece, raw, _ = strings.Cut(raw, "&")
		if piece == "" {
			continue
		}
		name, value, _ := strings.Cut(piece, "=")
		params = append(params, param{unescape(name), unescape(value)})
	}
	return params
}

// lookup returns the value of the first parameter whose name is name in
// any letter case.
func lookup(params []param, name string) (string, bool) {
	for _, p := range params {
		if strings.EqualFold(p.name, name) {
			return p.value, true
		}
	}
	return "", false
}

// unescape decodes the %XX escapes and the '+' (a space) of a query
// string; a '%' that does not start a valid escape is kept as it is.
func unescape(s string) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
		case c == '+':
			b.WriteByte(' ')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// isHex reports whether c is a hexadecimal digit.
func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// unhex is the value of the hexadecimal digit c.
func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	default:
		return c - 'a' + 10
	}
}

// uriEncode appends s to b encoded as AWS's UriEncode: the unreserved
// characters A-Z a-z 0-9 - . _ ~ stay, '/' stays when keepSlash, and every
// other byte becomes %XX with upper-case hex digits.
func uriEncode(b *strings.Builder, s string, keepSlash bool) {
	const digits = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '/' && keepSlash {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(digits[c>>4])
		b.WriteByte(digits[c&15])
	}
}

// canonicalURI is the path of r decoded once and encoded once, as S3 (which
// does not encode twice) signs it.
func canonicalURI(r *http.Request) string {
	path := r.URL.Path
	if path == "" {
		return "/"
	}
	var b strings.Builder
	uriEncode(&b, path, true)
	return b.String()
}

// canonicalQuery is the canonical query string of params: each name and
// value UriEncoded, the pairs sorted by name and then by value, empty
// values written as "name=". Without the signature of a presigned URL
// when skipSignature is set.
func canonicalQuery(params []param, skipSignature bool) string {
	pairs := make([]param, 0, len(params))
	for _, p := range params {
		if skipSignature && strings.EqualFold(p.name, "X-Amz-Signature") {
			continue
		}
		var name, value strings.Builder
		uriEncode(&name, p.name, false)
		uriEncode(&value, p.value, false)
		pairs = append(pairs, param{name.String(), value.String()})
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].name != pairs[j].name {
			return pairs[i].name < pairs[j].name
		}
		return pairs[i].value < pairs[j].value
	})
	var b strings.Builder
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.name)
		b.WriteByte('=')
		b.WriteString(p.value)
	}
	return b.String()
}

// headerValues returns the values of the header name (lower case) as the
// client sent them. Go's server moves Host to r.Host and Transfer-Encoding
// to r.TransferEncoding, and may drop Content-Length into r.ContentLength;
// those come back from there.
func headerValues(r *http.Request, name string) []string {
	switch name {
	case "host":
		if r.Host == "" {
			return nil
		}
		return []string{r.Host}
	case "content-length":
		if v := r.Header.Values("Content-Length"); len(v) > 0 {
			return v
		}
		if r.ContentLength >= 0 {
			return []string{strconv.FormatInt(r.ContentLength, 10)}
		}
		return nil
	case "transfer-encoding":
		if v := r.Header.Values("Transfer-Encoding"); len(v) > 0 {
			return v
		}
		if len(r.TransferEncoding) > 0 {
			return []string{strings.Join(r.TransferEncoding, ",")}
		}
		return nil
	}
	return r.Header.Values(name)
}

// canonicalValue trims the value and turns each run of spaces and tabs
// inside it into one space.
func canonicalValue(v string) string {
	v = strings.Trim(v, " \t")
	if !strings.Contains(v, "  ") && !strings.Contains(v, "\t") {
		return v
	}
	var b strings.Builder
	b.Grow(len(v))
	space := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == ' ' || c == '\t' {
			space = true
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteByte(c)
	}
	return b.String()
}

// canonicalRequest builds the canonical request of r for the signed
// headers (lower-case names, in the order given) and the payload hash.
func canonicalRequest(r *http.Request, query string, signed []string, payload string) string {
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	b.WriteString(canonicalURI(r))
	b.WriteByte('\n')
	b.WriteString(query)
	b.WriteByte('\n')
	for _, name := range signed {
		b.WriteString(name)
		b.WriteByte(':')
		for i, v := range headerValues(r, name) {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(canonicalValue(v))
		}
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(signed, ";"))
	b.WriteByte('\n')
	b.WriteString(payload)
	return b.String()
}

// hmacSHA256 is HMAC-SHA256 of data under key.
func hmacSHA256(key []byte, data string) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(data))
	return mac.Sum(nil)
}

// signingKey derives the key of a credential scope from the secret key.
func signingKey(secret, date, region string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	return hmacSHA256(k, terminal)
}

// sha256Hex is the hex SHA-256 of s.
func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// decodeSignature decodes a signature of 64 hex digits in either case.
func decodeSignature(s string) ([sha256.Size]byte, bool) {
	var sig [sha256.Size]byte
	if len(s) != 2*sha256.Size {
		return sig, false
	}
	_, err := hex.Decode(sig[:], []byte(s))
	return sig, err == nil
}
