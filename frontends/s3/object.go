package s3

import (
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mecha-gateway/mecha/backends/blob"
)

// putOptions reads an object's metadata from the request headers.
func (rq *request) putOptions() (blob.PutOptions, error) {
	h := rq.r.Header
	o := blob.PutOptions{
		ContentType: h.Get("Content-Type"), ContentEncoding: h.Get("Content-Encoding"),
		ContentDisposition: h.Get("Content-Disposition"), ContentLanguage: h.Get("Content-Language"),
		CacheControl: h.Get("Cache-Control"), Expires: h.Get("Expires"),
	}
	// aws-chunked is the transfer's encoding, not the object's.
	if encs := strings.Split(o.ContentEncoding, ","); len(encs) > 0 {
		var keep []string
		for _, e := range encs {
			if e = strings.TrimSpace(e); e != "" && e != "aws-chunked" {
				keep = append(keep, e)
			}
		}
		o.ContentEncoding = strings.Join(keep, ",")
	}
	size := 0
	for name, vs := range h {
		if m, ok := strings.CutPrefix(strings.ToLower(name), "x-amz-meta-"); ok {
			if o.UserMeta == nil {
				o.UserMeta = map[string]string{}
			}
			o.UserMeta[m] = strings.Join(vs, ",")
			size += len(m) + len(o.UserMeta[m])
		}
	}
	if size > 2048 {
		return o, &blob.Error{Code: "MetadataTooLarge", Status: http.StatusBadRequest, Message: "Your metadata headers exceed the maximum allowed metadata size."}
	}
	if t := h.Get("x-amz-tagging"); t != "" {
		tags, err := parseTagQuery(t)
		if err != nil {
			return o, err
		}
		o.Tags = tags
	}
	return o, nil
}

// parseTagQuery reads x-amz-tagging (k1=v1&k2=v2).
func parseTagQuery(s string) (map[string]string, error) {
	q, err := url.ParseQuery(s)
	if err != nil {
		return nil, errInvalidTag
	}
	tags := map[string]string{}
	for k, vs := range q {
		if len(vs) != 1 {
			return nil, errInvalidTag
		}
		tags[k] = vs[0]
	}
	return tags, checkTags(tags)
}

// checkTags applies S3's limits: at most 10 tags, keys of 1 to 128
// characters, values of at most 256.
func checkTags(tags map[string]string) error {
	if len(tags) > 10 {
		return &blob.Error{Code: "BadRequest", Status: http.StatusBadRequest, Message: "Object tags cannot be greater than 10"}
	}
	for k, v := range tags {
		if k == "" || len([]rune(k)) > 128 || len([]rune(v)) > 256 {
			return errInvalidTag
		}
	}
	return nil
}

func (rq *request) putObject() error {
	if rq.auth.DecodedLength < 0 && rq.r.ContentLength < 0 {
		return errMissingLength
	}
	size := rq.auth.DecodedLength
	if size > int64(rq.st.cfg.MaxObjectSize) {
		return blob.ErrEntityTooLarge
	}
	o, err := rq.putOptions()
	if err != nil {
		return err
	}
	h := rq.r.Header
	switch inm := h.Get("If-None-Match"); inm {
	case "":
	case "*":
		o.IfNoneMatch = true
	default:
		return errNotImplemented
	}
	o.IfMatch = blob.TrimETag(h.Get("If-Match"))
	o.Checksums = map[string]string{}
	body, err := rq.body(o.Checksums)
	if err != nil {
		return err
	}
	info, err := rq.st.store.PutObject(rq.ctx, rq.bucket, rq.key, body, size, o)
	if err != nil {
		return err
	}
	rq.s.inBytes.Add(uint64(info.Size))
	rh := rq.w.Header()
	rh.Set("ETag", quote(info.ETag))
	for alg, v := range o.Checksums {
		rh.Set("x-amz-checksum-"+strings.ToLower(alg), v)
	}
	rq.w.WriteHeader(http.StatusOK)
	return nil
}

// objectHeaders writes an object's metadata as GET and HEAD answer it,
// with the response-* overrides of the query.
func (rq *request) objectHeaders(info *blob.Info) {
	h := rq.w.Header()
	h.Set("ETag", quote(info.ETag))
	h.Set("Last-Modified", timeHTTP(info.LastModified))
	h.Set("Accept-Ranges", "bytes")
	ct := info.ContentType
	if ct == "" {
		ct = "binary/octet-stream"
	}
	h.Set("Content-Type", ct)
	for name, v := range map[string]string{"Content-Encoding": info.ContentEncoding, "Content-Disposition": info.ContentDisposition,
		"Content-Language": info.ContentLanguage, "Cache-Control": info.CacheControl, "Expires": info.Expires} {
		if v != "" {
			h.Set(name, v)
		}
	}
	for k, v := range info.UserMeta {
		h["X-Amz-Meta-"+k] = []string{v}
	}
	if len(info.Tags) > 0 {
		h.Set("x-amz-tagging-count", strconv.Itoa(len(info.Tags)))
	}
	if info.Parts > 0 && rq.q.Has("partNumber") {
		h.Set("x-amz-mp-parts-count", strconv.Itoa(info.Parts))
	}
	if strings.EqualFold(rq.r.Header.Get("x-amz-checksum-mode"), "ENABLED") {
		for alg, v := range info.Checksums {
			h.Set("x-amz-checksum-"+strings.ToLower(alg), v)
		}
	}
	q := rq.q
	for param, name := range map[string]string{"response-content-type": "Content-Type", "response-content-language": "Content-Language",
		"response-expires": "Expires", "response-cache-control": "Cache-Control", "response-content-disposition": "Content-Disposition",
		"response-content-encoding": "Content-Encoding"} {
		if v := q.Get(param); v != "" {
			h.Set(name, v)
		}
	}
}

// conditions applies If-Match, If-None-Match, If-Modified-Since and
// If-Unmodified-Since (RFC 9110's order, as S3: If-Match decides over
// If-Unmodified-Since, If-None-Match over If-Modified-Since).
func conditions(h http.Header, etag string, modified time.Time, prefix string) error {
	modified = modified.Truncate(time.Second)
	etagMatches := func(list string) bool {
		for _, e := range strings.Split(list, ",") {
			e = strings.TrimSpace(e)
			if e == "*" || blob.TrimETag(e) == etag {
				return true
			}
		}
		return false
	}
	im, inm := h.Get(prefix+"If-Match"), h.Get(prefix+"If-None-Match")
	if im != "" {
		if !etagMatches(im) {
			return blob.ErrPreconditionFailed
		}
	} else if v := h.Get(prefix + "If-Unmodified-Since"); v != "" {
		if t, err := http.ParseTime(v); err == nil && modified.After(t) {
			return blob.ErrPreconditionFailed
		}
	}
	notModified := errNotModified
	if prefix != "" {
		notModified = blob.ErrPreconditionFailed // a copy source has no 304
	}
	if inm != "" {
		if etagMatches(inm) {
			return notModified
		}
	} else if v := h.Get(prefix + "If-Modified-Since"); v != "" {
		if t, err := http.ParseTime(v); err == nil && !modified.After(t) {
			return notModified
		}
	}
	return nil
}

// parseRange reads a Range header: nil when absent or not one range S3
// serves (S3 then returns the whole object).
func parseRange(v string) *blob.Range {
	spec, ok := strings.CutPrefix(v, "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return nil
	}
	first, last, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return nil
	}
	if first == "" {
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n < 0 {
			return nil
		}
		if n == 0 {
			return &blob.Range{First: 1 << 62, Last: -1} // unsatisfiable
		}
		return &blob.Range{Suffix: n}
	}
	f, err := strconv.ParseInt(first, 10, 64)
	if err != nil || f < 0 {
		return nil
	}
	r := &blob.Range{First: f, Last: -1}
	if last != "" {
		l, err := strconv.ParseInt(last, 10, 64)
		if err != nil || l < f {
			return nil
		}
		r.Last = l
	}
	return r
}

func (rq *request) getObject() error {
	if v := rq.q.Get("versionId"); v != "" && v != "null" {
		return errNoSuchVersion
	}
	rng := parseRange(rq.r.Header.Get("Range"))
	obj, err := rq.st.store.GetObject(rq.ctx, rq.bucket, rq.key, rng)
	if err != nil {
		return err
	}
	defer obj.Body.Close()
	if err := conditions(rq.r.Header, obj.ETag, obj.LastModified, ""); err != nil {
		if err == errNotModified {
			rq.w.Header().Set("ETag", quote(obj.ETag))
			rq.w.Header().Set("Last-Modified", timeHTTP(obj.LastModified))
		}
		return err
	}
	rq.objectHeaders(&obj.Info)
	h := rq.w.Header()
	n := obj.End - obj.Start + 1
	if obj.Size == 0 {
		n = 0
	}
	h.Set("Content-Length", strconv.FormatInt(n, 10))
	status := http.StatusOK
	if obj.Partial {
		status = http.StatusPartialContent
		h.Set("Content-Range", "bytes "+strconv.FormatInt(obj.Start, 10)+"-"+strconv.FormatInt(obj.End, 10)+"/"+strconv.FormatInt(obj.Size, 10))
		for alg := range obj.Checksums {
			h.Del("x-amz-checksum-" + strings.ToLower(alg)) // a range has none of the object's
		}
	}
	rq.w.WriteHeader(status)
	// io.Copy lets a body that is a file reach the socket by sendfile
	// (the fs store's bodies are; the ResponseWriter hands them to the
	// connection), and others through one buffer.
	written, err := io.Copy(rq.w, obj.Body)
	rq.s.outBytes.Add(uint64(written))
	if err != nil {
		// The status line is gone: all that is left is to cut the
		// response short, which the client sees as a failed download.
		rq.failed = true
		panic(http.ErrAbortHandler)
	}
	return nil
}

func (rq *request) headObject() error {
	if v := rq.q.Get("versionId"); v != "" && v != "null" {
		return errNoSuchVersion
	}
	info, err := rq.st.store.HeadObject(rq.ctx, rq.bucket, rq.key)
	if err != nil {
		return err
	}
	if err := conditions(rq.r.Header, info.ETag, info.LastModified, ""); err != nil {
		return err
	}
	rq.objectHeaders(info)
	h := rq.w.Header()
	if rng := parseRange(rq.r.Header.Get("Range")); rng != nil {
		start, end, ok := rng.Resolve(info.Size)
		if !ok {
			return blob.ErrInvalidRange
		}
		h.Set("Content-Length", strconv.FormatInt(end-start+1, 10))
		h.Set("Content-Range", "bytes "+strconv.FormatInt(start, 10)+"-"+strconv.FormatInt(end, 10)+"/"+strconv.FormatInt(info.Size, 10))
		rq.w.WriteHeader(http.StatusPartialContent)
		return nil
	}
	h.Set("Content-Length", strconv.FormatInt(info.Size, 10))
	rq.w.WriteHeader(http.StatusOK)
	return nil
}

func (rq *request) deleteObject() error {
	if v := rq.q.Get("versionId"); v != "" && v != "null" {
		return errNoSuchVersion
	}
	if err := rq.st.store.DeleteObject(rq.ctx, rq.bucket, rq.key); err != nil {
		return err
	}
	rq.w.WriteHeader(http.StatusNoContent)
	return nil
}

// copySource reads x-amz-copy-source: [/]bucket/key[?versionId=null].
func (rq *request) copySource() (bucket, key string, err error) {
	src := rq.r.Header.Get("x-amz-copy-source")
	src, version, _ := strings.Cut(src, "?")
	if version != "" {
		q, _ := url.ParseQuery(version)
		if v := q.Get("versionId"); v != "null" {
			return "", "", errNoSuchVersion
		}
	}
	src, err = url.PathUnescape(src)
	if err != nil {
		return "", "", errInvalidCopySource
	}
	bucket, key, _ = strings.Cut(strings.TrimPrefix(src, "/"), "/")
	if bucket == "" || key == "" {
		return "", "", errInvalidCopySource
	}
	return bucket, key, checkNames(bucket, key)
}

func (rq *request) copyObject() error {
	srcBucket, srcKey, err := rq.copySource()
	if err != nil {
		return err
	}
	h := rq.r.Header
	var o blob.CopyOptions
	switch d := h.Get("x-amz-metadata-directive"); d {
	case "", "COPY":
	case "REPLACE":
		o.ReplaceMetadata = true
	default:
		return errInvalidDirective
	}
	switch d := h.Get("x-amz-tagging-directive"); d {
	case "", "COPY":
	case "REPLACE":
		o.ReplaceTags = true
	default:
		return &blob.Error{Code: "InvalidArgument", Status: http.StatusBadRequest, Message: "Unknown tagging directive."}
	}
	if o.Meta, err = rq.putOptions(); err != nil {
		return err
	}
	// Conditions on the destination, checked by the store with the write.
	switch inm := h.Get("If-None-Match"); inm {
	case "":
	case "*":
		o.Meta.IfNoneMatch = true
	default:
		return errNotImplemented
	}
	o.Meta.IfMatch = blob.TrimETag(h.Get("If-Match"))
	if srcBucket == rq.bucket && srcKey == rq.key && !o.ReplaceMetadata {
		return errCopyToItself
	}
	info, err := rq.st.store.HeadObject(rq.ctx, srcBucket, srcKey)
	if err != nil {
		return err
	}
	if err := conditions(h, info.ETag, info.LastModified, "x-amz-copy-source-"); err != nil {
		return err
	}
	if info.Size > int64(rq.st.cfg.MaxObjectSize) {
		return &blob.Error{Code: "InvalidRequest", Status: http.StatusBadRequest, Message: "The specified copy source is larger than the maximum allowable size for a copy source: 5368709120"}
	}
	res, err := rq.st.store.CopyObject(rq.ctx, srcBucket, srcKey, rq.bucket, rq.key, o)
	if err != nil {
		return err
	}
	return rq.writeXML(http.StatusOK, copyObjectResult{NS: s3NS, LastModified: timeISO(res.LastModified), ETag: quote(res.ETag)})
}

func (rq *request) getObjectTagging() error {
	var tags map[string]string
	if tg, ok := rq.st.store.(blob.TagGetter); ok {
		t, err := tg.GetTags(rq.ctx, rq.bucket, rq.key)
		if err != nil {
			return err
		}
		tags = t
	} else {
		info, err := rq.st.store.HeadObject(rq.ctx, rq.bucket, rq.key)
		if err != nil {
			return err
		}
		tags = info.Tags
	}
	res := tagging{NS: s3NS, TagSet: []tagXML{}}
	for k, v := range tags {
		res.TagSet = append(res.TagSet, tagXML{k, v})
	}
	return rq.writeXML(http.StatusOK, res)
}

func (rq *request) putObjectTagging() error {
	var t tagging
	if err := rq.readXML(&t, 64<<10); err != nil {
		return err
	}
	tags := map[string]string{}
	for _, tg := range t.TagSet {
		if _, dup := tags[tg.Key]; dup {
			return &blob.Error{Code: "InvalidTag", Status: http.StatusBadRequest, Message: "Cannot provide multiple Tags with the same key"}
		}
		tags[tg.Key] = tg.Value
	}
	if err := checkTags(tags); err != nil {
		return err
	}
	if err := rq.st.store.SetTags(rq.ctx, rq.bucket, rq.key, tags); err != nil {
		return err
	}
	rq.w.WriteHeader(http.StatusOK)
	return nil
}

func (rq *request) deleteObjectTagging() error {
	if err := rq.st.store.SetTags(rq.ctx, rq.bucket, rq.key, nil); err != nil {
		return err
	}
	rq.w.WriteHeader(http.StatusNoContent)
	return nil
}
