package ops

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"
)

// resolveRemote opens the remote target of list, verify or restore --remote: the --remote-* flags
// (and env), else the outputs of stack (backupRemote, backupRemoteCredentials).
func resolveRemote(ctx context.Context, e *env, r *remoteFlags, stack string) (*remoteStore, error) {
	var creds *stackCredentials
	if !r.configured() && stack != "" {
		so, err := readStackOutputs(ctx, stack)
		if err != nil {
			return nil, err
		}
		r.fromStack(so)
		creds = so.BackupRemoteCredentials
		if !r.configured() {
			return nil, withCode(ExitUsage, fmt.Errorf("stack %s has no backupRemote output (set operations.backup.remote and make up STACK=%s), and no --remote-endpoint was given", stack, stack))
		}
	}
	if !r.configured() {
		return nil, withCode(ExitUsage, errors.New("--remote needs --remote-endpoint (or REDIS_OPS_REMOTE_ENDPOINT) or --stack NAME"))
	}
	return r.open(e, creds)
}

// remoteStep is backup's and schedule's upload step after a good local backup (path, m): it syncs
// the backup dir to the remote and applies the retention there. The error says the local copy is
// kept.
func remoteStep(ctx context.Context, e *env, s *remoteStore, o backupOptions, path string, m manifest) (syncResult, error) {
	res, err := syncRemote(ctx, s, o.dir, o.retention, e.now(), m)
	if err != nil {
		return res, fmt.Errorf("backup %s is kept locally, but the upload step failed: %w", filepath.Base(path), err)
	}
	return res, nil
}

// runRemoteBackupStep prints what backup's upload step did.
func runRemoteBackupStep(ctx context.Context, e *env, s *remoteStore, o backupOptions, path string, m manifest) error {
	res, err := remoteStep(ctx, e, s, o, path, m)
	for _, n := range res.uploaded {
		fmt.Fprintf(e.stdout, "remote: uploaded %s to %s (server MD5 matches the manifest)\n", n, s.where)
	}
	for _, n := range res.deleted {
		fmt.Fprintf(e.stdout, "remote retention: deleted %s (older than %v)\n", n, o.retention)
	}
	return err
}

// listRemote is list --remote: the backups on the remote (by manifest), oldest first, checked
// against the server's size and MD5 (ETag) without downloading them; verify --remote downloads one.
func listRemote(ctx context.Context, e *env, s *remoteStore) error {
	l, err := s.list(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\tTIME\tSIZE\tKEYS\tSTATUS")
	failed := 0
	for _, be := range l.backups {
		st := be.status()
		if st != "remote-ok" {
			failed++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", be.name, be.created.UTC().Format(time.RFC3339), humanBytes(be.m.Size), be.m.Keys, st)
	}
	if len(l.backups) == 0 {
		fmt.Fprintf(tw, "(no backups in %s)\t\t\t\t\n", s.where)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if failed > 0 {
		return withCode(ExitVerify, fmt.Errorf("%d of %d remote backups do not match their manifests", failed, len(l.backups)))
	}
	return nil
}

// verifyRemote is verify --remote NAME: download the backup and its manifest into a temp dir and
// run verify's checks on the copy.
func verifyRemote(ctx context.Context, e *env, s *remoteStore, name string) error {
	dir, err := os.MkdirTemp("", "redis-ops-verify-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b, err := s.download(ctx, name, dir)
	if err != nil {
		fmt.Fprintf(e.stdout, "FAILED %s/%s: %v\n", s.where, name, err)
		return withCode(exitCode(err), errReported)
	}
	fmt.Fprintf(e.stdout, "OK %s/%s size=%d keys=%d sha256=%s rdb_version=%d\n", s.where, b.m.File, b.m.Size, b.m.Keys, b.m.SHA256, b.m.RDB.Version)
	return nil
}

// downloadForRestore is restore --remote: it downloads FILE (or latest) into a temp dir and
// verifies it, into b, before anything is stopped. cleanup removes the temp dir.
func downloadForRestore(ctx context.Context, e *env, rf *remoteFlags, o restoreOptions, file string, b *restoreBackup) (func(), error) {
	if o.fromBackups {
		return func() {}, withCode(ExitUsage, errors.New("--remote and --from-backups are two sources: give one"))
	}
	s, err := resolveRemote(ctx, e, rf, o.stack)
	if err != nil {
		return func() {}, err
	}
	dir, err := os.MkdirTemp("", "redis-ops-restore-")
	if err != nil {
		return func() {}, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	if *b, err = s.download(ctx, file, dir); err != nil {
		return cleanup, fmt.Errorf("refusing to restore from %s: %w", s.where, err)
	}
	fmt.Fprintf(e.stdout, "downloaded %s from %s and verified it (size %d, keys %d, sha256 %s)\n", b.m.File, s.where, b.m.Size, b.m.Keys, b.m.SHA256)
	return cleanup, nil
}
