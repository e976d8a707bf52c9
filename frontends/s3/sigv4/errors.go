package sigv4

import (
	"fmt"
	"net/http"

	"github.com/mecha-gateway/mecha/backends/blob"
)

// The errors Verify and Result.Body return, with the codes, statuses and
// messages Amazon S3 answers for the same request. Errors whose message
// names a value of the request (a region, a date) are made by the helpers
// below instead.
var (
	// ErrAccessDenied: a request without any authentication, and anonymous
	// access is not allowed.
	ErrAccessDenied = s3Error("AccessDenied", http.StatusForbidden, "Access Denied")
	// ErrMissingDate: neither x-amz-date nor Date holds a valid time.
	ErrMissingDate = s3Error("AccessDenied", http.StatusForbidden, "AWS authentication requires a valid Date or x-amz-date header")
	// ErrUnsignedHeaders: the request has a Host or x-amz-* header that
	// SignedHeaders does not list.
	ErrUnsignedHeaders = s3Error("AccessDenied", http.StatusForbidden, "There were headers present in the request which were not signed")
	// ErrRequestExpired: a presigned URL used after X-Amz-Date + X-Amz-Expires.
	ErrRequestExpired = s3Error("AccessDenied", http.StatusForbidden, "Request has expired")
	// ErrRequestNotYetValid: a presigned URL whose X-Amz-Date is further
	// in the future than the allowed clock skew.
	ErrRequestNotYetValid = s3Error("AccessDenied", http.StatusForbidden, "Request is not yet valid")
	// ErrInvalidAccessKeyID: the access key is not known.
	ErrInvalidAccessKeyID = s3Error("InvalidAccessKeyId", http.StatusForbidden, "The AWS Access Key Id you provided does not exist in our records.")
	// ErrInvalidToken: the request carries a session token; Mecha's keys
	// are long-term keys, which have none.
	ErrInvalidToken = s3Error("InvalidToken", http.StatusBadRequest, "The provided token is malformed or otherwise invalid.")
	// ErrSignatureDoesNotMatch: the signature of the request, of a chunk
	// or of the trailer is not the one the secret key gives.
	ErrSignatureDoesNotMatch = s3Error("SignatureDoesNotMatch", http.StatusForbidden, "The request signature we calculated does not match the signature you provided. Check your key and signing method.")
	// ErrRequestTimeTooSkewed: the time of a request signed in its header
	// is further from the server's clock than the allowed skew.
	ErrRequestTimeTooSkewed = s3Error("RequestTimeTooSkewed", http.StatusForbidden, "The difference between the request time and the current time is too large.")
	// ErrUnsupportedMechanism: Signature Version 2, or Signature Version 4A,
	// which Mecha does not verify.
	ErrUnsupportedMechanism = s3Error("InvalidRequest", http.StatusBadRequest, "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.")
	// ErrUnsupportedAuthorizationType: an Authorization header of another
	// scheme (Bearer, Basic, …).
	ErrUnsupportedAuthorizationType = s3Error("InvalidArgument", http.StatusBadRequest, "Unsupported Authorization Type")
	// ErrOneMechanism: an Authorization header and presigned parameters in
	// the same request.
	ErrOneMechanism = s3Error("InvalidArgument", http.StatusBadRequest, "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified")
	// ErrMissingAuthComponents: the Authorization header lacks Credential,
	// SignedHeaders or Signature.
	ErrMissingAuthComponents = malformedHeader("the authorization header requires three components: Credential, SignedHeaders, and Signature.")
	// ErrMissingPresignParameters: a presigned URL lacks one of its six
	// parameters.
	ErrMissingPresignParameters = s3Error("AuthorizationQueryParametersError", http.StatusBadRequest, "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.")
	// ErrMissingContentSHA256: a request signed in its header has no
	// x-amz-content-sha256.
	ErrMissingContentSHA256 = s3Error("InvalidRequest", http.StatusBadRequest, "Missing required header for this request: x-amz-content-sha256")
	// ErrInvalidContentSHA256: x-amz-content-sha256 is neither a hash nor
	// one of the names of a payload mode.
	ErrInvalidContentSHA256 = s3Error("InvalidArgument", http.StatusBadRequest, "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD, STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER or a valid sha256 value.")
	// ErrNotImplemented: an ECDSA (Signature Version 4A) streaming payload.
	ErrNotImplemented = s3Error("NotImplemented", http.StatusNotImplemented, "A header you provided implies functionality that is not implemented")
	// ErrContentSHA256Mismatch: the body does not have the SHA-256 that
	// x-amz-content-sha256 gave.
	ErrContentSHA256Mismatch = s3Error("XAmzContentSHA256Mismatch", http.StatusBadRequest, "The provided 'x-amz-content-sha256' header does not match what was computed.")
	// ErrMissingContentLength: an aws-chunked body without
	// x-amz-decoded-content-length.
	ErrMissingContentLength = s3Error("MissingContentLength", http.StatusLengthRequired, "You must provide the Content-Length HTTP header.")
	// ErrIncompleteChunkedBody: an aws-chunked body that ends early, is not
	// well framed, or decodes to another length than
	// x-amz-decoded-content-length. (A plain body that ends before its
	// Content-Length gets blob.ErrIncompleteBody, S3's message for that.)
	ErrIncompleteChunkedBody = s3Error("IncompleteBody", http.StatusBadRequest, "The request body terminated unexpectedly")
	// ErrInvalidChunkSize: a chunk other than the last one is smaller than
	// 8192 bytes.
	ErrInvalidChunkSize = s3Error("InvalidChunkSizeError", http.StatusForbidden, "Only the last chunk is allowed to have a size less than 8192 bytes")
	// ErrMalformedTrailer: the trailing headers of an aws-chunked body are
	// not well formed, or not the ones x-amz-trailer announced.
	ErrMalformedTrailer = s3Error("MalformedTrailerError", http.StatusBadRequest, "The request contained trailing data that was not well-formed or did not conform to our published schema.")
)

// s3Error makes a *blob.Error.
func s3Error(code string, status int, message string) *blob.Error {
	return &blob.Error{Code: code, Status: status, Message: message}
}

// malformedHeader is AuthorizationHeaderMalformed with S3's prefix before
// the detail.
func malformedHeader(detail string) *blob.Error {
	return s3Error("AuthorizationHeaderMalformed", http.StatusBadRequest, "The authorization header is malformed; "+detail)
}

// queryParametersError is AuthorizationQueryParametersError with the given
// message.
func queryParametersError(format string, args ...any) *blob.Error {
	return s3Error("AuthorizationQueryParametersError", http.StatusBadRequest, fmt.Sprintf(format, args...))
}

// malformedCredential reports a bad credential: in the Authorization
// header, or in the X-Amz-Credential parameter of a presigned URL.
func malformedCredential(presigned bool, detail string) *blob.Error {
	if presigned {
		return queryParametersError("Error parsing the X-Amz-Credential parameter; %s", detail)
	}
	return malformedHeader(detail)
}

// malformedComponent reports a part of the Authorization header that is
// not name=value or whose name is not known.
func malformedComponent(component string) *blob.Error {
	return malformedHeader(fmt.Sprintf("the authorization component %q is malformed.", component))
}

// credentialDateMismatch reports a credential scope whose date is not the
// day of the request time.
func credentialDateMismatch(presigned bool, scopeDate, requestDate string) *blob.Error {
	detail := fmt.Sprintf("Invalid credential date %q. This date is not the same as X-Amz-Date: %q.", scopeDate, requestDate)
	if presigned {
		return queryParametersError("%s", detail)
	}
	return malformedHeader(detail)
}
