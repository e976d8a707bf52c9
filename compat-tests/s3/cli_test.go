package s3

import (
	"bytes"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// tool finds a client program: the first of paths that exists and whose
// `versionArgs` output contains want. A missing tool fails the test (CI
// installs them all); -short skips.
func tool(t *testing.T, want string, versionArgs []string, paths ...string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs external clients")
	}
	for _, p := range paths {
		full, err := exec.LookPath(p)
		if err != nil {
			continue
		}
		out, _ := exec.Command(full, versionArgs...).CombinedOutput()
		if strings.Contains(string(out), want) {
			return full
		}
	}
	t.Fatalf("none of %v (%s) is installed: apt-get install awscli python3-boto3 rclone s3cmd", paths, want)
	return ""
}

// run runs a client and returns its output, failing the test on error.
func run(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	// The machine's own AWS and rclone settings (a CA bundle, a profile)
	// must not leak into a client talking to Mecha over plain HTTP.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "RCLONE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// sampleTree writes files to upload: small ones in nested directories
// and one of 12 MiB, over the multipart threshold of every client.
func sampleTree(t *testing.T) (dir string, files map[string][]byte) {
	t.Helper()
	dir = t.TempDir()
	files = map[string][]byte{
		"a.txt":            []byte("alpha\n"),
		"sub/b.txt":        []byte("bravo\n"),
		"sub/deep/c d.txt": []byte("charlie delta\n"),
		"empty":            {},
		"big.bin":          make([]byte, 12<<20),
	}
	rand.Read(files["big.bin"])
	for name, data := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, files
}

func checkTree(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for name, data := range files {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: %d bytes (want %d), %v", name, len(got), len(data), err)
		}
	}
}

func TestAWSCLI(t *testing.T) {
	aws := tool(t, "aws-cli/2", []string{"--version"}, "/usr/bin/aws", "aws")
	e := start(t, "fs")
	env := []string{"AWS_ACCESS_KEY_ID=" + accessKey, "AWS_SECRET_ACCESS_KEY=" + secretKey, "AWS_DEFAULT_REGION=us-east-1",
		"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "HOME=" + t.TempDir()}
	cli := func(args ...string) string {
		return run(t, env, aws, append([]string{"--endpoint-url", e.endpoint}, args...)...)
	}
	dir, files := sampleTree(t)
	cli("s3", "mb", "s3://cli")
	cli("s3", "cp", filepath.Join(dir, "big.bin"), "s3://cli/big.bin")
	cli("s3", "sync", dir, "s3://cli/tree/")
	ls := cli("s3", "ls", "--recursive", "s3://cli/tree/")
	for name := range files {
		if !strings.Contains(ls, "tree/"+name) {
			t.Fatalf("ls is missing %s:\n%s", name, ls)
		}
	}
	// A second sync uploads nothing.
	if out := cli("s3", "sync", dir, "s3://cli/tree/"); strings.Contains(out, "upload:") {
		t.Fatalf("second sync uploaded again:\n%s", out)
	}
	back := t.TempDir()
	cli("s3", "sync", "s3://cli/tree/", back)
	checkTree(t, back, files)
	cli("s3api", "put-object", "--bucket", "cli", "--key", "api/obj", "--body", filepath.Join(dir, "a.txt"), "--content-type", "text/plain",
		"--metadata", "k=v")
	head := cli("s3api", "head-object", "--bucket", "cli", "--key", "api/obj")
	if !strings.Contains(head, `"ContentType": "text/plain"`) || !strings.Contains(head, `"k": "v"`) {
		t.Fatalf("head-object:\n%s", head)
	}
	out := filepath.Join(t.TempDir(), "obj")
	cli("s3api", "get-object", "--bucket", "cli", "--key", "api/obj", out)
	if b, _ := os.ReadFile(out); string(b) != "alpha\n" {
		t.Fatalf("get-object: %q", b)
	}
	cli("s3", "rm", "--recursive", "s3://cli/")
	cli("s3", "rb", "s3://cli")
	if ls := cli("s3", "ls"); strings.Contains(ls, "cli") {
		t.Fatalf("bucket still listed:\n%s", ls)
	}
}

func TestBoto3(t *testing.T) {
	py := tool(t, "boto3 ok", []string{"-c", "import boto3; print('boto3 ok')"}, "/usr/bin/python3", "python3")
	e := start(t, "fs")
	dir, _ := sampleTree(t)
	script := `
import boto3, sys, urllib.request
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
endpoint, src, dst = sys.argv[1], sys.argv[2], sys.argv[3]
s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="mecha", aws_secret_access_key="mecha-secret", region_name="us-east-1",
                  config=Config(signature_version="s3v4"))  # presigned URLs too: Mecha refuses Signature V2
s3.create_bucket(Bucket="boto")
s3.put_object(Bucket="boto", Key="hello", Body=b"hi boto", Metadata={"m": "1"})
assert s3.get_object(Bucket="boto", Key="hello")["Body"].read() == b"hi boto"
assert s3.head_object(Bucket="boto", Key="hello")["Metadata"] == {"m": "1"}
cfg = TransferConfig(multipart_threshold=5*1024*1024, multipart_chunksize=5*1024*1024)
s3.upload_file(src, "boto", "big", Config=cfg)
s3.download_file("boto", "big", dst, Config=cfg)
for i in range(7):
    s3.put_object(Bucket="boto", Key="p/%d" % i, Body=b"x")
keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket="boto", Prefix="p/", PaginationConfig={"PageSize": 3}) for o in page.get("Contents", [])]
assert keys == ["p/%d" % i for i in range(7)], keys
url = s3.generate_presigned_url("get_object", Params={"Bucket": "boto", "Key": "hello"}, ExpiresIn=60)
assert urllib.request.urlopen(url).read() == b"hi boto"
res = s3.delete_objects(Bucket="boto", Delete={"Objects": [{"Key": "p/%d" % i} for i in range(7)]})
assert len(res["Deleted"]) == 7, res
try:
    s3.get_object(Bucket="boto", Key="p/1")
    raise SystemExit("deleted key still there")
except s3.exceptions.NoSuchKey:
    pass
print("boto3 done")
`
	dst := filepath.Join(t.TempDir(), "big")
	out := run(t, nil, py, "-c", script, e.endpoint, filepath.Join(dir, "big.bin"), dst)
	if !strings.Contains(out, "boto3 done") {
		t.Fatalf("boto3:\n%s", out)
	}
	want, _ := os.ReadFile(filepath.Join(dir, "big.bin"))
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, want) {
		t.Fatalf("boto3 download differs (%d bytes, want %d)", len(got), len(want))
	}
}

func TestRclone(t *testing.T) {
	rclone := tool(t, "rclone", []string{"version"}, "rclone")
	e := start(t, "fs")
	env := []string{"RCLONE_CONFIG=/dev/null", "RCLONE_CONFIG_MECHA_TYPE=s3", "RCLONE_CONFIG_MECHA_PROVIDER=Other",
		"RCLONE_CONFIG_MECHA_ACCESS_KEY_ID=" + accessKey, "RCLONE_CONFIG_MECHA_SECRET_ACCESS_KEY=" + secretKey,
		"RCLONE_CONFIG_MECHA_ENDPOINT=" + e.endpoint, "RCLONE_CONFIG_MECHA_REGION=us-east-1"}
	dir, files := sampleTree(t)
	run(t, env, rclone, "mkdir", "mecha:rclone-bucket")
	run(t, env, rclone, "copy", dir, "mecha:rclone-bucket/copy")
	run(t, env, rclone, "sync", dir, "mecha:rclone-bucket/sync")
	run(t, env, rclone, "check", dir, "mecha:rclone-bucket/sync")
	// Change the tree; sync and check again.
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("changed\n"), 0o644)
	os.Remove(filepath.Join(dir, "sub/b.txt"))
	files["a.txt"] = []byte("changed\n")
	delete(files, "sub/b.txt")
	run(t, env, rclone, "sync", dir, "mecha:rclone-bucket/sync")
	run(t, env, rclone, "check", dir, "mecha:rclone-bucket/sync")
	back := t.TempDir()
	run(t, env, rclone, "copy", "mecha:rclone-bucket/sync", back)
	checkTree(t, back, files)
	if _, err := os.Stat(filepath.Join(back, "sub/b.txt")); err == nil {
		t.Fatal("sync did not delete sub/b.txt")
	}
}

func TestS3cmd(t *testing.T) {
	s3cmd := tool(t, "s3cmd version", []string{"--version"}, "s3cmd")
	e := start(t, "fs")
	cfg := filepath.Join(t.TempDir(), "s3cfg")
	os.WriteFile(cfg, []byte("[default]\naccess_key = "+accessKey+"\nsecret_key = "+secretKey+"\nhost_base = "+e.addr+
		"\nhost_bucket = "+e.addr+"\nuse_https = False\nsignature_v2 = False\nbucket_location = us-east-1\nmultipart_chunk_size_mb = 5\n"), 0o600)
	sc := func(args ...string) string { return run(t, nil, s3cmd, append([]string{"-c", cfg}, args...)...) }
	dir, files := sampleTree(t)
	sc("mb", "s3://s3cmd-bucket")
	sc("put", filepath.Join(dir, "a.txt"), "s3://s3cmd-bucket/a.txt")
	sc("put", filepath.Join(dir, "big.bin"), "s3://s3cmd-bucket/big.bin")
	if ls := sc("ls", "s3://s3cmd-bucket/"); !strings.Contains(ls, "s3://s3cmd-bucket/a.txt") || !strings.Contains(ls, "s3://s3cmd-bucket/big.bin") {
		t.Fatalf("ls:\n%s", ls)
	}
	back := t.TempDir()
	sc("get", "s3://s3cmd-bucket/big.bin", filepath.Join(back, "big.bin"))
	sc("get", "s3://s3cmd-bucket/a.txt", filepath.Join(back, "a.txt"))
	checkTree(t, back, map[string][]byte{"big.bin": files["big.bin"], "a.txt": files["a.txt"]})
	sc("del", "s3://s3cmd-bucket/a.txt", "s3://s3cmd-bucket/big.bin")
	sc("rb", "s3://s3cmd-bucket")
}
