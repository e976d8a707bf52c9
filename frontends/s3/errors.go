package s3

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"net/http"

	"github.com/mecha-gateway/mecha/backends/blob"
)

// Errors the frontend itself answers, with S3's codes and texts.
var (
	errNotImplemented     = &blob.Error{Code: "NotImplemented", Status: http.StatusNotImplemented, Message: "A header you provided implies functionality that is not implemented"}
	errMethodNotAllowed   = &blob.Error{Code: "MethodNotAllowed", Status: http.StatusMethodNotAllowed, Message: "The specified method is not allowed against this resource."}
	errInvalidBucketName  = &blob.Error{Code: "InvalidBucketName", Status: http.StatusBadRequest, Message: "The specified bucket is not valid."}
	errMalformedXML       = &blob.Error{Code: "MalformedXML", Status: http.StatusBadRequest, Message: "The XML you provided was not well-formed or did not validate against our published schema"}
	errMissingLength      = &blob.Error{Code: "MissingContentLength", Status: http.StatusLengthRequired, Message: "You must provide the Content-Length HTTP header."}
	errInvalidDigest      = &blob.Error{Code: "InvalidDigest", Status: http.StatusBadRequest, Message: "The Content-MD5 you specified was invalid."}
	errBadDigest          = &blob.Error{Code: "BadDigest", Status: http.StatusBadRequest, Message: "The Content-MD5 you specified did not match what we received."}
	errCopyToItself       = &blob.Error{Code: "InvalidRequest", Status: http.StatusBadRequest, Message: "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."}
	errInvalidPartNumber  = &blob.Error{Code: "InvalidArgument", Status: http.StatusBadRequest, Message: "Part number must be an integer between 1 and 10000, inclusive"}
	errInvalidMaxKeys     = &blob.Error{Code: "InvalidArgument", Status: http.StatusBadRequest, Message: "Provided max-keys not an integer or within integer range"}
	errInvalidToken       = &blob.Error{Code: "InvalidArgument", Status: http.StatusBadRequest, Message: "The continuation token provided is incorrect"}
	errInvalidCopySource  = &blob.Error{Code: "InvalidArgument", Status: http.StatusBadRequest, Message: "Copy Source must mention the source bucket and key: sourcebucket/sourcekey"}
	errInvalidDirective   = &blob.Error{Code: "InvalidArgument", Status: http.StatusBadRequest, Message: "Unknown metadata directive."}
	errInvalidTag         = &blob.Error{Code: "InvalidTag", Status: http.StatusBadRequest, Message: "The TagSet does not satisfy the restrictions."}
	errNotModified        = &blob.Error{Code: "NotModified", Status: http.StatusNotModified, Message: "Not Modified"}
	errInvalidRequest     = &blob.Error{Code: "InvalidRequest", Status: http.StatusBadRequest, Message: "Invalid Request"}
	errInvalidArgument    = &blob.Error{Code: "InvalidArgument", Status: http.StatusBadRequest, Message: "Invalid Argument"}
	errNoSuchVersion      = &blob.Error{Code: "NoSuchVersion", Status: http.StatusNotFound, Message: "The specified version does not exist."}
	errTooManyKeys        = &blob.Error{Code: "MalformedXML", Status: http.StatusBadRequest, Message: "The XML you provided was not well-formed or did not validate against our published schema"}
	errUnexpectedContent  = &blob.Error{Code: "UnexpectedContent", Status: http.StatusBadRequest, Message: "This request does not support content"}
	errRequestTimeout     = &blob.Error{Code: "RequestTimeout", Status: http.StatusBadRequest, Message: "Your socket connection to the server was not read from or written to within the timeout period. Idle connections will be closed."}
	errInvalidRangeHeader = &blob.Error{Code: "InvalidArgument", Status: http.StatusBadRequest, Message: "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy"}
)

// errorBody is S3's error document.
type errorBody struct {
	XMLName    xml.Name `xml:"Error"`
	Code       string
	Message    string
	Key        string `xml:",omitempty"`
	BucketName string `xml:",omitempty"`
	Resource   string
	RequestID  string `xml:"RequestId"`
	HostID     string `xml:"HostId"`
}

// asS3Error turns any error into the S3 error to answer.
func asS3Error(err error) *blob.Error {
	var e *blob.Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, io.ErrUnexpectedEOF):
		return blob.ErrIncompleteBody
	case errors.Is(err, context.DeadlineExceeded):
		return errRequestTimeout
	}
	return blob.ErrInternal
}

// writeError answers with err as S3 XML (headers only for HEAD).
func (rq *request) writeError(err error) {
	e := asS3Error(err)
	rq.failed = true
	if e.Status >= 500 {
		rq.s.log.Warn("s3 request failed", "op", rq.op, "bucket", rq.bucket, "key", rq.key, "err", err)
	}
	h := rq.w.Header()
	if e.Status == http.StatusNotModified {
		rq.w.WriteHeader(e.Status)
		return
	}
	h.Set("Content-Type", "application/xml")
	if rq.r.Method == http.MethodHead {
		rq.w.WriteHeader(e.Status)
		return
	}
	body := errorBody{Code: e.Code, Message: e.Message, Resource: rq.resource(), RequestID: rq.id, HostID: rq.hostID}
	switch e.Code {
	case "NoSuchKey":
		body.Key = rq.key
	case "NoSuchBucket", "BucketNotEmpty", "BucketAlreadyOwnedByYou", "BucketAlreadyExists", "InvalidBucketName":
		body.BucketName = rq.bucket
	}
	rq.w.WriteHeader(e.Status)
	io.WriteString(rq.w, xml.Header)
	xml.NewEncoder(rq.w).Encode(body)
}
