package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DefaultMaxSkew is the clock skew Verifier allows when MaxSkew is zero:
// S3's fifteen minutes.
const DefaultMaxSkew = 15 * time.Minute

// MaxPresignExpires is the longest X-Amz-Expires of a presigned URL, in
// seconds: one week.
const MaxPresignExpires = 604800

// Credentials returns the secret key of an access key.
type Credentials func(accessKey string) (secret string, ok bool)

// Verifier authenticates S3 requests signed with AWS Signature Version 4.
// Its zero value accepts no key; it is safe for concurrent use once set
// up.
type Verifier struct {
	// Credentials looks up the secret key of an access key. Nil knows no
	// key.
	Credentials Credentials
	// Region, if non-empty, is the only region a credential scope may
	// name; empty accepts any region.
	Region string
	// MaxSkew is how far the time of a request signed in its header may be
	// from the server's clock, and how far in the future the X-Amz-Date of
	// a presigned URL may be. Zero means DefaultMaxSkew.
	MaxSkew time.Duration
	// Now is the server's clock. Nil means time.Now.
	Now func() time.Time
	// AllowAnonymous accepts requests that carry no authentication at all
	// (Result.AccessKey is then ""). A request that does carry a signature
	// is always verified.
	AllowAnonymous bool
}

// Result is an authenticated request.
type Result struct {
	// AccessKey is the access key that signed the request; "" for an
	// anonymous request.
	AccessKey string
	// Body is the payload, to read instead of r.Body: verified against
	// x-amz-content-sha256 at its end, or decoded from aws-chunked with
	// each chunk's signature checked. A Read that finds the payload
	// invalid returns a *blob.Error; a Read error of the connection itself
	// is passed through as it is. Only an io.EOF proves the whole payload
	// valid.
	Body io.ReadCloser
	// DecodedLength is the length of what Body yields: the
	// x-amz-decoded-content-length of an aws-chunked payload, else
	// r.ContentLength (-1 when unknown).
	DecodedLength int64
	// Trailer returns the trailing headers of an aws-chunked payload
	// (x-amz-checksum-*) once Body has returned io.EOF, and nil before or
	// for other payloads. It is never nil itself.
	Trailer func() http.Header
	// Streaming reports that the payload was aws-chunked.
	Streaming bool
}

// payloadMode is what x-amz-content-sha256 says of the payload.
type payloadMode int

const (
	// payloadUnsigned: UNSIGNED-PAYLOAD, the body as it is.
	payloadUnsigned payloadMode = iota
	// payloadSHA256: the hex SHA-256 of the body.
	payloadSHA256
	// payloadStreaming: STREAMING-AWS4-HMAC-SHA256-PAYLOAD.
	payloadStreaming
	// payloadStreamingTrailer: STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER.
	payloadStreamingTrailer
	// payloadStreamingUnsignedTrailer: STREAMING-UNSIGNED-PAYLOAD-TRAILER.
	payloadStreamingUnsignedTrailer
	// payloadECDSA: the Signature Version 4A streaming modes.
	payloadECDSA
)

// parsePayload reads the value of x-amz-content-sha256.
func parsePayload(v string) (payloadMode, bool) {
	switch v {
	case "UNSIGNED-PAYLOAD":
		return payloadUnsigned, true
	case "STREAMING-AWS4-HMAC-SHA256-PAYLOAD":
		return payloadStreaming, true
	case "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER":
		return payloadStreamingTrailer, true
	case "STREAMING-UNSIGNED-PAYLOAD-TRAILER":
		return payloadStreamingUnsignedTrailer, true
	case "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD", "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER":
		return payloadECDSA, true
	}
	if _, ok := decodeSignature(v); ok {
		return payloadSHA256, true
	}
	return 0, false
}

// signedChunks reports whether the mode signs each chunk.
func (m payloadMode) signedChunks() bool {
	return m == payloadStreaming || m == payloadStreamingTrailer
}

// chain is what the signatures of chunks and trailers are computed from:
// the signing key, the request time, the scope and the seed signature.
type chain struct {
	key   []byte
	stamp string
	scope string
	seed  string
}

// credential is the parsed credential of a request.
type credential struct {
	accessKey, date, region string
}

// scope is the credential scope, as it appears in the string to sign.
func (c credential) scope() string {
	return c.date + "/" + c.region + "/" + service + "/" + terminal
}

// presignParams are the six parameters of a presigned URL.
var presignParams = [...]string{"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Expires"}

// Verify authenticates r: by its Authorization header, by the parameters
// of a presigned URL, or as an anonymous request when AllowAnonymous is
// set. On success the Result's Body must be read instead of r.Body. The
// error is always a *blob.Error.
func (v *Verifier) Verify(r *http.Request) (*Result, error) {
	params := parseQuery(r.URL.RawQuery)
	_, algorithmParam := lookup(params, "X-Amz-Algorithm")
	if auth := r.Header.Get("Authorization"); auth != "" {
		if _, sigV2 := lookupExact(params, "Signature"); algorithmParam || sigV2 {
			return nil, ErrOneMechanism
		}
		return v.verifyHeader(r, auth, params)
	}
	for _, name := range presignParams {
		if _, ok := lookup(params, name); ok {
			return v.verifyPresigned(r, params)
		}
	}
	if _, ok := lookupExact(params, "AWSAccessKeyId"); ok {
		return nil, ErrUnsupportedMechanism
	}
	if !v.AllowAnonymous {
		return nil, ErrAccessDenied
	}
	return v.anonymous(r)
}

// lookupExact returns the value of the first parameter named exactly name.
func lookupExact(params []param, name string) (string, bool) {
	for _, p := range params {
		if p.name == name {
			return p.value, true
		}
	}
	return "", false
}

// verifyHeader authenticates a request signed in its Authorization header.
func (v *Verifier) verifyHeader(r *http.Request, auth string, params []param) (*Result, error) {
	scheme, rest, _ := strings.Cut(auth, " ")
	switch scheme {
	case algorithm:
	case "AWS", "AWS4-ECDSA-P256-SHA256":
		return nil, ErrUnsupportedMechanism
	default:
		return nil, ErrUnsupportedAuthorizationType
	}
	var credentialText, signedText, signature string
	var haveCredential, haveSigned, haveSignature bool
	for _, component := range strings.Split(rest, ",") {
		component = strings.TrimSpace(component)
		if component == "" {
			continue
		}
		name, value, ok := strings.Cut(component, "=")
		var seen *bool
		switch name {
		case "Credential":
			credentialText, seen = value, &haveCredential
		case "SignedHeaders":
			signedText, seen = value, &haveSigned
		case "Signature":
			signature, seen = value, &haveSignature
		}
		if !ok || seen == nil || *seen {
			return nil, malformedComponent(component)
		}
		*seen = true
	}
	if !haveCredential || !haveSigned || !haveSignature {
		return nil, ErrMissingAuthComponents
	}
	cred, err := v.parseCredential(credentialText, false)
	if err != nil {
		return nil, err
	}
	payload := r.Header.Get("X-Amz-Content-Sha256")
	if payload == "" {
		return nil, ErrMissingContentSHA256
	}
	mode, ok := parsePayload(payload)
	if !ok {
		return nil, ErrInvalidContentSHA256
	}
	when, stamp, ok := requestTime(r)
	if !ok {
		return nil, ErrMissingDate
	}
	if cred.date != stamp[:8] {
		return nil, credentialDateMismatch(false, cred.date, stamp[:8])
	}
	signed := signedHeaders(signedText)
	if !allSigned(r, signed, false) {
		return nil, ErrUnsignedHeaders
	}
	secret, err := v.secret(cred.accessKey)
	if err != nil {
		return nil, err
	}
	if r.Header.Get("X-Amz-Security-Token") != "" {
		return nil, ErrInvalidToken
	}
	key := signingKey(secret, cred.date, cred.region)
	canonical := canonicalRequest(r, canonicalQuery(params, false), signed, payload)
	expected, ok := checkSignature(key, stamp, cred.scope(), canonical, signature)
	if !ok {
		return nil, ErrSignatureDoesNotMatch
	}
	if skew := v.now().Sub(when); skew > v.maxSkew() || skew < -v.maxSkew() {
		return nil, ErrRequestTimeTooSkewed
	}
	return v.result(r, cred.accessKey, mode, payload, chain{key, stamp, cred.scope(), expected})
}

// verifyPresigned authenticates a request by the parameters of a presigned
// URL.
func (v *Verifier) verifyPresigned(r *http.Request, params []param) (*Result, error) {
	var values [len(presignParams)]string
	for i, name := range presignParams {
		value, ok := lookup(params, name)
		if !ok {
			return nil, ErrMissingPresignParameters
		}
		values[i] = value
	}
	alg, credentialText, signature, date, signedText, expiresText := values[0], values[1], values[2], values[3], values[4], values[5]
	switch alg {
	case algorithm:
	case "AWS4-ECDSA-P256-SHA256":
		return nil, ErrUnsupportedMechanism
	default:
		return nil, queryParametersError(`X-Amz-Algorithm only supports "AWS4-HMAC-SHA256 and AWS4-ECDSA-P256-SHA256"`)
	}
	cred, err := v.parseCredential(credentialText, true)
	if err != nil {
		return nil, err
	}
	when, ok := parseAmzDate(date)
	if !ok {
		return nil, queryParametersError(`X-Amz-Date must be in the ISO8601 Long Format "yyyyMMdd'T'HHmmss'Z'"`)
	}
	if cred.date != date[:8] {
		return nil, credentialDateMismatch(true, cred.date, date[:8])
	}
	expires, err := strconv.ParseInt(expiresText, 10, 64)
	switch {
	case err != nil:
		return nil, queryParametersError("X-Amz-Expires should be a number")
	case expires < 0:
		return nil, queryParametersError("X-Amz-Expires must be non-negative")
	case expires > MaxPresignExpires:
		return nil, queryParametersError("X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be less than 604800 seconds")
	}
	signed := signedHeaders(signedText)
	if !allSigned(r, signed, true) {
		return nil, ErrUnsignedHeaders
	}
	secret, err := v.secret(cred.accessKey)
	if err != nil {
		return nil, err
	}
	if token, _ := lookup(params, "X-Amz-Security-Token"); token != "" || r.Header.Get("X-Amz-Security-Token") != "" {
		return nil, ErrInvalidToken
	}
	payload, ok := lookup(params, "X-Amz-Content-Sha256")
	if !ok {
		payload = "UNSIGNED-PAYLOAD"
		if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" && contains(signed, "x-amz-content-sha256") {
			payload = h
		}
	}
	mode, ok := parsePayload(payload)
	if !ok {
		return nil, ErrInvalidContentSHA256
	}
	key := signingKey(secret, cred.date, cred.region)
	canonical := canonicalRequest(r, canonicalQuery(params, true), signed, payload)
	expected, ok := checkSignature(key, date, cred.scope(), canonical, signature)
	if !ok {
		return nil, ErrSignatureDoesNotMatch
	}
	now := v.now()
	if expires == 0 || now.After(when.Add(time.Duration(expires)*time.Second)) {
		return nil, ErrRequestExpired
	}
	if when.Sub(now) > v.maxSkew() {
		return nil, ErrRequestNotYetValid
	}
	return v.result(r, cred.accessKey, mode, payload, chain{key, date, cred.scope(), expected})
}

// anonymous accepts a request without authentication. Its payload may
// still be unsigned aws-chunked, or declare its SHA-256.
func (v *Verifier) anonymous(r *http.Request) (*Result, error) {
	payload := r.Header.Get("X-Amz-Content-Sha256")
	if payload == "" {
		payload = "UNSIGNED-PAYLOAD"
	}
	mode, ok := parsePayload(payload)
	switch {
	case !ok:
		return nil, ErrInvalidContentSHA256
	case mode.signedChunks():
		// Signed chunks without a signature to chain them from.
		return nil, ErrAccessDenied
	}
	return v.result(r, "", mode, payload, chain{})
}

// result sets up the Body of a verified request for its payload mode.
func (v *Verifier) result(r *http.Request, accessKey string, mode payloadMode, payload string, c chain) (*Result, error) {
	body := r.Body
	if body == nil {
		body = http.NoBody
	}
	res := &Result{AccessKey: accessKey, DecodedLength: r.ContentLength, Trailer: func() http.Header { return nil }}
	switch mode {
	case payloadUnsigned:
		res.Body = &plainBody{body: body}
	case payloadSHA256:
		want, _ := decodeSignature(payload)
		if r.ContentLength == 0 && hex.EncodeToString(want[:]) != emptySHA256 {
			return nil, ErrContentSHA256Mismatch
		}
		res.Body = &hashedBody{body: body, hash: sha256.New(), want: want}
	case payloadECDSA:
		return nil, ErrNotImplemented
	default:
		decoded, err := strconv.ParseInt(r.Header.Get("X-Amz-Decoded-Content-Length"), 10, 64)
		if err != nil || decoded < 0 {
			return nil, ErrMissingContentLength
		}
		cr := newChunkedReader(body, mode, c, decoded, declaredTrailers(r))
		res.Body, res.DecodedLength, res.Trailer, res.Streaming = cr, decoded, cr.trailers, true
	}
	return res, nil
}

// parseCredential reads Credential=AK/yyyymmdd/region/s3/aws4_request and
// checks its scope.
func (v *Verifier) parseCredential(text string, presigned bool) (credential, error) {
	parts := strings.Split(text, "/")
	if len(parts) != 5 || parts[0] == "" || parts[2] == "" {
		return credential{}, malformedCredential(presigned, `the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".`)
	}
	c := credential{accessKey: parts[0], date: parts[1], region: parts[2]}
	if _, err := time.Parse(scopeDateFormat, c.date); err != nil || len(c.date) != 8 {
		return credential{}, malformedCredential(presigned, `incorrect date format "`+c.date+`". This date in the credential must be in the format "yyyyMMdd".`)
	}
	if v.Region != "" && c.region != v.Region {
		return credential{}, malformedCredential(presigned, "the region '"+c.region+"' is wrong; expecting '"+v.Region+"'")
	}
	if parts[3] != service {
		return credential{}, malformedCredential(presigned, `incorrect service "`+parts[3]+`". This endpoint belongs to "s3".`)
	}
	if parts[4] != terminal {
		return credential{}, malformedCredential(presigned, `incorrect terminal "`+parts[4]+`". This endpoint uses "aws4_request".`)
	}
	return c, nil
}

// secret looks up the secret key of an access key.
func (v *Verifier) secret(accessKey string) (string, error) {
	if v.Credentials == nil {
		return "", ErrInvalidAccessKeyID
	}
	secret, ok := v.Credentials(accessKey)
	if !ok {
		return "", ErrInvalidAccessKeyID
	}
	return secret, nil
}

// now is the server's clock.
func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

// maxSkew is the allowed clock skew.
func (v *Verifier) maxSkew() time.Duration {
	if v.MaxSkew > 0 {
		return v.MaxSkew
	}
	return DefaultMaxSkew
}

// requestTime is the time of a request signed in its header: x-amz-date,
// or else Date; with it the ISO 8601 basic form the string to sign uses.
func requestTime(r *http.Request) (time.Time, string, bool) {
	if v := r.Header.Get("X-Amz-Date"); v != "" {
		t, ok := parseAmzDate(v)
		return t, v, ok
	}
	if v := r.Header.Get("Date"); v != "" {
		if t, err := http.ParseTime(v); err == nil {
			t = t.UTC()
			return t, t.Format(amzDateFormat), true
		}
	}
	return time.Time{}, "", false
}

// parseAmzDate reads a time in the ISO 8601 basic format, exactly (Go's
// parser would also take a fraction of a second).
func parseAmzDate(v string) (time.Time, bool) {
	if len(v) != len(amzDateFormat) {
		return time.Time{}, false
	}
	t, err := time.Parse(amzDateFormat, v)
	return t, err == nil
}

// signedHeaders splits SignedHeaders into lower-case names.
func signedHeaders(text string) []string {
	if text == "" {
		return nil
	}
	names := strings.Split(text, ";")
	for i, name := range names {
		names[i] = strings.ToLower(strings.TrimSpace(name))
	}
	return names
}

// contains reports whether names holds name.
func contains(names []string, name string) bool {
	for _, n := range names {
		if n == name {
			return true
		}
	}
	return false
}

// allSigned reports whether every header that S3 requires to be signed is:
// Host and each x-amz-* header (but for a presigned URL
// x-amz-content-sha256, which S3 leaves out of that rule). It takes time
// linear in the number of headers and names, whatever the client sends.
func allSigned(r *http.Request, signed []string, presigned bool) bool {
	set := make(map[string]struct{}, len(signed))
	for _, name := range signed {
		set[name] = struct{}{}
	}
	if _, ok := set["host"]; r.Host != "" && !ok {
		return false
	}
	for name := range r.Header {
		lower := strings.ToLower(name)
		if !strings.HasPrefix(lower, "x-amz-") || presigned && lower == "x-amz-content-sha256" {
			continue
		}
		if _, ok := set[lower]; !ok {
			return false
		}
	}
	return true
}

// checkSignature computes the signature of the canonical request and
// compares it in constant time with the one given (hex, either case). It
// returns the computed signature in lower-case hex, the seed of the
// signatures of chunks.
func checkSignature(key []byte, stamp, scope, canonical, given string) (string, bool) {
	stringToSign := algorithm + "\n" + stamp + "\n" + scope + "\n" + sha256Hex(canonical)
	expected := hmacSHA256(key, stringToSign)
	provided, ok := decodeSignature(given)
	return hex.EncodeToString(expected), ok && hmac.Equal(expected, provided[:])
}

// declaredTrailers is the set of lower-case names that x-amz-trailer
// announces.
func declaredTrailers(r *http.Request) map[string]bool {
	names := map[string]bool{}
	for _, value := range r.Header.Values("X-Amz-Trailer") {
		for _, name := range strings.Split(value, ",") {
			if name = strings.ToLower(strings.TrimSpace(name)); name != "" {
				names[name] = true
			}
		}
	}
	return names
}
