package ops

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Files the scheduler keeps in the backup dir for the remote copy; metrics reads both.
const (
	// lastRemoteSuccessFile is written after every good upload: "<RFC 3339 UTC time> <file name>".
	lastRemoteSuccessFile = "last-remote-success"
	// remoteFailingFile exists while the newest upload attempt failed: "<RFC 3339 UTC time> <error>".
	remoteFailingFile = "remote-upload-failing"
)

// remoteFlags are the S3-compatible object storage target of backup, schedule, list, verify and
// restore. Endpoint, bucket, prefix and region are flags with env fallbacks; the credentials are
// never flags (they would show in ps): REDIS_OPS_REMOTE_ACCESS_KEY and REDIS_OPS_REMOTE_SECRET_KEY,
// or --remote-credentials-file, or the stack's outputs.
type remoteFlags struct {
	endpoint, bucket, prefix, region string
	credentialsFile                  string
	// use is --remote (list, verify, restore): act on the remote copy instead of local files.
	use bool
}

// addRemoteFlags declares the remote target's flags; withUse adds --remote.
func (e *env) addRemoteFlags(fs *flag.FlagSet, withUse bool) *remoteFlags {
	r := &remoteFlags{}
	fs.StringVar(&r.endpoint, "remote-endpoint", e.getenv("REDIS_OPS_REMOTE_ENDPOINT"), "S3-compatible object storage, http(s)://host[:port] (env REDIS_OPS_REMOTE_ENDPOINT); backups are uploaded there when set")
	fs.StringVar(&r.bucket, "remote-bucket", e.getenv("REDIS_OPS_REMOTE_BUCKET"), "bucket of the remote copy (env REDIS_OPS_REMOTE_BUCKET)")
	fs.StringVar(&r.prefix, "remote-prefix", e.getenv("REDIS_OPS_REMOTE_PREFIX"), "object name prefix, e.g. prod/redis (env REDIS_OPS_REMOTE_PREFIX)")
	fs.StringVar(&r.region, "remote-region", e.getenv("REDIS_OPS_REMOTE_REGION"), "region of the bucket, when the server wants one (env REDIS_OPS_REMOTE_REGION)")
	fs.StringVar(&r.credentialsFile, "remote-credentials-file", e.getenv("REDIS_OPS_REMOTE_CREDENTIALS_FILE"), "file with the access key on its first line and the secret key on its second (env REDIS_OPS_REMOTE_CREDENTIALS_FILE; default: env REDIS_OPS_REMOTE_ACCESS_KEY and REDIS_OPS_REMOTE_SECRET_KEY)")
	if withUse {
		fs.BoolVar(&r.use, "remote", false, "act on the remote copy (the --remote-* flags, or with --stack the stack's backupRemote outputs)")
	}
	return r
}

// configured reports whether a remote target is named.
func (r *remoteFlags) configured() bool { return r.endpoint != "" }

// fromStack fills what the flags left empty from the stack's outputs (restore --stack --remote).
func (r *remoteFlags) fromStack(so stackOutputs) {
	if r.endpoint == "" {
		r.endpoint, r.bucket, r.prefix, r.region = so.BackupRemote.Endpoint, so.BackupRemote.Bucket, so.BackupRemote.Prefix, so.BackupRemote.Region
	}
}

// remoteStore is an open remote target.
type remoteStore struct {
	c              *minio.Client
	bucket, prefix string
	where          string // s3-like name for messages: endpoint/bucket/prefix
}

// open checks the settings (usage errors) and returns a client; it contacts nothing yet.
func (r *remoteFlags) open(e *env, creds *stackCredentials) (*remoteStore, error) {
	u, err := url.Parse(r.endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.User != nil || u.RawQuery != "" {
		return nil, withCode(ExitUsage, fmt.Errorf("--remote-endpoint %q: accepted: http:// or https:// followed by host[:port], nothing else", r.endpoint))
	}
	if r.bucket == "" {
		return nil, withCode(ExitUsage, errors.New("--remote-bucket is required with a remote endpoint"))
	}
	if strings.HasPrefix(r.prefix, "/") || strings.Contains(r.prefix, "..") || strings.Contains(r.prefix, "//") {
		return nil, withCode(ExitUsage, fmt.Errorf("--remote-prefix %q: accepted: names separated by single /, no leading / and no ..", r.prefix))
	}
	ak, sk, err := r.credentials(e, creds)
	if err != nil {
		return nil, err
	}
	c, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(ak, sk, ""), Secure: u.Scheme == "https", Region: r.region})
	if err != nil {
		return nil, withCode(ExitUsage, fmt.Errorf("remote %s: %w", r.endpoint, err))
	}
	prefix := strings.TrimSuffix(r.prefix, "/")
	return &remoteStore{c: c, bucket: r.bucket, prefix: prefix, where: strings.TrimSuffix(r.endpoint, "/") + "/" + path.Join(r.bucket, prefix)}, nil
}

// openIfConfigured opens the target of backup and schedule: nil when no endpoint is set.
func (r *remoteFlags) openIfConfigured(e *env) (*remoteStore, error) {
	if !r.configured() {
		return nil, nil
	}
	return r.open(e, nil)
}

// stackCredentials are the remote credentials from a stack's secret outputs.
type stackCredentials struct {
	AccessKey string `json:"accessKey"`
	SecretKey string `json:"secretKey"`
}

// credentials reads the keys: the file, else the env, else the stack's outputs.
func (r *remoteFlags) credentials(e *env, creds *stackCredentials) (string, string, error) {
	if r.credentialsFile != "" {
		b, err := os.ReadFile(r.credentialsFile)
		if err != nil {
			return "", "", withCode(ExitUsage, fmt.Errorf("--remote-credentials-file: %w", err))
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) != 2 || strings.TrimSpace(lines[0]) == "" || strings.TrimSpace(lines[1]) == "" {
			return "", "", withCode(ExitUsage, fmt.Errorf("--remote-credentials-file %s: accepted: the access key on line 1, the secret key on line 2", r.credentialsFile))
		}
		return strings.TrimSpace(lines[0]), strings.TrimSpace(lines[1]), nil
	}
	if ak, sk := e.getenv("REDIS_OPS_REMOTE_ACCESS_KEY"), e.getenv("REDIS_OPS_REMOTE_SECRET_KEY"); ak != "" && sk != "" {
		return ak, sk, nil
	}
	if creds != nil && creds.AccessKey != "" && creds.SecretKey != "" {
		return creds.AccessKey, creds.SecretKey, nil
	}
	return "", "", withCode(ExitUsage, errors.New("remote credentials missing: set REDIS_OPS_REMOTE_ACCESS_KEY and REDIS_OPS_REMOTE_SECRET_KEY, or --remote-credentials-file (never a flag value)"))
}

// key is the object name of a file of the backup dir.
func (s *remoteStore) key(name string) string {
	if s.prefix == "" {
		return name
	}
	return s.prefix + "/" + name
}

// remoteErr wraps a remote failure with ExitRemote and the target's name.
func (s *remoteStore) remoteErr(what string, err error) error {
	return withCode(ExitRemote, fmt.Errorf("remote %s: %s: %w", s.where, what, err))
}

// put uploads one object in a single PUT and compares the ETag the server computed (the MD5 of
// what it stored) with md5hex; on a mismatch the object is removed.
func (s *remoteStore) put(ctx context.Context, name string, r io.Reader, size int64, md5hex, sha256hex string) error {
	info, err := s.c.PutObject(ctx, s.bucket, s.key(name), r, size, minio.PutObjectOptions{
		ContentType: "application/octet-stream", DisableMultipart: true, UserMetadata: map[string]string{"sha256": sha256hex},
	})
	if err != nil {
		return s.remoteErr("upload "+name, err)
	}
	if got := strings.Trim(info.ETag, `"`); got != md5hex || info.Size != size {
		_ = s.c.RemoveObject(ctx, s.bucket, s.key(name), minio.RemoveObjectOptions{})
		return s.remoteErr("upload "+name, fmt.Errorf("the server stored %d bytes with MD5 %s, the manifest says %d bytes, %s (object removed)", info.Size, got, size, md5hex))
	}
	return nil
}

// upload puts a verified local backup on the remote: the RDB first, its manifest last, so that a
// backup whose upload was cut is never listed (list goes by manifest).
func (s *remoteStore) upload(ctx context.Context, rdb string, m manifest) error {
	f, err := os.Open(rdb)
	if err != nil {
		return s.remoteErr("upload", err)
	}
	defer f.Close()
	if err := s.put(ctx, m.File, f, m.Size, m.MD5, m.SHA256); err != nil {
		return err
	}
	b, err := os.ReadFile(manifestPath(rdb))
	if err != nil {
		return s.remoteErr("upload", err)
	}
	sum := md5.Sum(b)
	return s.put(ctx, filepath.Base(manifestPath(rdb)), bytes.NewReader(b), int64(len(b)), hex.EncodeToString(sum[:]), "")
}

// remoteEntry is one backup on the remote: a manifest whose RDB object is there.
type remoteEntry struct {
	name    string // the RDB file name
	m       manifest
	size    int64  // of the RDB object
	etag    string // of the RDB object
	created time.Time
}

// remoteListing is what list finds: the backups, and orphans with their time: RDB objects without a
// manifest (an upload that was cut: never listed as a backup) and manifests without their RDB (a
// backup whose RDB object is gone).
type remoteListing struct {
	backups []remoteEntry
	orphans map[string]time.Time
}

// list reads the remote's backups, oldest first.
func (s *remoteStore) list(ctx context.Context) (remoteListing, error) {
	prefix := ""
	if s.prefix != "" {
		prefix = s.prefix + "/"
	}
	rdbs, manifests := map[string]minio.ObjectInfo{}, map[string]minio.ObjectInfo{}
	for obj := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix}) {
		if obj.Err != nil {
			return remoteListing{}, s.remoteErr("list", obj.Err)
		}
		n := strings.TrimPrefix(obj.Key, prefix)
		switch {
		case !strings.HasPrefix(n, backupPrefix) || strings.Contains(n, "/"):
		case strings.HasSuffix(n, ".rdb"):
			rdbs[n] = obj
		case strings.HasSuffix(n, ".manifest.json"):
			manifests[n] = obj
		}
	}
	out := remoteListing{orphans: map[string]time.Time{}}
	for mn, mobj := range manifests {
		rdb := rdbPathOf(mn)
		obj, ok := rdbs[rdb]
		if !ok {
			out.orphans[mn] = mobj.LastModified
			continue
		}
		m, err := s.readManifest(ctx, mn)
		if err != nil {
			return out, err
		}
		out.backups = append(out.backups, remoteEntry{name: rdb, m: m, size: obj.Size, etag: strings.Trim(obj.ETag, `"`), created: m.CreatedAt})
		delete(rdbs, rdb)
	}
	for n, obj := range rdbs {
		out.orphans[n] = obj.LastModified
	}
	sort.Slice(out.backups, func(i, j int) bool { return out.backups[i].created.Before(out.backups[j].created) })
	return out, nil
}

// readManifest downloads and decodes one manifest object.
func (s *remoteStore) readManifest(ctx context.Context, name string) (manifest, error) {
	var m manifest
	obj, err := s.c.GetObject(ctx, s.bucket, s.key(name), minio.GetObjectOptions{})
	if err != nil {
		return m, s.remoteErr("read "+name, err)
	}
	defer obj.Close()
	b, err := io.ReadAll(io.LimitReader(obj, 1<<20))
	if err != nil {
		return m, s.remoteErr("read "+name, err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, withCode(ExitVerify, fmt.Errorf("remote %s: manifest %s: %w", s.where, name, err))
	}
	return m, nil
}

// intact reports whether the RDB object's size and ETag (the server's MD5) match its manifest.
func (be remoteEntry) intact() bool { return be.size == be.m.Size && be.etag == be.m.MD5 }

// status is list's STATUS of a remote backup without downloading it (see intact).
func (be remoteEntry) status() string {
	switch {
	case be.size != be.m.Size:
		return fmt.Sprintf("FAILED: size %d, manifest %d", be.size, be.m.Size)
	case be.etag != be.m.MD5:
		return fmt.Sprintf("FAILED: server MD5 %s, manifest %s", be.etag, be.m.MD5)
	}
	return "remote-ok"
}

// download copies a backup (its RDB name or "latest") and its manifest into dir and verifies the
// copy as verify does; it returns the local RDB path. Failures carry ExitVerify or ExitRemote.
func (s *remoteStore) download(ctx context.Context, name, dir string) (restoreBackup, error) {
	name = path.Base(rdbPathOf(name))
	if name == "latest" {
		l, err := s.list(ctx)
		if err != nil {
			return restoreBackup{}, err
		}
		if len(l.backups) == 0 {
			return restoreBackup{}, withCode(ExitVerify, fmt.Errorf("remote %s holds no backup", s.where))
		}
		name = l.backups[len(l.backups)-1].name
	}
	local := filepath.Join(dir, name)
	for _, n := range []string{name, filepath.Base(manifestPath(name))} {
		if err := s.c.FGetObject(ctx, s.bucket, s.key(n), filepath.Join(dir, n), minio.GetObjectOptions{}); err != nil {
			return restoreBackup{}, s.remoteErr("download "+n, err)
		}
	}
	return verifiedBackup(ctx, local)
}

// prune deletes the remote backups created more than maxAge before now (never keep), the manifest
// first so that a cut deletion leaves an RDB without manifest, which is never listed; RDB objects
// without a manifest go once they are older than maxAge. It returns the deleted RDB names.
func (s *remoteStore) prune(ctx context.Context, maxAge time.Duration, now time.Time, keep string) ([]string, error) {
	if maxAge <= 0 {
		return nil, nil
	}
	l, err := s.list(ctx)
	if err != nil {
		return nil, err
	}
	var deleted []string
	var errs []error
	remove := func(names ...string) {
		for _, n := range names {
			if err := s.c.RemoveObject(ctx, s.bucket, s.key(n), minio.RemoveObjectOptions{}); err != nil {
				errs = append(errs, s.remoteErr("retention: delete "+n, err))
			}
		}
	}
	for _, be := range l.backups {
		if be.name != keep && now.Sub(be.created) > maxAge {
			remove(filepath.Base(manifestPath(be.name)), be.name)
			deleted = append(deleted, be.name)
		}
	}
	for n, t := range l.orphans {
		if n != keep && now.Sub(t) > maxAge {
			remove(n)
			deleted = append(deleted, n)
		}
	}
	return deleted, errors.Join(errs...)
}

// syncResult is what one remote step did.
type syncResult struct {
	uploaded, deleted []string
}

// syncRemote uploads every good local backup of dir within the retention that the remote lacks,
// newest first (the one just taken, then any an earlier failed upload left behind), then applies the
// retention on the remote. fresh is the backup this run took and checked (its RDB name and
// manifest): it is uploaded as it is; any other is verified first, and one that fails is not
// uploaded (an error). Every failure carries ExitRemote or ExitVerify; the local files are never
// touched.
func syncRemote(ctx context.Context, s *remoteStore, dir string, retention time.Duration, now time.Time, fresh manifest) (syncResult, error) {
	var res syncResult
	remote, err := s.list(ctx)
	if err != nil {
		return res, err
	}
	have := map[string]bool{}
	for _, be := range remote.backups {
		have[be.name] = be.intact()
	}
	local, err := findBackups(dir)
	if err != nil {
		return res, err
	}
	var errs []error
	for i := len(local) - 1; i >= 0; i-- {
		be := local[i]
		name := filepath.Base(be.rdb)
		if have[name] || be.manifest == nil || (retention > 0 && now.Sub(be.created) > retention) {
			continue
		}
		m := fresh
		if name != fresh.File {
			if m, err = verifyBackup(ctx, be.rdb); err != nil {
				errs = append(errs, fmt.Errorf("not uploaded: %w", err))
				continue
			}
		}
		if err := s.upload(ctx, be.rdb, m); err != nil {
			return res, errors.Join(append(errs, err)...)
		}
		res.uploaded = append(res.uploaded, name)
	}
	res.deleted, err = s.prune(ctx, retention, now, fresh.File)
	return res, errors.Join(append(errs, err)...)
}

// recordRemote writes the scheduler's remote status files into dir: last-remote-success after a
// good upload (and removes remote-upload-failing), remote-upload-failing after a failed one.
func recordRemote(dir string, now time.Time, file string, failure error) error {
	if failure != nil {
		return writeFileAtomic(dir, remoteFailingFile, fmt.Sprintf("%s %s\n", now.UTC().Format(time.RFC3339Nano), oneLine(failure.Error())))
	}
	if err := writeFileAtomic(dir, lastRemoteSuccessFile, fmt.Sprintf("%s %s\n", now.UTC().Format(time.RFC3339Nano), file)); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(dir, remoteFailingFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", remoteFailingFile, err)
	}
	return nil
}
