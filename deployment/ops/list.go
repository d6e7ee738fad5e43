package ops

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// backupEntry is one backup found in a directory.
type backupEntry struct {
	rdb      string
	manifest *manifest // nil when missing or unreadable
	created  time.Time // manifest created_at, else the newest file mtime
}

// findBackups returns the backups in dir (files named redis-backup-*.rdb or
// redis-backup-*.manifest.json), oldest first.
func findBackups(dir string) ([]backupEntry, error) {
	names, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read backup dir: %w", err)
	}
	byRDB := map[string]*backupEntry{}
	for _, d := range names {
		n := d.Name()
		if d.IsDir() || !strings.HasPrefix(n, backupPrefix) || !(strings.HasSuffix(n, ".rdb") || strings.HasSuffix(n, ".manifest.json")) {
			continue
		}
		rdb := rdbPathOf(filepath.Join(dir, n))
		be := byRDB[rdb]
		if be == nil {
			be = &backupEntry{rdb: rdb}
			byRDB[rdb] = be
		}
		if fi, err := d.Info(); err == nil && fi.ModTime().After(be.created) {
			be.created = fi.ModTime()
		}
	}
	out := make([]backupEntry, 0, len(byRDB))
	for _, be := range byRDB {
		if m, err := readManifest(be.rdb); err == nil {
			be.manifest, be.created = &m, m.CreatedAt
		}
		out = append(out, *be)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].created.Before(out[j].created) })
	return out, nil
}

// prune deletes the backups (RDB and manifest) in dir created more than
// maxAge before now, never the one at keep. The age comes from the manifest's
// created_at, else from the file's mtime. It returns the deleted RDB paths.
func prune(dir string, maxAge time.Duration, now time.Time, keep string) ([]string, error) {
	entries, err := findBackups(dir)
	if err != nil {
		return nil, err
	}
	var deleted []string
	var errs []error
	for _, be := range entries {
		if be.rdb == keep || now.Sub(be.created) <= maxAge {
			continue
		}
		for _, p := range []string{be.rdb, manifestPath(be.rdb)} {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("retention: %w", err))
			}
		}
		deleted = append(deleted, be.rdb)
	}
	return deleted, errors.Join(errs...)
}

func runList(ctx context.Context, e *env, args []string) error {
	fs := e.newFlagSet("list", "(--dir DIR | --remote [--stack NAME]) [flags]", `
Lists the backups in DIR, oldest first, with time, size, keys and status. The
status re-verifies each backup (checksums and RDB format, like verify) unless
--quick, which only compares the file size with the manifest. Exits 9 when any
backup failed.

With --remote it lists the remote copy instead (the --remote-* flags, or the
stack's operations.backup.remote with --stack): only backups whose manifest
was uploaded (the manifest goes last), each checked against the size and MD5
the server reports for its object (status remote-ok), without downloading it;
"verify --remote NAME" downloads one and checks it fully.`)
	dir := fs.String("dir", "", "backup directory (required without --remote)")
	quick := fs.Bool("quick", false, "compare sizes only instead of full verification")
	stack := fs.String("stack", "", "with --remote: read the remote target and its credentials from this Pulumi stack's outputs")
	r := e.addRemoteFlags(fs, true)
	if err := parse(fs, args); err != nil {
		return err
	}
	if r.use {
		s, err := resolveRemote(ctx, e, r, *stack)
		if err != nil {
			return err
		}
		return listRemote(ctx, e, s)
	}
	if *dir == "" {
		fs.Usage()
		return withCode(ExitUsage, errors.New("--dir is required"))
	}
	entries, err := findBackups(*dir)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\tTIME\tSIZE\tKEYS\tSTATUS")
	failed := 0
	for _, be := range entries {
		size, keys := "-", "-"
		if be.manifest != nil {
			size, keys = humanBytes(be.manifest.Size), fmt.Sprint(be.manifest.Keys)
		}
		status := backupStatus(ctx, be, *quick)
		if strings.HasPrefix(status, "FAILED") {
			failed++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", filepath.Base(be.rdb), be.created.UTC().Format(time.RFC3339), size, keys, status)
	}
	if len(entries) == 0 {
		fmt.Fprintln(tw, "(no backups)\t\t\t\t")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if failed > 0 {
		return withCode(ExitVerify, fmt.Errorf("%d of %d backups failed verification", failed, len(entries)))
	}
	return nil
}

// backupStatus is "ok", "size-ok" (quick), or "FAILED: reason".
func backupStatus(ctx context.Context, be backupEntry, quick bool) string {
	if be.manifest == nil {
		return "FAILED: no manifest"
	}
	if quick {
		st, err := os.Stat(be.rdb)
		if err != nil {
			return "FAILED: " + err.Error()
		}
		if st.Size() != be.manifest.Size {
			return fmt.Sprintf("FAILED: size %d, manifest %d", st.Size(), be.manifest.Size)
		}
		return "size-ok"
	}
	if _, err := verifyBackup(ctx, be.rdb); err != nil {
		return "FAILED: " + err.Error()
	}
	return "ok"
}
