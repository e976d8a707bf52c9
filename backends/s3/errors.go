package s3

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/mecha-gateway/mecha/backends/blob"
)

// sentinels are blob's errors by S3 code: an upstream error with one of
// these codes is returned as the sentinel itself, so that callers can
// test it with errors.Is.
var sentinels = func() map[string]*blob.Error {
	m := map[string]*blob.Error{}
	for _, e := range []*blob.Error{
		blob.ErrNoSuchBucket, blob.ErrNoSuchKey, blob.ErrNoSuchUpload, blob.ErrBucketExists,
		blob.ErrBucketNotEmpty, blob.ErrInvalidRange, blob.ErrPreconditionFailed, blob.ErrInvalidPart,
		blob.ErrInvalidPartOrder, blob.ErrEntityTooSmall, blob.ErrEntityTooLarge, blob.ErrIncompleteBody,
		blob.ErrKeyTooLong,
	} {
		m[e.Code] = e
	}
	return m
}()

// Codes the SDK makes up from the status line of an answer without a
// body (HEAD), and the S3 errors they stand for.
var statusCodes = map[string]*blob.Error{
	"PreconditionFailed":           blob.ErrPreconditionFailed,
	"RequestedRangeNotSatisfiable": blob.ErrInvalidRange,
	"NotModified":                  {Code: "NotModified", Status: http.StatusNotModified, Message: "Not Modified"},
	"Forbidden":                    {Code: "AccessDenied", Status: http.StatusForbidden, Message: "Access Denied"},
}

// unreachableError is the error of a request that got no answer: a 503
// for the client, wrapping the cause for errors.Is.
type unreachableError struct {
	s3    *blob.Error
	cause error
}

func (e *unreachableError) Error() string   { return e.s3.Error() }
func (e *unreachableError) Unwrap() []error { return []error{e.s3, e.cause} }

// mapError turns what the SDK returned for operation op into the error
// the store returns:
//
//   - the caller's context ended: its error, wrapped;
//   - the upstream answered: a *blob.Error with its code, status and
//     message (blob's sentinel for the codes it has); a 404 without a
//     body (HEAD) is notFound, which the caller chooses;
//   - no answer (refused, reset, timed out): 503 ServiceUnavailable
//     naming the upstream, and a health check is asked for.
func (s *Store) mapError(ctx context.Context, op string, err error, notFound *blob.Error) error {
	e := s.classify(ctx, op, err, notFound)
	if _, ok := e.(*unreachableError); ok {
		s.kick()
	}
	return e
}

// classify is mapError without asking for a health check.
func (s *Store) classify(ctx context.Context, op string, err error, notFound *blob.Error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return fmt.Errorf("%s: %w", op, ctx.Err())
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() > 0 {
		status := re.HTTPStatusCode()
		var ae smithy.APIError
		if !errors.As(err, &ae) {
			// An answer, but not one S3 would give.
			return &blob.Error{Code: "InternalError", Status: http.StatusBadGateway,
				Message: fmt.Sprintf("The upstream S3 at %s gave an answer that is not S3's (HTTP %d): %v", s.endpoint, status, innermost(err))}
		}
		code, msg := ae.ErrorCode(), ae.ErrorMessage()
		if e, ok := sentinels[code]; ok {
			return e
		}
		if status == http.StatusNotFound && notFound != nil && (code == "NotFound" || code == "") {
			return notFound
		}
		if e, ok := statusCodes[code]; ok {
			return e
		}
		if code == "" || code == "UnknownError" {
			code = http.StatusText(status)
		}
		if msg == "" {
			msg = http.StatusText(status)
		}
		return &blob.Error{Code: code, Status: status, Message: msg}
	}
	return &unreachableError{
		s3: &blob.Error{Code: "ServiceUnavailable", Status: http.StatusServiceUnavailable,
			Message: fmt.Sprintf("Backend %s cannot reach its upstream S3 at %s (%s): %v", s.name, s.endpoint, op, innermost(err))},
		cause: err,
	}
}

// innermost is the cause of an SDK error without the SDK's layers of
// context ("operation error S3: ..., https response error ...").
func innermost(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	var de *smithy.DeserializationError
	if errors.As(err, &de) && de.Err != nil {
		return de.Err
	}
	var oe *smithy.OperationError
	if errors.As(err, &oe) && oe.Err != nil {
		err = oe.Err
	}
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}
