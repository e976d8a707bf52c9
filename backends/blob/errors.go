package blob

import "net/http"

// Error is an S3 error: its code, HTTP status and message, as S3 sends
// them. Stores return these (the sentinels below, or new ones for what an
// upstream S3 answered) and the frontend renders them as S3 XML.
type Error struct {
	Code    string
	Status  int
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// The errors stores return, with S3's codes, statuses and messages.
var (
	ErrNoSuchBucket       = &Error{"NoSuchBucket", http.StatusNotFound, "The specified bucket does not exist"}
	ErrNoSuchKey          = &Error{"NoSuchKey", http.StatusNotFound, "The specified key does not exist."}
	ErrNoSuchUpload       = &Error{"NoSuchUpload", http.StatusNotFound, "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."}
	ErrBucketExists       = &Error{"BucketAlreadyOwnedByYou", http.StatusConflict, "Your previous request to create the named bucket succeeded and you already own it."}
	ErrBucketNotEmpty     = &Error{"BucketNotEmpty", http.StatusConflict, "The bucket you tried to delete is not empty"}
	ErrInvalidRange       = &Error{"InvalidRange", http.StatusRequestedRangeNotSatisfiable, "The requested range is not satisfiable"}
	ErrPreconditionFailed = &Error{"PreconditionFailed", http.StatusPreconditionFailed, "At least one of the pre-conditions you specified did not hold"}
	ErrInvalidPart        = &Error{"InvalidPart", http.StatusBadRequest, "One or more of the specified parts could not be found.  The part may not have been uploaded, or the specified entity tag may not match the part's entity tag."}
	ErrInvalidPartOrder   = &Error{"InvalidPartOrder", http.StatusBadRequest, "The list of parts was not in ascending order. Parts must be ordered by part number."}
	ErrEntityTooSmall     = &Error{"EntityTooSmall", http.StatusBadRequest, "Your proposed upload is smaller than the minimum allowed object size."}
	ErrEntityTooLarge     = &Error{"EntityTooLarge", http.StatusBadRequest, "Your proposed upload exceeds the maximum allowed object size."}
	ErrIncompleteBody     = &Error{"IncompleteBody", http.StatusBadRequest, "You did not provide the number of bytes specified by the Content-Length HTTP header."}
	ErrKeyTooLong         = &Error{"KeyTooLongError", http.StatusBadRequest, "Your key is too long"}
	ErrInvalidKey         = &Error{"InvalidArgument", http.StatusBadRequest, "Object key is not valid for this backend."}
	// ErrStorageFull: the store has no room (a memory store's cap, a
	// full disk). S3 has no code for it; this is MinIO's, with Mecha's
	// prefix.
	ErrStorageFull = &Error{"XMechaStorageFull", http.StatusInsufficientStorage, "Storage backend has reached its minimum free drive threshold. Please delete a few objects to proceed."}
	// ErrInternal wraps what a store cannot otherwise explain.
	ErrInternal = &Error{"InternalError", http.StatusInternalServerError, "We encountered an internal error. Please try again."}
)
