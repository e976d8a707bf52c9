package s3

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/mecha-gateway/mecha/backends/blob"
)

func (rq *request) createMultipartUpload() error {
	o, err := rq.putOptions()
	if err != nil {
		return err
	}
	id, err := rq.st.store.CreateMultipartUpload(rq.ctx, rq.bucket, rq.key, o)
	if err != nil {
		return err
	}
	return rq.writeXML(http.StatusOK, initiateMultipartUploadResult{NS: s3NS, Bucket: rq.bucket, Key: rq.key, UploadID: id})
}

// partNumber reads the partNumber parameter.
func (rq *request) partNumber() (int, error) {
	n, err := strconv.Atoi(rq.q.Get("partNumber"))
	if err != nil || n < 1 || n > blob.MaxParts {
		return 0, errInvalidPartNumber
	}
	return n, nil
}

func (rq *request) uploadPart() error {
	part, err := rq.partNumber()
	if err != nil {
		return err
	}
	if rq.auth.DecodedLength < 0 && rq.r.ContentLength < 0 {
		return errMissingLength
	}
	if rq.auth.DecodedLength > 5<<30 {
		return blob.ErrEntityTooLarge
	}
	sums := map[string]string{}
	body, err := rq.body(sums)
	if err != nil {
		return err
	}
	p, err := rq.st.store.UploadPart(rq.ctx, rq.bucket, rq.key, rq.q.Get("uploadId"), part, body, rq.auth.DecodedLength)
	if err != nil {
		return err
	}
	rq.s.inBytes.Add(uint64(p.Size))
	h := rq.w.Header()
	h.Set("ETag", quote(p.ETag))
	for alg, v := range sums {
		h.Set("x-amz-checksum-"+strings.ToLower(alg), v)
	}
	rq.w.WriteHeader(http.StatusOK)
	return nil
}

// uploadPartCopy copies a source object, or the range
// x-amz-copy-source-range names, into a part: read from the store and
// written back, streaming.
func (rq *request) uploadPartCopy() error {
	part, err := rq.partNumber()
	if err != nil {
		return err
	}
	srcBucket, srcKey, err := rq.copySource()
	if err != nil {
		return err
	}
	var rng *blob.Range
	if v := rq.r.Header.Get("x-amz-copy-source-range"); v != "" {
		rng = parseRange(v)
		if rng == nil || rng.Suffix > 0 || rng.Last < 0 {
			return errInvalidRangeHeader
		}
	}
	src, err := rq.st.store.GetObject(rq.ctx, srcBucket, srcKey, rng)
	if err != nil {
		return err
	}
	defer src.Body.Close()
	if rng != nil && rng.Last >= src.Size {
		return &blob.Error{Code: "InvalidRange", Status: http.StatusRequestedRangeNotSatisfiable, Message: "The requested range is not satisfiable"}
	}
	if err := conditions(rq.r.Header, src.ETag, src.LastModified, "x-amz-copy-source-"); err != nil {
		return err
	}
	n := src.End - src.Start + 1
	if src.Size == 0 {
		n = 0
	}
	p, err := rq.st.store.UploadPart(rq.ctx, rq.bucket, rq.key, rq.q.Get("uploadId"), part, src.Body, n)
	if err != nil {
		return err
	}
	return rq.writeXML(http.StatusOK, copyPartResult{NS: s3NS, LastModified: timeISO(p.LastModified), ETag: quote(p.ETag)})
}

func (rq *request) completeMultipartUpload() error {
	// The x-amz-checksum-* headers of a completion are the checksum of
	// the whole object (parts' checksums combined), not of this body.
	var req completeMultipartUpload
	if err := decodeXML(rq.auth.Body, &req, 4<<20); err != nil {
		return err
	}
	if len(req.Parts) == 0 {
		return &blob.Error{Code: "MalformedXML", Status: http.StatusBadRequest, Message: "The XML you provided was not well-formed or did not validate against our published schema"}
	}
	parts := make([]blob.CompletePart, len(req.Parts))
	for i, p := range req.Parts {
		parts[i] = blob.CompletePart{Number: p.PartNumber, ETag: p.ETag}
	}
	info, err := rq.st.store.CompleteMultipartUpload(rq.ctx, rq.bucket, rq.key, rq.q.Get("uploadId"), parts)
	if err != nil {
		return err
	}
	scheme := "http"
	if rq.r.TLS != nil {
		scheme = "https"
	}
	return rq.writeXML(http.StatusOK, completeMultipartUploadResult{NS: s3NS, Location: scheme + "://" + rq.r.Host + rq.resource(),
		Bucket: rq.bucket, Key: rq.key, ETag: quote(info.ETag)})
}

func (rq *request) abortMultipartUpload() error {
	if err := rq.st.store.AbortMultipartUpload(rq.ctx, rq.bucket, rq.key, rq.q.Get("uploadId")); err != nil {
		return err
	}
	rq.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (rq *request) listParts() error {
	q := rq.q
	marker, max := 0, 1000
	if v := q.Get("part-number-marker"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return &blob.Error{Code: "InvalidArgument", Status: http.StatusBadRequest, Message: "Provided part-number-marker not an integer or within integer range"}
		}
		marker = n
	}
	if v := q.Get("max-parts"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return &blob.Error{Code: "InvalidArgument", Status: http.StatusBadRequest, Message: "Provided max-parts not an integer or within integer range"}
		}
		max = min(n, 1000)
	}
	id := q.Get("uploadId")
	l, err := rq.st.store.ListParts(rq.ctx, rq.bucket, rq.key, id, marker, max)
	if err != nil {
		return err
	}
	res := listPartsResult{NS: s3NS, Bucket: rq.bucket, Key: rq.key, UploadID: id, Initiator: theOwner, Owner: theOwner,
		StorageClass: "STANDARD", PartNumberMarker: marker, NextPartNumberMarker: l.NextMarker, MaxParts: max, IsTruncated: l.Truncated}
	for _, p := range l.Parts {
		res.Parts = append(res.Parts, partXML{PartNumber: p.Number, LastModified: timeISO(p.LastModified), ETag: quote(p.ETag), Size: p.Size})
	}
	return rq.writeXML(http.StatusOK, res)
}
