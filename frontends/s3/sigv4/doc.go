// Package sigv4 authenticates the requests of Mecha's S3 frontend with AWS
// Signature Version 4, as Amazon S3 does, and answers what S3 answers when
// a request fails: the same error code, HTTP status and message.
//
// # What Verify checks
//
// A request is authenticated in one of three ways, and never two at once
// (an Authorization header together with presigned parameters is
// InvalidArgument):
//
//   - The Authorization header "AWS4-HMAC-SHA256 Credential=AK/yyyymmdd/
//     region/s3/aws4_request, SignedHeaders=…, Signature=…". The request
//     needs x-amz-content-sha256 and a valid x-amz-date (or Date); its time
//     may be at most Verifier.MaxSkew (15 minutes) from the server's clock.
//   - A presigned URL: the six X-Amz-Algorithm, X-Amz-Credential,
//     X-Amz-Date, X-Amz-Expires, X-Amz-SignedHeaders and X-Amz-Signature
//     parameters (their names in any letter case). X-Amz-Expires is at
//     most 604800 seconds; the URL is valid from X-Amz-Date (less
//     MaxSkew) up to and including X-Amz-Date + X-Amz-Expires, and never
//     with X-Amz-Expires=0. The payload is UNSIGNED-PAYLOAD unless the
//     X-Amz-Content-Sha256 parameter, or a signed x-amz-content-sha256
//     header, says otherwise.
//   - No authentication at all, accepted only with Verifier.AllowAnonymous.
//     Such a request may still send an unsigned aws-chunked body or the
//     SHA-256 of its body.
//
// For a signed request Verify checks the credential scope (its date is the
// day of the request time, its region is Verifier.Region when that is set,
// its service is s3), that the Host header and every x-amz-* header are
// among the signed headers, that the access key is known, and then the
// signature, computed over the canonical request (the path decoded once
// and UriEncoded once, as S3 does; the query pairs sorted and encoded; the
// signed headers with their values trimmed and their inner runs of spaces
// and tabs folded) and compared in constant time. The key and the
// signature are checked before the time, as S3 does. Go's server moves
// Host to r.Host and Transfer-Encoding to r.TransferEncoding and may drop
// Content-Length into r.ContentLength; the canonical request takes them
// back from there.
//
// # The payload
//
// Result.Body replaces r.Body. What it does depends on x-amz-content-sha256:
//
//   - A hex SHA-256: the bytes pass through as they come and are hashed;
//     the Read at the end returns XAmzContentSHA256Mismatch instead of
//     io.EOF if the hash differs.
//   - UNSIGNED-PAYLOAD: the bytes as they come.
//   - STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-
//     TRAILER and STREAMING-UNSIGNED-PAYLOAD-TRAILER: the body is
//     aws-chunked and Body decodes it. Each signed chunk's signature
//     chains from the previous one (the first from the request's
//     signature) and is checked when the chunk's data has passed; the
//     trailing headers (x-amz-checksum-*) must be the ones x-amz-trailer
//     announced, their signature is checked in the signed mode, and
//     Result.Trailer returns them once Body has returned io.EOF (checking
//     the checksum is the frontend's work). The decoded length must equal
//     x-amz-decoded-content-length, which these modes require.
//
// No chunk and no body is ever held in memory: an error in a chunk comes
// from the Read after its last byte, and Body returns io.EOF only when the
// whole payload is proven; a backend that commits an object only after
// io.EOF never stores a payload that fails. An error from Body is a
// *blob.Error for anything wrong with the payload; a failure of the
// connection itself passes through as it is.
//
// # Bounds
//
// The aws-chunked decoder reads through a buffer of 4 KiB and keeps no
// more than a few hundred bytes of state, whatever the size of the body:
//
//   - a chunk line (hex size and chunk signature) has at most
//     MaxChunkLineSize (256) bytes and its size at most 15 hex digits;
//   - a signed chunk has at most MaxSignedChunkSize (16 MiB), the bytes
//     that pass before a signature is checked; no chunk may exceed what is
//     left of x-amz-decoded-content-length;
//   - every chunk but the last with data has at least MinChunkSize (8192)
//     bytes, as S3 requires (InvalidChunkSizeError);
//   - a trailer line has at most MaxTrailerLineSize (1 KiB), and all the
//     trailing headers with their signature at most MaxTrailerSize (8 KiB).
//
// A body that ends early or is not well framed is IncompleteBody ("The
// request body terminated unexpectedly"), as S3 answers for any malformed
// aws-chunked body; bad trailing headers are MalformedTrailerError. A plain
// body shorter than its Content-Length is IncompleteBody with S3's
// Content-Length message. The decoder accepts three quirks of minio-go:
// trailer lines that end in LF alone, an empty line between its signed
// trailing headers and their signature, and one CRLF too many at the end
// of its unsigned trailer.
//
// # What is not supported
//
// Signature Version 2 and Signature Version 4A (ECDSA) are answered as S3
// answers a mechanism it does not accept; session tokens
// (x-amz-security-token) are InvalidToken, since Mecha's keys are
// long-term keys; browser uploads by POST policy are not verified here.
package sigv4
