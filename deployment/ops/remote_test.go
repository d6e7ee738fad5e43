package ops

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/emailclient/emailclient-infra/tests/redistest"
	"github.com/emailclient/emailclient-infra/tests/s3test"
)

// remoteFixture starts a seeded redis-server and a weed server with a new bucket, and returns them
// with an empty backup dir.
func remoteFixture(t *testing.T) (*redistest.Server, *s3test.Server, string, string) {
	t.Helper()
	s := startRedis(t)
	seed(t, opsClient(t, s))
	s3 := s3test.Start(t)
	return s, s3, s3.MakeBucket(t), t.TempDir()
}

// remoteVars is the env of a redis-ops run with the remote target: endpoint, bucket, prefix and
// the credentials (access, secret).
func remoteVars(endpoint, bucket, access, secret string) map[string]string {
	return map[string]string{"REDIS_OPS_REMOTE_ENDPOINT": endpoint, "REDIS_OPS_REMOTE_BUCKET": bucket, "REDIS_OPS_REMOTE_PREFIX": "emailclient-test",
		"REDIS_OPS_REMOTE_ACCESS_KEY": access, "REDIS_OPS_REMOTE_SECRET_KEY": secret}
}

// putRemote uploads a backup straight to the remote with the given manifest time: an old backup
// for the retention test.
func putRemote(t *testing.T, s3 *s3test.Server, bucket, name string, created time.Time, withManifest bool) {
	t.Helper()
	c, ctx := s3.Client(s3test.AccessKey, s3test.SecretKey), context.Background()
	rdb := []byte("REDIS0010 not really")
	sum := md5.Sum(rdb)
	if _, err := c.PutObject(ctx, bucket, "emailclient-test/"+name+".rdb", bytes.NewReader(rdb), int64(len(rdb)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if !withManifest {
		return
	}
	b, _ := json.Marshal(manifest{File: name + ".rdb", CreatedAt: created, Size: int64(len(rdb)), MD5: hex.EncodeToString(sum[:])})
	if _, err := c.PutObject(ctx, bucket, "emailclient-test/"+name+".manifest.json", bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestRemoteUploadListVerifyRetention: a backup is uploaded (RDB and manifest, under the prefix),
// listed and verified from the remote, restored files identical; the retention deletes exactly the
// expired remote backups, keeps an RDB without manifest (never listed) until it expires itself,
// and a local backup the remote lacked is uploaded by the next run.
func TestRemoteUploadListVerifyRetention(t *testing.T) {
	s := startRedis(t)
	seed(t, opsClient(t, s))
	s3 := s3test.Start(t)
	bucket := s3.MakeBucket(t)
	vars := remoteVars(s3.Endpoint("127.0.0.1"), bucket, s3test.AccessKey, s3test.SecretKey)
	dir := t.TempDir()

	// A good local backup taken before the remote was configured: the next run uploads it too.
	if r := cli(t, s.Addr(), nil, "backup", "--dir", dir); r.code != ExitOK {
		t.Fatalf("local backup: %v", r)
	}
	earlier := backupFiles(dir)
	now := time.Now()
	putRemote(t, s3, bucket, backupPrefix+"20200101T000000.000Z", now.Add(-31*24*time.Hour), true)
	putRemote(t, s3, bucket, backupPrefix+"recent", now.Add(-29*24*time.Hour), true)
	putRemote(t, s3, bucket, backupPrefix+"cut-upload", time.Time{}, false)

	r := cli(t, s.Addr(), vars, "backup", "--dir", dir, "--retention", "720h")
	if r.code != ExitOK {
		t.Fatalf("backup with remote: %v", r)
	}
	local := backupFiles(dir)
	if len(local) != 2 || len(earlier) != 1 {
		t.Fatalf("local backups %v (before %v)", local, earlier)
	}
	for _, f := range local {
		if !strings.Contains(r.stdout, "remote: uploaded "+filepath.Base(f)) {
			t.Errorf("%s not uploaded: %v", filepath.Base(f), r)
		}
	}
	if !strings.Contains(r.stdout, "remote retention: deleted "+backupPrefix+"20200101T000000.000Z.rdb") || strings.Count(r.stdout, "remote retention: deleted") != 1 {
		t.Errorf("remote retention must delete exactly the expired backup: %v", r)
	}
	objects := strings.Join(s3.Objects(t, bucket, ""), " ")
	for _, f := range local {
		for _, n := range []string{filepath.Base(f), filepath.Base(manifestPath(f))} {
			if !strings.Contains(objects, "emailclient-test/"+n) {
				t.Errorf("object %s missing: %s", n, objects)
			}
		}
	}
	if strings.Contains(objects, "20200101T") || !strings.Contains(objects, "cut-upload.rdb") {
		t.Errorf("after retention: %s", objects)
	}

	r = cli(t, "", vars, "list", "--remote")
	if r.code != ExitOK {
		t.Errorf("list --remote: %v", r)
	}
	for _, f := range local {
		if !strings.Contains(r.stdout, filepath.Base(f)) {
			t.Errorf("list --remote misses %s: %v", filepath.Base(f), r)
		}
	}
	if strings.Contains(r.stdout, "cut-upload") {
		t.Errorf("an RDB without manifest is listed as a backup: %v", r)
	}
	if n := strings.Count(r.stdout, "remote-ok"); n != 3 {
		t.Errorf("want 3 remote-ok (two uploaded, one put by the test), got %d: %v", n, r)
	}
	for _, name := range []string{filepath.Base(local[1]), "latest"} {
		r = cli(t, "", vars, "verify", "--remote", name)
		if r.code != ExitOK || !strings.Contains(r.stdout, "OK ") || !strings.Contains(r.stdout, filepath.Base(local[1])) {
			t.Errorf("verify --remote %s: %v", name, r)
		}
	}
	// The hand-made backup is no RDB: verify downloads it and refuses it.
	if r = cli(t, "", vars, "verify", "--remote", backupPrefix+"recent.rdb"); r.code != ExitVerify {
		t.Errorf("verify --remote of a non-RDB: want exit 9: %v", r)
	}
	if r = cli(t, "", vars, "verify", "--remote", backupPrefix+"absent.rdb"); r.code != ExitRemote {
		t.Errorf("verify --remote of a missing backup: want exit 14: %v", r)
	}
}

// TestRemoteFailuresKeepTheLocalBackup: wrong credentials, a missing bucket and a stopped server
// each fail the upload step with exit 14 naming the cause, and keep a verified local backup; once
// the remote works again, the next run uploads every backup it missed.
func TestRemoteFailuresKeepTheLocalBackup(t *testing.T) {
	s, s3, bucket, dir := remoteFixture(t)
	cases := []struct {
		name string
		vars map[string]string
		want string
	}{
		{"wrong secret key", remoteVars(s3.Endpoint("127.0.0.1"), bucket, s3test.AccessKey, "not-the-secret-key"), "signature"},
		{"unknown access key", remoteVars(s3.Endpoint("127.0.0.1"), bucket, "nobody", s3test.SecretKey), "Access Key"},
		{"missing bucket", remoteVars(s3.Endpoint("127.0.0.1"), "no-such-bucket", s3test.AccessKey, s3test.SecretKey), "bucket does not exist"},
	}
	for _, c := range cases {
		before := len(backupFiles(dir))
		r := cli(t, s.Addr(), c.vars, "backup", "--dir", dir)
		if r.code != ExitRemote || !strings.Contains(r.stderr, "kept locally") || !strings.Contains(strings.ToLower(r.stderr), strings.ToLower(c.want)) {
			t.Errorf("%s: want exit 14, the local copy kept and %q: %v", c.name, c.want, r)
		}
		t.Logf("FIGURE remote failure, %s: exit %d: %s", c.name, r.code, strings.TrimSpace(r.stderr))
		if strings.Contains(r.stdout+r.stderr, s3test.SecretKey) {
			t.Errorf("%s: the secret key was printed", c.name)
		}
		if got := backupFiles(dir); len(got) != before+1 {
			t.Errorf("%s: local backups %v, want one more", c.name, got)
		} else if _, err := verifyBackup(context.Background(), got[len(got)-1]); err != nil {
			t.Errorf("%s: the kept local backup: %v", c.name, err)
		}
	}
	good := remoteVars(s3.Endpoint("127.0.0.1"), bucket, s3test.AccessKey, s3test.SecretKey)
	s3.Kill()
	if r := cli(t, s.Addr(), good, "backup", "--dir", dir); r.code != ExitRemote || !strings.Contains(r.stderr, "connection refused") {
		t.Errorf("server down: want exit 14 and connection refused: %v", r)
	}
	s3.Restart(t)
	r := cli(t, s.Addr(), good, "backup", "--dir", dir)
	if r.code != ExitOK || strings.Count(r.stdout, "remote: uploaded") != 5 {
		t.Fatalf("after the failures, every local backup is uploaded (5): %v", r)
	}
	if r := cli(t, "", good, "list", "--remote"); r.code != ExitOK || strings.Count(r.stdout, "remote-ok") != 5 {
		t.Errorf("list --remote: %v", r)
	}
	// Usage errors come before any backup: a bad endpoint, no credentials.
	bad := remoteVars("s3.example.com", bucket, "a", "b")
	if r := cli(t, s.Addr(), bad, "backup", "--dir", t.TempDir()); r.code != ExitUsage || !strings.Contains(r.stderr, "http:// or https://") {
		t.Errorf("endpoint without scheme: %v", r)
	}
	nocreds := remoteVars(s3.Endpoint("127.0.0.1"), bucket, "", "")
	if r := cli(t, s.Addr(), nocreds, "backup", "--dir", t.TempDir()); r.code != ExitUsage || !strings.Contains(r.stderr, "credentials missing") {
		t.Errorf("no credentials: %v", r)
	}
}

// cutProxy forwards TCP to target and kills the server (kill) once more than after bytes went
// towards it: the server dies in the middle of an upload, whatever the speed.
func cutProxy(t *testing.T, target string, after int64, kill func()) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var sent atomic.Int64
	var killed atomic.Bool
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			go func() { _, _ = io.Copy(in, out); in.Close() }()
			go func() {
				buf := make([]byte, 32<<10)
				for {
					n, err := in.Read(buf)
					if n > 0 {
						if sent.Add(int64(n)) > after && killed.CompareAndSwap(false, true) {
							kill()
						}
						if _, werr := out.Write(buf[:n]); werr != nil {
							break
						}
					}
					if err != nil {
						break
					}
				}
				out.Close()
			}()
		}
	}()
	return "http://" + l.Addr().String()
}

// TestRemoteServerKilledMidUpload: the server is killed (SIGKILL) with half the RDB sent. The run
// fails with exit 14 and keeps the local backup; nothing is listed on the remote (no manifest was
// uploaded); after a restart the next run uploads both backups and they verify.
func TestRemoteServerKilledMidUpload(t *testing.T) {
	s := startRedis(t)
	c := opsClient(t, s)
	seed(t, c)
	// 24 MB of incompressible values, so that the RDB is large and "half" is well inside the PUT.
	for i := 0; i < 24; i++ {
		v := make([]byte, 1<<20)
		_, _ = rand.Read(v)
		c.Set(context.Background(), fmt.Sprintf("blob:%d", i), v, 0)
	}
	s3 := s3test.Start(t)
	bucket := s3.MakeBucket(t)
	dir := t.TempDir()
	proxy := cutProxy(t, fmt.Sprintf("127.0.0.1:%d", s3.Port), 12<<20, s3.Kill)
	r := cli(t, s.Addr(), remoteVars(proxy, bucket, s3test.AccessKey, s3test.SecretKey), "backup", "--dir", dir)
	if r.code != ExitRemote || !strings.Contains(r.stderr, "kept locally") {
		t.Fatalf("killed mid-upload: want exit 14 with the local copy kept: %v", r)
	}
	if s3.Running() {
		t.Fatal("the proxy did not kill the server: the RDB was smaller than 12 MiB?")
	}
	local := backupFiles(dir)
	if len(local) != 1 {
		t.Fatalf("local backups: %v", local)
	}
	if _, err := verifyBackup(context.Background(), local[0]); err != nil {
		t.Fatalf("the kept local backup: %v", err)
	}
	s3.Restart(t)
	good := remoteVars(s3.Endpoint("127.0.0.1"), bucket, s3test.AccessKey, s3test.SecretKey)
	if r := cli(t, "", good, "list", "--remote"); r.code != ExitOK || !strings.Contains(r.stdout, "(no backups") {
		t.Fatalf("a cut upload must not be listed: %v", r)
	}
	r = cli(t, s.Addr(), good, "backup", "--dir", dir)
	if r.code != ExitOK || strings.Count(r.stdout, "remote: uploaded") != 2 || !strings.Contains(r.stdout, "remote: uploaded "+filepath.Base(local[0])) {
		t.Fatalf("the next run uploads the missed backup too: %v", r)
	}
	if r := cli(t, "", good, "verify", "--remote", filepath.Base(local[0])); r.code != ExitOK {
		t.Errorf("verify --remote of the backup whose first upload was cut: %v", r)
	}
}

// TestScheduleRecordsRemoteFailures: the scheduler's run whose upload fails logs one
// "backup FAILED: remote:" line, keeps its backup and writes remote-upload-failing (served as
// redis_backup_remote_upload_failing 1); the next run after the server is back uploads both,
// removes the file and writes last-remote-success.
func TestScheduleRecordsRemoteFailures(t *testing.T) {
	s, s3, bucket, dir := remoteFixture(t)
	s3.Kill()
	bg := startSchedule(t, s.Addr(), remoteVars(s3.Endpoint("127.0.0.1"), bucket, s3test.AccessKey, s3test.SecretKey),
		"--every", "3s", "--dir", dir, "--data-dir", s.Dir())
	waitFor(t, 20*time.Second, "the first run's line", func() bool { return len(bg.stdout.lines()) == 1 })
	first := bg.stdout.lines()[0]
	if !strings.HasPrefix(first, "backup FAILED: remote: backup "+backupPrefix) || !strings.Contains(first, "kept locally") {
		t.Errorf("first run: %q", first)
	}
	if b, err := os.ReadFile(filepath.Join(dir, remoteFailingFile)); err != nil || !strings.Contains(string(b), "connection refused") {
		t.Errorf("%s: %q %v", remoteFailingFile, b, err)
	}
	metrics := metricsServer(t, s.Addr(), dir, time.Minute) + "/metrics"
	if got := need(t, scrape(t, metrics), "redis_backup_remote_upload_failing"); got != 1 {
		t.Errorf("redis_backup_remote_upload_failing %v, want 1", got)
	}
	s3.Restart(t)
	waitFor(t, 20*time.Second, "a good run", func() bool {
		l := bg.stdout.lines()
		return strings.HasPrefix(l[len(l)-1], "backup ok")
	})
	bg.stop()
	if _, err := os.Stat(filepath.Join(dir, remoteFailingFile)); !os.IsNotExist(err) {
		t.Errorf("%s still there after a good upload: %v", remoteFailingFile, err)
	}
	if _, err := readStamp(dir, lastRemoteSuccessFile); err != nil {
		t.Errorf("%s: %v", lastRemoteSuccessFile, err)
	}
	after := scrape(t, metrics)
	if got := need(t, after, "redis_backup_remote_upload_failing"); got != 0 {
		t.Errorf("redis_backup_remote_upload_failing %v, want 0", got)
	}
	if age := need(t, after, "redis_backup_remote_last_success_age_seconds"); age < 0 || age > 30 {
		t.Errorf("redis_backup_remote_last_success_age_seconds %v", age)
	}
	names := strings.Join(s3.Objects(t, bucket, ""), " ")
	for _, f := range backupFiles(dir) {
		if !strings.Contains(names, filepath.Base(manifestPath(f))) {
			t.Errorf("%s not on the remote after the good run: %s", filepath.Base(f), names)
		}
	}
}

// TestRestoreFromRemote: restore --remote latest (a fake engine, real Redis and a real S3 server)
// downloads the backup, verifies it and restores every key; after bit rot on the server, list
// --remote flags the object and restore --remote refuses it (exit 9) before stopping anything.
func TestRestoreFromRemote(t *testing.T) {
	rdb, want := takeBackup(t)
	f := newFake(t)
	s3 := s3test.Start(t)
	bucket := s3.MakeBucket(t)
	creds := filepath.Join(t.TempDir(), "credentials")
	if err := os.WriteFile(creds, []byte(s3test.AccessKey+"\n"+s3test.SecretKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	remote := []string{"--remote", "--remote-endpoint", s3.Endpoint("127.0.0.1"), "--remote-bucket", bucket, "--remote-prefix", "emailclient-test", "--remote-credentials-file", creds}
	store, err := (&remoteFlags{endpoint: s3.Endpoint("127.0.0.1"), bucket: bucket, prefix: "emailclient-test", credentialsFile: creds}).open(&env{getenv: func(string) string { return "" }}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := readManifest(rdb)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.upload(context.Background(), rdb, m); err != nil {
		t.Fatal(err)
	}
	r := f.restore(t, append(append(append([]string{}, containers...), remote...), "latest")...)
	if r.code != ExitOK || !strings.Contains(r.stdout, "downloaded "+filepath.Base(rdb)) {
		t.Fatalf("restore --remote latest: %v", r)
	}
	f.checkRestored(t, want)

	// Bit rot on the server: the object no longer matches its manifest.
	b, _ := os.ReadFile(rdb)
	b[len(b)/2] ^= 1
	if _, err := s3.Client(s3test.AccessKey, s3test.SecretKey).PutObject(context.Background(), bucket, "emailclient-test/"+filepath.Base(rdb),
		bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if r := cli(t, "", nil, append([]string{"list"}, remote...)...); r.code != ExitVerify || !strings.Contains(r.stdout, "FAILED: server MD5") {
		t.Errorf("list --remote after bit rot: %v", r)
	}
	f.calls = nil
	r = f.restore(t, append(append(append([]string{}, containers...), remote...), filepath.Base(rdb))...)
	if r.code != ExitVerify || !strings.Contains(r.stderr, "refusing to restore from") {
		t.Errorf("restore --remote of a rotten object: want exit 9: %v", r)
	}
	for _, c := range f.calls {
		if strings.HasPrefix(c, "stop") {
			t.Errorf("%s was called before the download was verified", c)
		}
	}
}
