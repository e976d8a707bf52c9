package s3

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

func TestMinioGo(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		for _, trailing := range []bool{false, true} {
			c, err := minio.New(e.addr, &minio.Options{Creds: credentials.NewStaticV4(accessKey, secretKey, ""), Region: "us-east-1",
				TrailingHeaders: trailing})
			if err != nil {
				t.Fatal(err)
			}
			bucket := "minio-plain"
			if trailing {
				bucket = "minio-trailing"
			}
			if err := c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
				t.Fatal(err)
			}
			small := []byte("small object")
			opts := minio.PutObjectOptions{ContentType: "text/plain", UserMetadata: map[string]string{"origin": "minio"}}
			if trailing {
				opts.Checksum = minio.ChecksumCRC32C
			}
			if _, err := c.PutObject(ctx, bucket, "small", bytes.NewReader(small), int64(len(small)), opts); err != nil {
				t.Fatalf("put (trailing %v): %v", trailing, err)
			}
			// Unknown size: minio-go streams it in parts.
			big := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MiB
			info, err := c.PutObject(ctx, bucket, "dir/big", io.MultiReader(bytes.NewReader(big)), -1, minio.PutObjectOptions{PartSize: 5 << 20})
			if err != nil || info.Size != int64(len(big)) {
				t.Fatalf("put of unknown size: %+v %v", info, err)
			}
			obj, err := c.GetObject(ctx, bucket, "dir/big", minio.GetObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(obj)
			if err != nil || !bytes.Equal(got, big) {
				t.Fatalf("get: %d bytes, %v", len(got), err)
			}
			st, err := c.StatObject(ctx, bucket, "small", minio.StatObjectOptions{})
			if err != nil || st.UserMetadata["Origin"] != "minio" || st.ContentType != "text/plain" {
				t.Fatalf("stat: %+v %v", st, err)
			}
			var keys []string
			for o := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
				if o.Err != nil {
					t.Fatal(o.Err)
				}
				keys = append(keys, o.Key)
			}
			if strings.Join(keys, ",") != "dir/big,small" {
				t.Fatalf("list: %q", keys)
			}
			u, err := c.PresignedGetObject(ctx, bucket, "small", time.Minute, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.Get(u.String())
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !bytes.Equal(b, small) {
				t.Fatalf("presigned get: %d %q", resp.StatusCode, b)
			}
			if _, err := c.CopyObject(ctx, minio.CopyDestOptions{Bucket: bucket, Object: "copy"}, minio.CopySrcOptions{Bucket: bucket, Object: "small"}); err != nil {
				t.Fatal(err)
			}
			objs := make(chan minio.ObjectInfo, 3)
			for _, k := range []string{"small", "copy", "dir/big"} {
				objs <- minio.ObjectInfo{Key: k}
			}
			close(objs)
			for rerr := range c.RemoveObjects(ctx, bucket, objs, minio.RemoveObjectsOptions{}) {
				t.Fatalf("remove %s: %v", rerr.ObjectName, rerr.Err)
			}
			if err := c.RemoveBucket(ctx, bucket); err != nil {
				t.Fatal(err)
			}
		}
	})
}
