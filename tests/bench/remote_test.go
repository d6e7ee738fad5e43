package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/emailclient/emailclient-infra/components/redisconf"
	"github.com/emailclient/emailclient-infra/tests/realredis"
	"github.com/emailclient/emailclient-infra/tests/s3test"
)

const sectionRemote = "3c. remote backups: upload and download vs redis-cli --rdb and a plain minio-go PUT/GET"

// BenchmarkOpsRemote fills a redis-server running the declared dev config with BENCH_BACKUP_MB
// (default 1024) MiB and measures, against a real S3-compatible server on this host (SeaweedFS's
// weed, tests/s3test), BENCH_REPS (default 3) repetitions in rotating order:
//   - `redis-ops backup --source network` with the remote (take, check, manifest, upload, compare the
//     server's MD5), against `redis-cli --rdb FILE` (take only) and against a plain minio-go single
//     PUT of the same file (upload only, the same library and call);
//   - `redis-ops verify --remote NAME` (download RDB and manifest, checksums, RDB check: the part
//     restore --remote adds before the restore itself), against a plain minio-go FGetObject of the RDB.
//
// repl-diskless-sync-delay is 0 during the runs, so that the transfer is measured, not the wait.
func BenchmarkOpsRemote(b *testing.B) {
	requireTime(b)
	reps := Reps(b, 3)
	mb := EnvInt(b, "BENCH_BACKUP_MB", 1024)
	opsBin := buildOps(b)
	s3 := s3test.Start(b)
	bucket := s3.MakeBucket(b)
	br := realredis.Start(b, "dev", realredis.Options{Args: []string{"--maxmemory", strconv.Itoa(2*mb+256) + "mb", "--repl-diskless-sync-delay", "0"}})
	ops := br.Client(b, redisconf.OpsUser)
	start := time.Now()
	keys := fillBytes(b, ops, mb)
	waitPersistenceIdle(b, ops)
	Annotate(b, sectionRemote, "%d MiB in %d incompressible 64 KiB strings, loaded in %s; server: the declared dev redis.conf with --maxmemory %dmb and "+
		"--repl-diskless-sync-delay 0 appended; remote: weed server -s3 (SeaweedFS) on this host, its data on the same disk.",
		mb, keys, time.Since(start).Round(time.Second), 2*mb+256)

	outDir := b.TempDir()
	env := []string{"REDIS_ADDR=" + br.Addr(), "REDIS_USERNAME=" + redisconf.OpsUser, "REDIS_PASSWORD=" + br.Ops,
		"REDIS_OPS_REMOTE_ENDPOINT=" + s3.Endpoint("127.0.0.1"), "REDIS_OPS_REMOTE_BUCKET=" + bucket, "REDIS_OPS_REMOTE_PREFIX=bench",
		"REDIS_OPS_REMOTE_ACCESS_KEY=" + s3test.AccessKey, "REDIS_OPS_REMOTE_SECRET_KEY=" + s3test.SecretKey}
	client := s3.Client(s3test.AccessKey, s3test.SecretKey)
	ctx := context.Background()
	clean := func() {
		entries, _ := os.ReadDir(outDir)
		for _, e := range entries {
			os.RemoveAll(filepath.Join(outDir, e.Name()))
		}
		for _, k := range s3.Objects(b, bucket, "") {
			_ = client.RemoveObject(ctx, bucket, k, minio.RemoveObjectOptions{})
		}
	}
	// A reference RDB for the plain PUT/GET baselines.
	ref := filepath.Join(b.TempDir(), "ref.rdb")
	run(b, []string{"REDISCLI_AUTH=" + br.Ops}, "redis-cli", "-h", "127.0.0.1", "-p", strconv.Itoa(br.Port()), "--user", redisconf.OpsUser, "--no-auth-warning", "--rdb", ref)
	refSize := fileSize(b, ref)
	timed := func(f func() error) measured {
		t0 := time.Now()
		if err := f(); err != nil {
			b.Fatal(err)
		}
		return measured{wall: time.Since(t0)}
	}
	var lastName string
	type variant struct {
		name, metric string
		baseline     bool
		run          func() measured
		wall         []float64
	}
	upload, download := fmt.Sprintf("upload, %d MiB dataset", mb), fmt.Sprintf("download, %d MiB dataset", mb)
	vs := []*variant{
		{name: "redis-ops backup --source network + upload (remote)", metric: upload, run: func() measured {
			clean()
			m := run(b, env, opsBin, "backup", "--dir", outDir, "--retention", "0", "--source", "network")
			if !strings.Contains(m.stdout, "remote: uploaded ") {
				b.Fatalf("redis-ops backup with remote: %s", m.stdout)
			}
			names, _ := filepath.Glob(filepath.Join(outDir, "redis-backup-*.rdb"))
			lastName = filepath.Base(names[0])
			return m
		}},
		{name: "redis-cli --rdb (take only, no upload)", metric: upload, baseline: true, run: func() measured {
			return run(b, []string{"REDISCLI_AUTH=" + br.Ops}, "redis-cli", "-h", "127.0.0.1", "-p", strconv.Itoa(br.Port()),
				"--user", redisconf.OpsUser, "--no-auth-warning", "--rdb", filepath.Join(outDir, "dump.rdb"))
		}},
		{name: "minio-go PutObject of the RDB (upload only)", metric: upload, run: func() measured {
			return timed(func() error {
				f, err := os.Open(ref)
				if err != nil {
					return err
				}
				defer f.Close()
				_, err = client.PutObject(ctx, bucket, "plain/ref.rdb", f, refSize, minio.PutObjectOptions{DisableMultipart: true})
				return err
			})
		}},
	}
	dl := []*variant{
		{name: "redis-ops verify --remote (download RDB + manifest, verify)", metric: download, run: func() measured {
			return run(b, env, opsBin, "verify", "--remote", lastName)
		}},
		{name: "minio-go FGetObject of the RDB (download only)", metric: download, baseline: true, run: func() measured {
			return timed(func() error {
				return client.FGetObject(ctx, bucket, "bench/"+lastName, filepath.Join(b.TempDir(), "get.rdb"), minio.GetObjectOptions{})
			})
		}},
	}
	for i := 0; i < b.N; i++ {
		for rep := 0; rep < reps; rep++ {
			for k := range vs {
				v := vs[(k+rep)%len(vs)]
				waitPersistenceIdle(b, ops)
				m := v.run()
				v.wall = append(v.wall, m.wall.Seconds())
			}
			if lastName == "" {
				vs[0].run() // the download needs an uploaded backup
			}
			for k := range dl {
				v := dl[(k+rep)%len(dl)]
				m := v.run()
				v.wall = append(v.wall, m.wall.Seconds())
			}
		}
	}
	b.ReportMetric(0, "ns/op")
	for _, v := range append(vs, dl...) {
		Record(b, Series{Section: sectionRemote, Metric: v.metric, Variant: v.name, Unit: "s", Better: "lower", Baseline: v.baseline, Values: v.wall})
	}
	Annotate(b, sectionRemote, "%d repetitions, rotating order. RDB %.1f MiB. The upload ratio of redis-ops (take + check + hash + upload) to redis-cli --rdb "+
		"(take only) is the whole cost of a backup that leaves the host; the plain PUT is what the upload alone costs with the same library "+
		"(one PUT, DisableMultipart, as redis-ops does). verify --remote is what restore --remote does before it stops anything.",
		reps, float64(refSize)/(1<<20))
}

func fileSize(b testing.TB, path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return st.Size()
}
