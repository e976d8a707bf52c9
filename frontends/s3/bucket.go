package s3

import (
	"encoding/base64"
	"net/http"
	"strconv"

	"github.com/mecha-gateway/mecha/backends/blob"
)

func (rq *request) listBuckets() error {
	bs, err := rq.st.store.ListBuckets(rq.ctx)
	if err != nil {
		return err
	}
	res := listAllMyBucketsResult{NS: s3NS, Owner: theOwner, Buckets: make([]bucketXML, len(bs))}
	for i, b := range bs {
		res.Buckets[i] = bucketXML{Name: b.Name, CreationDate: timeISO(b.Created)}
	}
	return rq.writeXML(http.StatusOK, res)
}

func (rq *request) createBucket() error {
	if !validBucketName(rq.bucket) {
		return errInvalidBucketName
	}
	if rq.r.ContentLength != 0 {
		// A CreateBucketConfiguration: only this region may be asked for.
		var cfg createBucketConfiguration
		if err := rq.readXML(&cfg, 64<<10); err != nil {
			return err
		}
		if cfg.LocationConstraint != "" && cfg.LocationConstraint != rq.st.cfg.Region {
			return &blob.Error{Code: "IllegalLocationConstraintException", Status: http.StatusBadRequest,
				Message: "The " + cfg.LocationConstraint + " location constraint is incompatible for the region specific endpoint this request was sent to."}
		}
	}
	if err := rq.st.store.CreateBucket(rq.ctx, rq.bucket); err != nil {
		return err
	}
	rq.w.Header().Set("Location", "/"+rq.bucket)
	rq.w.WriteHeader(http.StatusOK)
	return nil
}

func (rq *request) deleteBucket() error {
	if err := rq.st.store.DeleteBucket(rq.ctx, rq.bucket); err != nil {
		return err
	}
	rq.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (rq *request) headBucket() error {
	if err := rq.st.store.HeadBucket(rq.ctx, rq.bucket); err != nil {
		return err
	}
	rq.w.Header().Set("x-amz-bucket-region", rq.st.cfg.Region)
	rq.w.WriteHeader(http.StatusOK)
	return nil
}

func (rq *request) getBucketLocation() error {
	if err := rq.st.store.HeadBucket(rq.ctx, rq.bucket); err != nil {
		return err
	}
	region := rq.st.cfg.Region
	if region == "us-east-1" {
		region = "" // S3 answers an empty constraint for us-east-1
	}
	return rq.writeXML(http.StatusOK, locationConstraint{NS: s3NS, Region: region})
}

// getBucketVersioning: buckets are never versioned; S3 answers an empty
// configuration for a bucket that never was.
func (rq *request) getBucketVersioning() error {
	if err := rq.st.store.HeadBucket(rq.ctx, rq.bucket); err != nil {
		return err
	}
	return rq.writeXML(http.StatusOK, versioningConfiguration{NS: s3NS})
}

// listQuery reads prefix, delimiter and max-keys (default and cap 1000).
func (rq *request) listQuery(maxName string) (blob.ListQuery, encoder, error) {
	q := rq.q
	lq := blob.ListQuery{Prefix: q.Get("prefix"), Delimiter: q.Get("delimiter"), MaxKeys: 1000}
	if v := q.Get(maxName); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return lq, false, errInvalidMaxKeys
		}
		lq.MaxKeys = min(n, 1000)
	}
	var e encoder
	switch q.Get("encoding-type") {
	case "":
	case "url":
		e = true
	default:
		return lq, false, &blob.Error{Code: "InvalidArgument", Status: http.StatusBadRequest, Message: "Invalid Encoding Method specified in Request"}
	}
	return lq, e, nil
}

func (rq *request) listObjects() error {
	lq, e, err := rq.listQuery("max-keys")
	if err != nil {
		return err
	}
	marker := rq.q.Get("marker")
	lq.After = marker
	l, err := rq.st.store.ListObjects(rq.ctx, rq.bucket, lq)
	if err != nil {
		return err
	}
	res := listBucketResult{NS: s3NS, Name: rq.bucket, Prefix: e.enc(lq.Prefix), Marker: new(e.enc(marker)), MaxKeys: lq.MaxKeys,
		Delimiter: e.enc(lq.Delimiter), IsTruncated: l.Truncated, Contents: objectsXML(l.Objects, e, true),
		CommonPrefixes: prefixesXML(l.CommonPrefixes, e)}
	if e {
		res.EncodingType = "url"
	}
	if l.Truncated && lq.Delimiter != "" {
		// S3 sends NextMarker only with a delimiter; clients take the
		// last key otherwise.
		res.NextMarker = e.enc(l.Next)
	}
	return rq.writeXML(http.StatusOK, res)
}

func (rq *request) listObjectsV2() error {
	lq, e, err := rq.listQuery("max-keys")
	if err != nil {
		return err
	}
	q := rq.q
	token, startAfter := q.Get("continuation-token"), q.Get("start-after")
	lq.After = startAfter
	if q.Has("continuation-token") {
		after, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil || token == "" {
			return errInvalidToken
		}
		lq.After = max(string(after), startAfter)
	}
	l, err := rq.st.store.ListObjects(rq.ctx, rq.bucket, lq)
	if err != nil {
		return err
	}
	count := len(l.Objects) + len(l.CommonPrefixes)
	res := listBucketResult{NS: s3NS, Name: rq.bucket, Prefix: e.enc(lq.Prefix), ContinuationToken: token,
		StartAfter: e.enc(startAfter), KeyCount: &count, MaxKeys: lq.MaxKeys, Delimiter: e.enc(lq.Delimiter),
		IsTruncated: l.Truncated, Contents: objectsXML(l.Objects, e, q.Get("fetch-owner") == "true"),
		CommonPrefixes: prefixesXML(l.CommonPrefixes, e)}
	if e {
		res.EncodingType = "url"
	}
	if l.Truncated {
		res.NextContinuationToken = base64.RawURLEncoding.EncodeToString([]byte(l.Next))
	}
	return rq.writeXML(http.StatusOK, res)
}

// listObjectVersions lists an unversioned bucket as S3 does: every object
// is its only, latest version, with version id "null".
func (rq *request) listObjectVersions() error {
	lq, e, err := rq.listQuery("max-keys")
	if err != nil {
		return err
	}
	q := rq.q
	keyMarker, vidMarker := q.Get("key-marker"), q.Get("version-id-marker")
	if vidMarker != "" && keyMarker == "" {
		return &blob.Error{Code: "InvalidArgument", Status: http.StatusBadRequest, Message: "A version-id marker cannot be specified without a key marker."}
	}
	if vidMarker != "" && vidMarker != "null" {
		return &blob.Error{Code: "InvalidArgument", Status: http.StatusBadRequest, Message: "Invalid version id specified"}
	}
	lq.After = keyMarker
	l, err := rq.st.store.ListObjects(rq.ctx, rq.bucket, lq)
	if err != nil {
		return err
	}
	res := listVersionsResult{NS: s3NS, Name: rq.bucket, Prefix: e.enc(lq.Prefix), KeyMarker: e.enc(keyMarker),
		VersionIDMarker: vidMarker, MaxKeys: lq.MaxKeys, Delimiter: e.enc(lq.Delimiter), IsTruncated: l.Truncated,
		CommonPrefixes: prefixesXML(l.CommonPrefixes, e)}
	if e {
		res.EncodingType = "url"
	}
	for _, o := range l.Objects {
		res.Versions = append(res.Versions, versionXML{Key: e.enc(o.Key), VersionID: "null", IsLatest: true,
			LastModified: timeISO(o.LastModified), ETag: quote(o.ETag), Size: o.Size, StorageClass: "STANDARD", Owner: theOwner})
	}
	if l.Truncated {
		res.NextKeyMarker, res.NextVersionIDMarker = e.enc(l.Next), "null"
	}
	return rq.writeXML(http.StatusOK, res)
}

func (rq *request) listMultipartUploads() error {
	q := rq.q
	uq := blob.UploadQuery{Prefix: q.Get("prefix"), Delimiter: q.Get("delimiter"), KeyMarker: q.Get("key-marker"),
		UploadIDMarker: q.Get("upload-id-marker"), MaxUploads: 1000}
	if v := q.Get("max-uploads"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return &blob.Error{Code: "InvalidArgument", Status: http.StatusBadRequest, Message: "Provided max-uploads not an integer or within integer range"}
		}
		uq.MaxUploads = min(n, 1000)
	}
	l, err := rq.st.store.ListMultipartUploads(rq.ctx, rq.bucket, uq)
	if err != nil {
		return err
	}
	var e encoder = q.Get("encoding-type") == "url"
	res := listMultipartUploadsResult{NS: s3NS, Bucket: rq.bucket, KeyMarker: e.enc(uq.KeyMarker), UploadIDMarker: uq.UploadIDMarker,
		NextKeyMarker: e.enc(l.NextKeyMarker), NextUploadIDMarker: l.NextUploadIDMarker, Prefix: e.enc(uq.Prefix),
		Delimiter: e.enc(uq.Delimiter), MaxUploads: uq.MaxUploads, IsTruncated: l.Truncated, CommonPrefixes: prefixesXML(l.CommonPrefixes, e)}
	for _, u := range l.Uploads {
		res.Uploads = append(res.Uploads, uploadXML{Key: e.enc(u.Key), UploadID: u.ID, Initiator: theOwner, Owner: theOwner,
			StorageClass: "STANDARD", Initiated: timeISO(u.Initiated)})
	}
	return rq.writeXML(http.StatusOK, res)
}

// deleteObjects deletes up to 1000 objects; version ids other than "null"
// name versions an unversioned bucket does not have.
func (rq *request) deleteObjects() error {
	if err := rq.st.store.HeadBucket(rq.ctx, rq.bucket); err != nil {
		return err
	}
	var req deleteRequest
	if err := rq.readXML(&req, 2<<20); err != nil {
		return err
	}
	if len(req.Objects) == 0 || len(req.Objects) > 1000 {
		return errTooManyKeys
	}
	res := deleteResult{NS: s3NS}
	for _, o := range req.Objects {
		err := checkNames(rq.bucket, o.Key)
		if err == nil && o.VersionID != "" && o.VersionID != "null" {
			err = errNoSuchVersion
		}
		if err == nil {
			err = rq.st.store.DeleteObject(rq.ctx, rq.bucket, o.Key)
		}
		if err != nil {
			e := asS3Error(err)
			res.Errors = append(res.Errors, deleteErrorXML{Key: o.Key, VersionID: o.VersionID, Code: e.Code, Message: e.Message})
			continue
		}
		if !req.Quiet {
			res.Deleted = append(res.Deleted, deletedXML{Key: o.Key, VersionID: o.VersionID})
		}
	}
	return rq.writeXML(http.StatusOK, res)
}
