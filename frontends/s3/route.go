package s3

import (
	"net"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/mecha-gateway/mecha/backends/blob"
)

// op is an S3 operation, for routing and metrics.
type op int

const (
	opUnknown op = iota
	opListBuckets
	opCreateBucket
	opDeleteBucket
	opHeadBucket
	opGetBucketLocation
	opGetBucketVersioning
	opListObjects
	opListObjectsV2
	opListObjectVersions
	opListMultipartUploads
	opDeleteObjects
	opPutObject
	opCopyObject
	opGetObject
	opHeadObject
	opDeleteObject
	opGetObjectTagging
	opPutObjectTagging
	opDeleteObjectTagging
	opCreateMultipartUpload
	opUploadPart
	opUploadPartCopy
	opCompleteMultipartUpload
	opAbortMultipartUpload
	opListParts
	numOps
)

var opNames = [numOps]string{
	"Unknown", "ListBuckets", "CreateBucket", "DeleteBucket", "HeadBucket", "GetBucketLocation", "GetBucketVersioning",
	"ListObjects", "ListObjectsV2", "ListObjectVersions", "ListMultipartUploads", "DeleteObjects", "PutObject",
	"CopyObject", "GetObject", "HeadObject", "DeleteObject", "GetObjectTagging", "PutObjectTagging",
	"DeleteObjectTagging", "CreateMultipartUpload", "UploadPart", "UploadPartCopy", "CompleteMultipartUpload",
	"AbortMultipartUpload", "ListParts",
}

// subresources are S3's sub-resource query parameters. Those an
// operation does not serve get NotImplemented: a request for a bucket's
// policy must never be answered with its listing.
var subresources = map[string]bool{
	"accelerate": true, "acl": true, "analytics": true, "attributes": true, "cors": true, "delete": true,
	"encryption": true, "intelligent-tiering": true, "inventory": true, "legal-hold": true, "lifecycle": true,
	"location": true, "logging": true, "metadataTable": true, "metrics": true, "notification": true,
	"object-lock": true, "ownershipControls": true, "partNumber": true, "policy": true, "policyStatus": true,
	"publicAccessBlock": true, "replication": true, "requestPayment": true, "restore": true, "retention": true,
	"select": true, "session": true, "tagging": true, "torrent": true, "uploadId": true, "uploads": true,
	"versioning": true, "versions": true, "website": true, "renameObject": true,
}

// route picks the operation for a request.
func route(method, bucket, key string, q url.Values, h http.Header) (op, func(*request) error, error) {
	// The sub-resources present, to match against what each operation
	// serves.
	var subs []string
	for name := range q {
		if subresources[name] {
			subs = append(subs, name)
		}
	}
	only := func(allowed ...string) bool {
		for _, s := range subs {
			found := false
			for _, a := range allowed {
				if s == a {
					found = true
				}
			}
			if !found {
				return false
			}
		}
		for _, a := range allowed {
			if !q.Has(a) {
				return false
			}
		}
		return true
	}
	switch {
	case bucket == "":
		if method == http.MethodGet && len(subs) == 0 {
			return opListBuckets, (*request).listBuckets, nil
		}
		if method == http.MethodGet || method == http.MethodHead {
			return opUnknown, nil, errNotImplemented
		}
		return opUnknown, nil, errMethodNotAllowed
	case key == "":
		switch method {
		case http.MethodPut:
			if only() {
				return opCreateBucket, (*request).createBucket, nil
			}
		case http.MethodDelete:
			if only() {
				return opDeleteBucket, (*request).deleteBucket, nil
			}
		case http.MethodHead:
			if only() {
				return opHeadBucket, (*request).headBucket, nil
			}
		case http.MethodGet:
			switch {
			case only():
				if q.Get("list-type") == "2" {
					return opListObjectsV2, (*request).listObjectsV2, nil
				}
				return opListObjects, (*request).listObjects, nil
			case only("location"):
				return opGetBucketLocation, (*request).getBucketLocation, nil
			case only("versioning"):
				return opGetBucketVersioning, (*request).getBucketVersioning, nil
			case only("versions"):
				return opListObjectVersions, (*request).listObjectVersions, nil
			case only("uploads"):
				return opListMultipartUploads, (*request).listMultipartUploads, nil
			}
		case http.MethodPost:
			if only("delete") {
				return opDeleteObjects, (*request).deleteObjects, nil
			}
		default:
			return opUnknown, nil, errMethodNotAllowed
		}
		return opUnknown, nil, errNotImplemented
	}
	switch method {
	case http.MethodPut:
		copySource := h.Get("x-amz-copy-source") != ""
		switch {
		case only() && copySource:
			return opCopyObject, (*request).copyObject, nil
		case only():
			return opPutObject, (*request).putObject, nil
		case only("partNumber", "uploadId") && copySource:
			return opUploadPartCopy, (*request).uploadPartCopy, nil
		case only("partNumber", "uploadId"):
			return opUploadPart, (*request).uploadPart, nil
		case only("tagging"):
			return opPutObjectTagging, (*request).putObjectTagging, nil
		}
	case http.MethodGet:
		switch {
		case only():
			return opGetObject, (*request).getObject, nil
		case only("uploadId"):
			return opListParts, (*request).listParts, nil
		case only("tagging"):
			return opGetObjectTagging, (*request).getObjectTagging, nil
		}
	case http.MethodHead:
		if only() {
			return opHeadObject, (*request).headObject, nil
		}
	case http.MethodDelete:
		switch {
		case only():
			return opDeleteObject, (*request).deleteObject, nil
		case only("uploadId"):
			return opAbortMultipartUpload, (*request).abortMultipartUpload, nil
		case only("tagging"):
			return opDeleteObjectTagging, (*request).deleteObjectTagging, nil
		}
	case http.MethodPost:
		switch {
		case only("uploads"):
			return opCreateMultipartUpload, (*request).createMultipartUpload, nil
		case only("uploadId"):
			return opCompleteMultipartUpload, (*request).completeMultipartUpload, nil
		}
	default:
		return opUnknown, nil, errMethodNotAllowed
	}
	return opUnknown, nil, errNotImplemented
}

// address finds the bucket and key a request names: from the host for
// virtual-hosted style (<bucket>.<domain>), from the path otherwise.
func (c *Config) address(r *http.Request) (bucket, key string, err error) {
	path := r.URL.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(host)
	for _, d := range c.Domains {
		if b, ok := strings.CutSuffix(host, "."+d); ok && b != "" {
			bucket, key = b, path[1:]
			return bucket, key, checkNames(bucket, key)
		}
	}
	rest := path[1:]
	bucket, key, _ = strings.Cut(rest, "/")
	return bucket, key, checkNames(bucket, key)
}

// checkNames refuses names no backend may see: a bucket name outside
// S3's alphabet, a key that is not UTF-8 or longer than S3 allows.
func checkNames(bucket, key string) error {
	if bucket != "" && !plausibleBucket(bucket) {
		return errInvalidBucketName
	}
	if len(key) > 1024 {
		return blob.ErrKeyTooLong
	}
	if !utf8.ValidString(key) {
		return &blob.Error{Code: "InvalidArgument", Status: http.StatusBadRequest, Message: "Object key must be valid UTF-8."}
	}
	return nil
}

// plausibleBucket accepts the names an existing bucket may have (legacy
// ones included: capitals, underscores, up to 255 characters); new
// buckets must pass validBucketName.
func plausibleBucket(b string) bool {
	if len(b) > 255 || b == "." || b == ".." {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// validBucketName applies S3's rules for new buckets: 3 to 63 lower-case
// letters, digits, dots and hyphens, starting and ending with a letter or
// digit, no two dots in a row, not an IP address, not the reserved
// prefixes and suffixes.
func validBucketName(b string) bool {
	if len(b) < 3 || len(b) > 63 {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	alnum := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
	if !alnum(b[0]) || !alnum(b[len(b)-1]) || strings.Contains(b, "..") || net.ParseIP(b) != nil {
		return false
	}
	for _, p := range []string{"xn--", "sthree-", "amzn-s3-demo-"} {
		if strings.HasPrefix(b, p) {
			return false
		}
	}
	for _, s := range []string{"-s3alias", "--ol-s3", "--x-s3", "--table-s3"} {
		if strings.HasSuffix(b, s) {
			return false
		}
	}
	return true
}
