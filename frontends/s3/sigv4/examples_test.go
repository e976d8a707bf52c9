package sigv4

import (
	"bytes"
	"encoding/base64"
	"hash/crc32"
	"io"
	"net/http"
	"strings"
	"testing"
)

// The worked examples of the AWS documentation ("Signature Calculations
// for the Authorization Header", "Query String Authentication", "Signature
// Calculation for Streaming Uploads"): the example key, 2013-05-24
// 00:00:00 UTC, and the signatures the documentation prints.

// exampleAuthorization is the Authorization header of an example.
func exampleAuthorization(signed, signature string) string {
	return "AWS4-HMAC-SHA256 Credential=" + testAccessKey + "/20130524/us-east-1/s3/aws4_request,SignedHeaders=" + signed + ",Signature=" + signature
}

func TestAWSExampleHeaderRequests(t *testing.T) {
	const content = "Welcome to Amazon S3."
	for _, tc := range []struct {
		name, method, target string
		headers              map[string]string
		body                 string
		signed, signature    string
	}{
		{
			name: "GET Object", method: "GET", target: "/test.txt",
			headers: map[string]string{"Range": "bytes=0-9", "X-Amz-Content-Sha256": emptySHA256},
			signed:  "host;range;x-amz-content-sha256;x-amz-date", signature: "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
		},
		{
			name: "PUT Object", method: "PUT", target: "/test%24file.text", body: content,
			headers: map[string]string{
				"Date": "Fri, 24 May 2013 00:00:00 GMT", "X-Amz-Storage-Class": "REDUCED_REDUNDANCY",
				"X-Amz-Content-Sha256": "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
			},
			signed: "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class", signature: "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
		},
		{
			name: "GET Bucket Lifecycle", method: "GET", target: "/?lifecycle",
			headers: map[string]string{"X-Amz-Content-Sha256": emptySHA256},
			signed:  "host;x-amz-content-sha256;x-amz-date", signature: "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
		},
		{
			name: "GET Bucket (List Objects)", method: "GET", target: "/?max-keys=2&prefix=J",
			headers: map[string]string{"X-Amz-Content-Sha256": emptySHA256},
			signed:  "host;x-amz-content-sha256;x-amz-date", signature: "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			r := newRequest(tc.method, "http://examplebucket.s3.amazonaws.com"+tc.target, body)
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			r.Header.Set("X-Amz-Date", "20130524T000000Z")
			r.Header.Set("Authorization", exampleAuthorization(tc.signed, tc.signature))
			res, data, err := readBody(verifierAt(exampleTime), r)
			if err != nil {
				t.Fatal(err)
			}
			if res.AccessKey != testAccessKey || string(data) != tc.body || res.Streaming {
				t.Fatalf("got key %q body %q streaming %v", res.AccessKey, data, res.Streaming)
			}

			// One character of the signature changed.
			r = newRequest(tc.method, "http://examplebucket.s3.amazonaws.com"+tc.target, body)
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			r.Header.Set("X-Amz-Date", "20130524T000000Z")
			r.Header.Set("Authorization", exampleAuthorization(tc.signed, "0"+tc.signature[1:]))
			_, err = verifierAt(exampleTime).Verify(r)
			wantSame(t, err, ErrSignatureDoesNotMatch)
		})
	}
}

func TestAWSExamplePresignedGet(t *testing.T) {
	const target = "http://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" + testAccessKey +
		"%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host" +
		"&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
	res, err := verifierAt(exampleTime).Verify(newRequest("GET", target, nil))
	if err != nil {
		t.Fatal(err)
	}
	if res.AccessKey != testAccessKey {
		t.Fatalf("access key %q", res.AccessKey)
	}
	// Valid until the end of X-Amz-Expires, not after.
	if _, err := verifierAt(exampleTime.Add(86400e9)).Verify(newRequest("GET", target, nil)); err != nil {
		t.Fatalf("at the last instant: %v", err)
	}
	_, err = verifierAt(exampleTime.Add(86400e9 + 1e6)).Verify(newRequest("GET", target, nil))
	wantSame(t, err, ErrRequestExpired)
	_, err = verifierAt(exampleTime).Verify(newRequest("GET", strings.Replace(target, "test.txt", "test.txu", 1), nil))
	wantSame(t, err, ErrSignatureDoesNotMatch)
}

// exampleChunks is the body of the streaming examples: chunks of 65536,
// 1024 and 0 bytes of 'a' with the documented signatures; the last chunk
// line has no CRLF after it.
func exampleChunks(signatures [3]string) []byte {
	var b bytes.Buffer
	b.WriteString("10000;chunk-signature=" + signatures[0] + "\r\n")
	b.Write(bytes.Repeat([]byte("a"), 65536))
	b.WriteString("\r\n400;chunk-signature=" + signatures[1] + "\r\n")
	b.Write(bytes.Repeat([]byte("a"), 1024))
	b.WriteString("\r\n0;chunk-signature=" + signatures[2] + "\r\n")
	return b.Bytes()
}

// exampleStreamingRequest is the PUT of the streaming examples.
func exampleStreamingRequest(body []byte, payload, signed, seed string) *http.Request {
	r := newRequest("PUT", "http://s3.amazonaws.com/examplebucket/chunkObject.txt", body)
	r.Header.Set("X-Amz-Date", "20130524T000000Z")
	r.Header.Set("X-Amz-Storage-Class", "REDUCED_REDUNDANCY")
	r.Header.Set("Content-Encoding", "aws-chunked")
	r.Header.Set("X-Amz-Decoded-Content-Length", "66560")
	r.Header.Set("X-Amz-Content-Sha256", payload)
	r.Header.Set("Authorization", exampleAuthorization(signed, seed))
	return r
}

func TestAWSExampleStreamingPut(t *testing.T) {
	const signed = "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class"
	const seed = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
	body := append(exampleChunks([3]string{
		"ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
		"0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
		"b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
	}), "\r\n"...)
	if len(body) != 66824 {
		t.Fatalf("the example body has %d bytes, the documentation 66824", len(body))
	}
	want := bytes.Repeat([]byte("a"), 66560)

	// Content-Length as a header, and (as httptest and some servers leave
	// it) only in r.ContentLength.
	for _, header := range []bool{true, false} {
		r := exampleStreamingRequest(body, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", signed, seed)
		if header {
			r.Header.Set("Content-Length", "66824")
		}
		res, data, err := readBody(verifierAt(exampleTime), r)
		if err != nil {
			t.Fatalf("Content-Length header %v: %v", header, err)
		}
		if !bytes.Equal(data, want) || !res.Streaming || res.DecodedLength != 66560 || len(res.Trailer()) != 0 {
			t.Fatalf("got %d bytes, streaming %v, decoded length %d, trailer %v", len(data), res.Streaming, res.DecodedLength, res.Trailer())
		}
	}

	// The second chunk's signature with one digit changed.
	bad := bytes.Replace(body, []byte("0055627c"), []byte("1055627c"), 1)
	_, data, err := readBody(verifierAt(exampleTime), exampleStreamingRequest(bad, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", signed, seed))
	wantSame(t, err, ErrSignatureDoesNotMatch)
	if len(data) > 65536+1024 {
		t.Fatalf("%d bytes passed before the error", len(data))
	}
}

func TestAWSExampleStreamingPutWithTrailer(t *testing.T) {
	const signed = "content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class;x-amz-trailer"
	const seed = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"
	body := append(exampleChunks([3]string{
		"b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
		"1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
		"2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
	}), "x-amz-checksum-crc32c:sOO8/Q==\r\nx-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n\r\n"...)
	want := bytes.Repeat([]byte("a"), 66560)
	crc := crc32.Checksum(want, crc32.MakeTable(crc32.Castagnoli))
	if got := base64.StdEncoding.EncodeToString([]byte{byte(crc >> 24), byte(crc >> 16), byte(crc >> 8), byte(crc)}); got != "sOO8/Q==" {
		t.Fatalf("CRC32C of the example content is %s, the documentation sOO8/Q==", got)
	}

	request := func(body []byte) *http.Request {
		r := exampleStreamingRequest(body, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", signed, seed)
		r.Header.Set("X-Amz-Trailer", "x-amz-checksum-crc32c")
		return r
	}
	res, err := verifierAt(exampleTime).Verify(request(body))
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	buf := make([]byte, 1000)
	for {
		n, err := res.Body.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			if err != io.EOF {
				t.Fatal(err)
			}
			break
		}
		if res.Trailer() != nil {
			t.Fatal("trailer before the end of the body")
		}
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("got %d bytes", got.Len())
	}
	if v := res.Trailer().Get("X-Amz-Checksum-Crc32c"); v != "sOO8/Q==" {
		t.Fatalf("trailer %v", res.Trailer())
	}

	// The trailer's value or its signature changed.
	for _, bad := range [][]byte{
		bytes.Replace(body, []byte("sOO8/Q=="), []byte("sOO8/Q=A"), 1),
		bytes.Replace(body, []byte("d81f82fc"), []byte("d81f82fd"), 1),
	} {
		res, _, err := readBody(verifierAt(exampleTime), request(bad))
		wantSame(t, err, ErrSignatureDoesNotMatch)
		if res.Trailer() != nil {
			t.Fatal("a trailer from a body that failed")
		}
	}
}
