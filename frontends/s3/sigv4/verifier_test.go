package sigv4

import (
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/mecha-gateway/mecha/backends/blob"
)

const exampleHost = "http://examplebucket.s3.amazonaws.com"

// signedGet is a GET signed by the SDK's signer at when, edited after.
func signedGet(t *testing.T, when time.Time, edits ...func(*http.Request)) *http.Request {
	t.Helper()
	r := newRequest("GET", exampleHost+"/key?prefix=a%20b", nil)
	r.Header.Set("X-Amz-Meta-Color", "red")
	sdkSign(t, r, emptySHA256, when, testRegion)
	for _, edit := range edits {
		edit(r)
	}
	return r
}

// authorization replaces old with new in the Authorization header.
func authorization(old, new string) func(*http.Request) {
	return func(r *http.Request) {
		r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), old, new, 1))
	}
}

// header sets (or with "" deletes) a header.
func header(name, value string) func(*http.Request) {
	return func(r *http.Request) {
		if value == "" {
			r.Header.Del(name)
		} else {
			r.Header.Set(name, value)
		}
	}
}

func TestHeaderAuthentication(t *testing.T) {
	malformed := func(detail string) func(*testing.T, error) {
		return func(t *testing.T, err error) {
			wantError(t, err, "AuthorizationHeaderMalformed", 400, "The authorization header is malformed; "+detail)
		}
	}
	is := func(want *blob.Error) func(*testing.T, error) {
		return func(t *testing.T, err error) {
			if want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantSame(t, err, want)
		}
	}
	for _, tc := range []struct {
		name  string
		edits []func(*http.Request)
		check func(*testing.T, error)
	}{
		{"no change", nil, is(nil)},
		{"the signature in upper case", []func(*http.Request){func(r *http.Request) {
			a := r.Header.Get("Authorization")
			r.Header.Set("Authorization", a[:len(a)-64]+strings.ToUpper(a[len(a)-64:]))
		}}, is(nil)},
		{"no Credential", []func(*http.Request){func(r *http.Request) {
			a := r.Header.Get("Authorization")
			start := strings.Index(a, "Credential=")
			end := strings.Index(a, "SignedHeaders=")
			r.Header.Set("Authorization", a[:start]+a[end:])
		}}, is(ErrMissingAuthComponents)},
		{"no SignedHeaders", []func(*http.Request){func(r *http.Request) {
			a := r.Header.Get("Authorization")
			start := strings.Index(a, "SignedHeaders=")
			end := strings.Index(a, "Signature=")
			r.Header.Set("Authorization", a[:start]+a[end:])
		}}, is(ErrMissingAuthComponents)},
		{"no Signature", []func(*http.Request){func(r *http.Request) {
			a := r.Header.Get("Authorization")
			r.Header.Set("Authorization", a[:strings.Index(a, ", Signature=")])
		}}, is(ErrMissingAuthComponents)},
		{"a component without a value", []func(*http.Request){authorization("SignedHeaders=", "SignedHeaders;")},
			malformed(`the authorization component "SignedHeaders;host;x-amz-content-sha256;x-amz-date;x-amz-meta-color" is malformed.`)},
		{"a credential of four parts", []func(*http.Request){authorization("/us-east-1/", "/")},
			malformed(`the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".`)},
		{"a scope date of seven digits", []func(*http.Request){authorization("/20130524/", "/2013052/")},
			malformed(`incorrect date format "2013052". This date in the credential must be in the format "yyyyMMdd".`)},
		{"another service", []func(*http.Request){authorization("/s3/", "/ec2/")},
			malformed(`incorrect service "ec2". This endpoint belongs to "s3".`)},
		{"another terminator", []func(*http.Request){authorization("aws4_request", "aws4_reques")},
			malformed(`incorrect terminal "aws4_reques". This endpoint uses "aws4_request".`)},
		{"a scope date that is not the date of the request", []func(*http.Request){authorization("/20130524/", "/20130523/")},
			malformed(`Invalid credential date "20130523". This date is not the same as X-Amz-Date: "20130524".`)},
		{"Signature Version 2", []func(*http.Request){header("Authorization", "AWS "+testAccessKey+":frJIUN8DYpKDtOLCwo//yllqDzg=")}, is(ErrUnsupportedMechanism)},
		{"Signature Version 4A", []func(*http.Request){authorization("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256")}, is(ErrUnsupportedMechanism)},
		{"the Bearer scheme", []func(*http.Request){header("Authorization", "Bearer token")}, is(ErrUnsupportedAuthorizationType)},
		{"an empty Authorization", []func(*http.Request){header("Authorization", "")}, is(ErrAccessDenied)},
		{"presigned parameters too", []func(*http.Request){func(r *http.Request) { r.URL.RawQuery += "&X-Amz-Algorithm=AWS4-HMAC-SHA256" }}, is(ErrOneMechanism)},
		{"no x-amz-content-sha256", []func(*http.Request){header("X-Amz-Content-Sha256", "")}, is(ErrMissingContentSHA256)},
		{"an x-amz-content-sha256 that is not a hash", []func(*http.Request){header("X-Amz-Content-Sha256", emptySHA256[1:])}, is(ErrInvalidContentSHA256)},
		{"no date", []func(*http.Request){header("X-Amz-Date", "")}, is(ErrMissingDate)},
		{"an x-amz-date in another format", []func(*http.Request){header("X-Amz-Date", "2013-05-24T00:00:00Z")}, is(ErrMissingDate)},
		{"an x-amz-date with a fraction of a second", []func(*http.Request){header("X-Amz-Date", "20130524T000000.5Z")}, is(ErrMissingDate)},
		{"an x-amz-* header that is not signed", []func(*http.Request){header("X-Amz-Meta-Size", "1")}, is(ErrUnsignedHeaders)},
		{"host not signed", []func(*http.Request){authorization("SignedHeaders=host;", "SignedHeaders=")}, is(ErrUnsignedHeaders)},
		{"an unknown access key", []func(*http.Request){authorization(testAccessKey, "AKIAUNKNOWN")}, is(ErrInvalidAccessKeyID)},
		{"another value of a signed header", []func(*http.Request){header("X-Amz-Meta-Color", "blue")}, is(ErrSignatureDoesNotMatch)},
		{"another query", []func(*http.Request){func(r *http.Request) { r.URL.RawQuery = "prefix=a%20c" }}, is(ErrSignatureDoesNotMatch)},
		{"one more parameter", []func(*http.Request){func(r *http.Request) { r.URL.RawQuery += "&versionId=null" }}, is(ErrSignatureDoesNotMatch)},
		{"another path", []func(*http.Request){func(r *http.Request) { r.URL.Path = "/kez" }}, is(ErrSignatureDoesNotMatch)},
		{"another method", []func(*http.Request){func(r *http.Request) { r.Method = "DELETE" }}, is(ErrSignatureDoesNotMatch)},
		{"another host", []func(*http.Request){func(r *http.Request) { r.Host = "examplebucket.s3.amazonaws.com:80" }}, is(ErrSignatureDoesNotMatch)},
		{"a signature of 63 digits", []func(*http.Request){func(r *http.Request) {
			a := r.Header.Get("Authorization")
			r.Header.Set("Authorization", a[:len(a)-1])
		}}, is(ErrSignatureDoesNotMatch)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := verifierAt(exampleTime).Verify(signedGet(t, exampleTime, tc.edits...))
			tc.check(t, err)
		})
	}
}

func TestHeaderAuthenticationOtherKeys(t *testing.T) {
	t.Run("another secret", func(t *testing.T) {
		r := newRequest("GET", exampleHost+"/key", nil)
		r.Header.Set("X-Amz-Content-Sha256", emptySHA256)
		creds := aws.Credentials{AccessKeyID: testAccessKey, SecretAccessKey: "not-the-secret"}
		signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
		if err := signer.SignHTTP(context.Background(), creds, r, emptySHA256, "s3", testRegion, exampleTime); err != nil {
			t.Fatal(err)
		}
		_, err := verifierAt(exampleTime).Verify(r)
		wantSame(t, err, ErrSignatureDoesNotMatch)
	})
	t.Run("a session token", func(t *testing.T) {
		r := newRequest("GET", exampleHost+"/key", nil)
		r.Header.Set("X-Amz-Content-Sha256", emptySHA256)
		creds := aws.Credentials{AccessKeyID: testAccessKey, SecretAccessKey: testSecret, SessionToken: "the/token"}
		signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
		if err := signer.SignHTTP(context.Background(), creds, r, emptySHA256, "s3", testRegion, exampleTime); err != nil {
			t.Fatal(err)
		}
		_, err := verifierAt(exampleTime).Verify(r)
		wantSame(t, err, ErrInvalidToken)
	})
	t.Run("the region of the server", func(t *testing.T) {
		v := verifierAt(exampleTime)
		v.Region = "eu-west-1"
		r := newRequest("GET", exampleHost+"/key", nil)
		sdkSign(t, r, emptySHA256, exampleTime, "eu-west-1")
		if _, err := v.Verify(r); err != nil {
			t.Fatal(err)
		}
		_, err := v.Verify(signedGet(t, exampleTime))
		wantError(t, err, "AuthorizationHeaderMalformed", 400, "The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'eu-west-1'")
	})
	t.Run("any region when the server has none", func(t *testing.T) {
		r := newRequest("GET", exampleHost+"/key", nil)
		sdkSign(t, r, emptySHA256, exampleTime, "auto")
		if _, err := verifierAt(exampleTime).Verify(r); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("the Date header instead of x-amz-date", func(t *testing.T) {
		// The canonical request written out by hand.
		const date = "Fri, 24 May 2013 00:00:00 GMT"
		canonical := "GET\n/key\n\ndate:" + date + "\nhost:examplebucket.s3.amazonaws.com\nx-amz-content-sha256:" + emptySHA256 +
			"\n\ndate;host;x-amz-content-sha256\n" + emptySHA256
		signer := newChunkSigner("", exampleTime)
		sts := "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n" + testSHA256([]byte(canonical))
		signature := hex.EncodeToString(testHMAC(signer.key, sts))
		r := newRequest("GET", exampleHost+"/key", nil)
		r.Header.Set("Date", date)
		r.Header.Set("X-Amz-Content-Sha256", emptySHA256)
		r.Header.Set("Authorization", exampleAuthorization("date;host;x-amz-content-sha256", signature))
		if _, err := verifierAt(exampleTime).Verify(r); err != nil {
			t.Fatal(err)
		}
		_, err := verifierAt(exampleTime.Add(time.Hour)).Verify(r)
		wantSame(t, err, ErrRequestTimeTooSkewed)
	})
	t.Run("anonymous requests when allowed", func(t *testing.T) {
		v := verifierAt(exampleTime)
		v.AllowAnonymous = true
		r := newRequest("PUT", exampleHost+"/key", []byte("content"))
		res, data, err := readBody(v, r)
		if err != nil || res.AccessKey != "" || string(data) != "content" || res.DecodedLength != 7 {
			t.Fatalf("%v %+v %q", err, res, data)
		}
		// A signed request is verified all the same.
		_, err = v.Verify(signedGet(t, exampleTime, authorization(testAccessKey, "AKIAUNKNOWN")))
		wantSame(t, err, ErrInvalidAccessKeyID)
		// Signed chunks need a signature to chain from.
		r = newRequest("PUT", exampleHost+"/key", []byte("0\r\n\r\n"))
		r.Header.Set("X-Amz-Content-Sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
		_, err = v.Verify(r)
		wantSame(t, err, ErrAccessDenied)
		// Unsigned chunks are decoded.
		r = newRequest("PUT", exampleHost+"/key", unsignedChunks(nil, []byte("content")))
		r.Header.Set("X-Amz-Content-Sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
		r.Header.Set("X-Amz-Decoded-Content-Length", "7")
		if res, data, err := readBody(v, r); err != nil || string(data) != "content" || !res.Streaming {
			t.Fatalf("%v %q", err, data)
		}
	})
	t.Run("Signature Version 2 in the query string", func(t *testing.T) {
		r := newRequest("GET", exampleHost+"/key?AWSAccessKeyId="+testAccessKey+"&Expires=1&Signature=frJIUN8DYpKDtOLCwo%2F%2FyllqDzg%3D", nil)
		_, err := verifierAt(exampleTime).Verify(r)
		wantSame(t, err, ErrUnsupportedMechanism)
	})
}

func TestHeaderAuthenticationClock(t *testing.T) {
	for _, tc := range []struct {
		seconds int
		edit    func(*http.Request)
		want    *blob.Error
	}{
		{-900, nil, nil},
		{900, nil, nil},
		{-901, nil, ErrRequestTimeTooSkewed},
		{901, nil, ErrRequestTimeTooSkewed},
		// The key and the signature come before the time.
		{901, authorization("Signature=", "Signature=0"), ErrSignatureDoesNotMatch},
		{901, authorization(testAccessKey, "AKIAUNKNOWN"), ErrInvalidAccessKeyID},
	} {
		var edits []func(*http.Request)
		if tc.edit != nil {
			edits = append(edits, tc.edit)
		}
		r := signedGet(t, exampleTime.Add(time.Duration(tc.seconds)*time.Second), edits...)
		_, err := verifierAt(exampleTime).Verify(r)
		if tc.want == nil {
			if err != nil {
				t.Fatalf("%d s: %v", tc.seconds, err)
			}
			continue
		}
		wantSame(t, err, tc.want)
	}
	// MaxSkew replaces the fifteen minutes.
	v := verifierAt(exampleTime)
	v.MaxSkew = time.Minute
	_, err := v.Verify(signedGet(t, exampleTime.Add(61*time.Second)))
	wantSame(t, err, ErrRequestTimeTooSkewed)
}

func TestPayloadHash(t *testing.T) {
	put := func(content, hashed string) *http.Request {
		r := newRequest("PUT", exampleHost+"/key", []byte(content))
		sdkSign(t, r, testSHA256([]byte(hashed)), exampleTime, testRegion)
		return r
	}
	if _, data, err := readBody(verifierAt(exampleTime), put("123456789", "123456789")); err != nil || string(data) != "123456789" {
		t.Fatalf("%v %q", err, data)
	}
	res, data, err := readBody(verifierAt(exampleTime), put("987654321", "123456789"))
	wantSame(t, err, ErrContentSHA256Mismatch)
	if len(data) != 9 {
		t.Fatalf("%d bytes before the error", len(data))
	}
	if _, err := res.Body.Read(make([]byte, 1)); err != ErrContentSHA256Mismatch {
		t.Fatalf("the error is not sticky: %v", err)
	}
	// A request without a body, but with the hash of something.
	r := newRequest("GET", exampleHost+"/key", nil)
	sdkSign(t, r, testSHA256([]byte("x")), exampleTime, testRegion)
	_, err = verifierAt(exampleTime).Verify(r)
	wantSame(t, err, ErrContentSHA256Mismatch)

	// UNSIGNED-PAYLOAD takes the body as it is.
	r = newRequest("PUT", exampleHost+"/key", []byte("anything"))
	sdkSign(t, r, "UNSIGNED-PAYLOAD", exampleTime, testRegion)
	if _, data, err := readBody(verifierAt(exampleTime), r); err != nil || string(data) != "anything" {
		t.Fatalf("%v %q", err, data)
	}
	// Signature Version 4A streaming is not implemented.
	r = newRequest("PUT", exampleHost+"/key", []byte("0\r\n\r\n"))
	sdkSign(t, r, "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD", exampleTime, testRegion)
	_, err = verifierAt(exampleTime).Verify(r)
	wantSame(t, err, ErrNotImplemented)
	// An aws-chunked body needs its decoded length.
	r = newRequest("PUT", exampleHost+"/key", unsignedChunks(nil, []byte("x")))
	sdkSign(t, r, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", exampleTime, testRegion)
	_, err = verifierAt(exampleTime).Verify(r)
	wantSame(t, err, ErrMissingContentLength)
}

// presignedPut is a PUT presigned by the SDK's signer with a signed
// x-amz-meta-color header, returned with the headers to send.
func presignedPut(t *testing.T, when time.Time, expires time.Duration) (string, http.Header) {
	t.Helper()
	r := newRequest("PUT", exampleHost+"/key?x-id=PutObject", nil)
	r.Header.Set("X-Amz-Meta-Color", "red")
	return sdkPresign(t, r, expires, when)
}

// sendPresigned is the server's view of a request to url with headers.
func sendPresigned(method, url string, headers http.Header, body string) *http.Request {
	r := newRequest(method, url, []byte(body))
	for k, v := range headers {
		if k != "Host" {
			r.Header[k] = v
		}
	}
	return r
}

func TestPresigned(t *testing.T) {
	url, headers := presignedPut(t, exampleTime, time.Minute)
	if !strings.Contains(url, "X-Amz-SignedHeaders=host%3Bx-amz-meta-color") {
		t.Fatalf("the SDK did not sign the header: %s", url)
	}
	query := func(name, value string) func(string, http.Header) (string, http.Header) {
		return func(u string, h http.Header) (string, http.Header) {
			base, raw, _ := strings.Cut(u, "?")
			var kept []string
			for _, p := range strings.Split(raw, "&") {
				if !strings.HasPrefix(p, name+"=") {
					kept = append(kept, p)
				}
			}
			if value != "" {
				kept = append(kept, name+"="+value)
			}
			return base + "?" + strings.Join(kept, "&"), h
		}
	}
	withHeader := func(name, value string) func(string, http.Header) (string, http.Header) {
		return func(u string, h http.Header) (string, http.Header) {
			h = h.Clone()
			if value == "" {
				h.Del(name)
			} else {
				h.Set(name, value)
			}
			return u, h
		}
	}
	params := func(message string) *blob.Error {
		return s3Error("AuthorizationQueryParametersError", 400, message)
	}
	type edit = func(string, http.Header) (string, http.Header)
	cases := []struct {
		name string
		edit edit
		want *blob.Error
	}{
		{"no change", nil, nil},
		{"another algorithm", query("X-Amz-Algorithm", "AWS4-HMAC-SHA1"), params(`X-Amz-Algorithm only supports "AWS4-HMAC-SHA256 and AWS4-ECDSA-P256-SHA256"`)},
		{"an X-Amz-Date in another format", query("X-Amz-Date", "2013-05-24T00:00:00Z"), params(`X-Amz-Date must be in the ISO8601 Long Format "yyyyMMdd'T'HHmmss'Z'"`)},
		{"X-Amz-Expires=604801", query("X-Amz-Expires", "604801"), params("X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be less than 604800 seconds")},
		{"X-Amz-Expires=-1", query("X-Amz-Expires", "-1"), params("X-Amz-Expires must be non-negative")},
		{"X-Amz-Expires=1h", query("X-Amz-Expires", "1h"), params("X-Amz-Expires should be a number")},
		{"a credential of another service", query("X-Amz-Credential", testAccessKey+"%2F20130524%2Fus-east-1%2Fec2%2Faws4_request"),
			params(`Error parsing the X-Amz-Credential parameter; incorrect service "ec2". This endpoint belongs to "s3".`)},
		{"a credential of three parts", query("X-Amz-Credential", testAccessKey+"%2F20130524%2Fus-east-1"),
			params(`Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".`)},
		{"a credential of another day", query("X-Amz-Credential", testAccessKey+"%2F20130523%2Fus-east-1%2Fs3%2Faws4_request"),
			params(`Invalid credential date "20130523". This date is not the same as X-Amz-Date: "20130524".`)},
		{"an unknown access key", query("X-Amz-Credential", "AKIAUNKNOWN%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"), ErrInvalidAccessKeyID},
		{"a session token", query("X-Amz-Security-Token", "token"), ErrInvalidToken},
		{"Signature Version 4A", query("X-Amz-Algorithm", "AWS4-ECDSA-P256-SHA256"), ErrUnsupportedMechanism},
		{"another value of a parameter", query("x-id", "GetObject"), ErrSignatureDoesNotMatch},
		{"one more parameter", query("versionId", "null"), ErrSignatureDoesNotMatch},
		{"another signature", query("X-Amz-Signature", strings.Repeat("0", 64)), ErrSignatureDoesNotMatch},
		{"another path", func(u string, h http.Header) (string, http.Header) {
			return strings.Replace(u, "/key?", "/other?", 1), h
		}, ErrSignatureDoesNotMatch},
		{"the names of the parameters in lower case", func(u string, h http.Header) (string, http.Header) {
			return strings.ReplaceAll(u, "X-Amz-", "x-amz-"), h
		}, ErrSignatureDoesNotMatch},
		{"another value of a signed header", withHeader("X-Amz-Meta-Color", "blue"), ErrSignatureDoesNotMatch},
		{"a signed header that the request does not have", withHeader("X-Amz-Meta-Color", ""), ErrSignatureDoesNotMatch},
		{"an x-amz-* header that is not signed", withHeader("X-Amz-Meta-Size", "1"), ErrUnsignedHeaders},
		{"an x-amz-content-sha256 header that is not signed", withHeader("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD"), nil},
		{"an Authorization header too", withHeader("Authorization", "AWS4-HMAC-SHA256 a"), ErrOneMechanism},
	}
	for _, name := range presignParams {
		cases = append(cases, struct {
			name string
			edit edit
			want *blob.Error
		}{"no " + name, query(name, ""), ErrMissingPresignParameters})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u, h := url, headers
			if tc.edit != nil {
				u, h = tc.edit(u, h)
			}
			res, data, err := readBody(verifierAt(exampleTime), sendPresigned("PUT", u, h, "presigned"))
			if tc.want != nil {
				wantSame(t, err, tc.want)
				return
			}
			if err != nil || string(data) != "presigned" || res.AccessKey != testAccessKey {
				t.Fatalf("%v %q", err, data)
			}
		})
	}
}

func TestPresignedClock(t *testing.T) {
	get := func(signedAt time.Duration, expires time.Duration) (string, http.Header) {
		r := newRequest("GET", exampleHost+"/key", nil)
		return sdkPresign(t, r, expires, exampleTime.Add(signedAt))
	}
	for _, tc := range []struct {
		name              string
		signedAt, expires time.Duration
		now               time.Duration
		want              *blob.Error
	}{
		{"at the end of the last second", 0, time.Minute, time.Minute, nil},
		{"one millisecond after the end", 0, time.Minute, time.Minute + time.Millisecond, ErrRequestExpired},
		{"at the end of seven days", 0, 604800 * time.Second, 604800 * time.Second, nil},
		{"never with X-Amz-Expires=0", 0, 0, 0, ErrRequestExpired},
		{"15 minutes before X-Amz-Date", 15 * time.Minute, time.Minute, 0, nil},
		{"more than 15 minutes before X-Amz-Date", 15*time.Minute + time.Second, time.Minute, 0, ErrRequestNotYetValid},
	} {
		u, h := get(tc.signedAt, tc.expires)
		_, err := verifierAt(exampleTime.Add(tc.now)).Verify(sendPresigned("GET", u, h, ""))
		if tc.want == nil {
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			continue
		}
		wantSame(t, err, tc.want)
	}
	// The key and the signature come before the time.
	u, h := get(0, time.Minute)
	late := verifierAt(exampleTime.Add(time.Hour))
	_, err := late.Verify(sendPresigned("GET", strings.Replace(u, "X-Amz-Signature=", "X-Amz-Signature=0", 1), h, ""))
	wantSame(t, err, ErrSignatureDoesNotMatch)
	_, err = late.Verify(sendPresigned("GET", strings.Replace(u, testAccessKey, "AKIAUNKNOWN", 1), h, ""))
	wantSame(t, err, ErrInvalidAccessKeyID)

	// The region of the server.
	v := verifierAt(exampleTime)
	v.Region = "eu-west-1"
	_, err = v.Verify(sendPresigned("GET", u, h, ""))
	wantError(t, err, "AuthorizationQueryParametersError", 400, "Error parsing the X-Amz-Credential parameter; the region 'us-east-1' is wrong; expecting 'eu-west-1'")
}

func TestPresignedParameterNamesInAnyCase(t *testing.T) {
	// Signed with the names as they are sent; the canonical request is
	// written out by hand.
	search := "X-AMZ-CREDENTIAL=" + testAccessKey + "%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signedheaders=host&" +
		"x-amz-algorithm=AWS4-HMAC-SHA256&x-amz-date=20130524T000000Z&x-amz-expires=60"
	canonical := "GET\n/\n" + search + "\nhost:examplebucket.s3.amazonaws.com\n\nhost\nUNSIGNED-PAYLOAD"
	signer := newChunkSigner("", exampleTime)
	sts := "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n" + testSHA256([]byte(canonical))
	signature := hex.EncodeToString(testHMAC(signer.key, sts))
	r := newRequest("GET", exampleHost+"/?"+search+"&x-amz-SIGNATURE="+signature, nil)
	if _, err := verifierAt(exampleTime).Verify(r); err != nil {
		t.Fatal(err)
	}
}

func TestCanonicalRequestParts(t *testing.T) {
	for _, tc := range []struct{ target, uri, query string }{
		{"/test-bucket?b=2&a=1", "/test-bucket", "a=1&b=2"},
		{"/test-bucket?a=2&a=1&a=&A=3", "/test-bucket", "A=3&a=&a=1&a=2"},
		{"/test-bucket?acl&b=", "/test-bucket", "acl=&b="},
		{"/test-bucket?a=b+c&d=e%2Bf&g=%20", "/test-bucket", "a=b%20c&d=e%2Bf&g=%20"},
		{"/test-bucket?k=1&k-x=2&k.y=3&k0=4", "/test-bucket", "k=1&k-x=2&k.y=3&k0=4"},
		{"/test-bucket?k=%c3%bc~!*'()&l=a=b&m=a:b/c", "/test-bucket", "k=%C3%BC~%21%2A%27%28%29&l=a%3Db&m=a%3Ab%2Fc"},
		{"/test-bucket?p=100%&q=%zz", "/test-bucket", "p=100%25&q=%25zz"},
		{"/test-bucket/a%20b/a+b", "/test-bucket/a%20b/a%2Bb", ""},
		{"/test-bucket/%c3%bc/%E4%B8%AD", "/test-bucket/%C3%BC/%E4%B8%AD", ""},
		{"/test-bucket/!*'()~=&:@$,;", "/test-bucket/%21%2A%27%28%29~%3D%26%3A%40%24%2C%3B", ""},
		{"/test-bucket/%21%2A%27%28%29%7E%3D%26%3A", "/test-bucket/%21%2A%27%28%29~%3D%26%3A", ""},
		{"/test-bucket/100%25", "/test-bucket/100%25", ""},
		{"/test-bucket//a//b/", "/test-bucket//a//b/", ""},
	} {
		r := newRequest("GET", "http://s3.amazonaws.com"+tc.target, nil)
		if got := canonicalURI(r); got != tc.uri {
			t.Errorf("%s: URI %s, want %s", tc.target, got, tc.uri)
		}
		if got := canonicalQuery(parseQuery(r.URL.RawQuery), false); got != tc.query {
			t.Errorf("%s: query %s, want %s", tc.target, got, tc.query)
		}
	}
	for value, want := range map[string]string{
		"  a   b \t c  ": "a b c",
		"a":              "a",
		"\ta\t":          "a",
		"":               "",
	} {
		if got := canonicalValue(value); got != want {
			t.Errorf("value %q: %q, want %q", value, got, want)
		}
	}
	// Several lines of one header join with commas.
	r := newRequest("GET", "http://s3.amazonaws.com/", nil)
	r.Header.Add("X-Amz-Meta-A", " 1 ")
	r.Header.Add("X-Amz-Meta-A", "2  3")
	got := canonicalRequest(r, "", []string{"host", "x-amz-meta-a"}, "UNSIGNED-PAYLOAD")
	want := "GET\n/\n\nhost:s3.amazonaws.com\nx-amz-meta-a:1,2 3\n\nhost;x-amz-meta-a\nUNSIGNED-PAYLOAD"
	if got != want {
		t.Errorf("canonical request %q, want %q", got, want)
	}
	// The headers Go's server takes out of r.Header come back.
	r = newRequest("PUT", "http://s3.amazonaws.com/", []byte("12345"))
	r.TransferEncoding = []string{"chunked"}
	got = canonicalRequest(r, "", []string{"content-length", "host", "transfer-encoding"}, "UNSIGNED-PAYLOAD")
	want = "PUT\n/\n\ncontent-length:5\nhost:s3.amazonaws.com\ntransfer-encoding:chunked\n\ncontent-length;host;transfer-encoding\nUNSIGNED-PAYLOAD"
	if got != want {
		t.Errorf("canonical request %q, want %q", got, want)
	}
}

// closeRecorder records that it was closed.
type closeRecorder struct {
	io.Reader
	closed bool
}

// Close records the call.
func (c *closeRecorder) Close() error {
	c.closed = true
	return nil
}

func TestBodyCloseClosesTheRequestBody(t *testing.T) {
	for _, payload := range []string{"UNSIGNED-PAYLOAD", emptySHA256, "STREAMING-UNSIGNED-PAYLOAD-TRAILER"} {
		r := newRequest("PUT", exampleHost+"/key", nil)
		r.Header.Set("X-Amz-Decoded-Content-Length", "0")
		sdkSign(t, r, payload, exampleTime, testRegion)
		body := &closeRecorder{Reader: strings.NewReader("0\r\n\r\n")}
		r.Body = body
		res, err := verifierAt(exampleTime).Verify(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := res.Body.Close(); err != nil || !body.closed {
			t.Fatalf("%s: Close %v, closed %v", payload, err, body.closed)
		}
	}
}
