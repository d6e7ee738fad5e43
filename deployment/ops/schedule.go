package ops

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// lastSuccessFile is written into the backup dir after every good scheduled
// backup: "<RFC 3339 UTC time> <file name>\n". metrics reports its age.
const lastSuccessFile = "last-success"

// scheduleOptions configures runSchedule.
type scheduleOptions struct {
	backupOptions
	cron        string
	every       time.Duration
	verify      bool
	onceAtStart bool
	sentinels   *sentinelFlags
	remote      *remoteStore // nil: no remote copy
}

// schedule is a cron expression or a fixed interval.
type schedule interface {
	next(after time.Time) time.Time
	String() string
}

// everySchedule runs every d, aligned to the start time.
type everySchedule struct {
	d     time.Duration
	start time.Time
}

func (s everySchedule) next(after time.Time) time.Time {
	n := after.Sub(s.start)/s.d + 1
	return s.start.Add(n * s.d)
}

func (s everySchedule) String() string { return "every " + s.d.String() }

func runSchedule(ctx context.Context, e *env, args []string) error {
	fs := e.newFlagSet("schedule", "(--cron EXPR | --every DURATION) --dir DIR [flags]", `
Long-running backup scheduler (the command of the scheduled-backup container).
At each time of the schedule it runs what "backup" does (a fresh RDB from the
data dir or over the connection, see --source and "backup --help"; check it,
write checksums and a manifest, apply --retention),
re-verifies the written backup (--verify), writes the time of the last good
backup to DIR/last-success and prints ONE line per run on stdout:

  backup ok file=NAME size=BYTES keys=N sha256=HEX deleted=N duration=D
  backup FAILED: KIND: ERROR

A failed run never stops the scheduler; the next run is at the next scheduled
time. The connection (and the password file) is resolved afresh for every run,
so a rotated password is picked up without a restart. SIGTERM or SIGINT stops
it (exit 0); a backup in progress is abandoned and its temp file removed.

--cron takes a standard 5-field expression: minute hour day-of-month month
day-of-week, with *, lists (1,15), ranges (1-5), steps (*/15, 0-12/6), month and
weekday names (jan, mon-fri), 7 = Sunday, and @daily/@hourly/@weekly/@monthly/
@yearly. When both day fields are restricted a day matches either (as in cron).
Times are in the local zone: UTC unless TZ is set (e.g. TZ=Europe/Berlin; the
binary embeds the zone database). --every runs at a fixed interval instead
(for tests and short schedules); exactly one of --cron and --every is required.

With --remote-endpoint each good backup (and any earlier one the remote lacks)
is then uploaded, retention applied there too, and DIR/last-remote-success
written; a failed upload keeps the local backup, writes
DIR/remote-upload-failing (metrics: redis_backup_remote_upload_failing 1) and
logs "backup FAILED: remote: ...".`)
	c := e.addConnFlags(fs)
	rf := e.addRemoteFlags(fs, false)
	o := scheduleOptions{sentinels: e.addSentinelFlags(fs)}
	fs.StringVar(&o.cron, "cron", "", `5-field cron expression, e.g. "0 2 * * *" (daily at 02:00)`)
	fs.DurationVar(&o.every, "every", 0, "run at this fixed interval instead of --cron (at least 1s)")
	fs.StringVar(&o.dir, "dir", "", "backup directory (required)")
	addSourceFlags(fs, &o.backupOptions, "Redis data directory readable on this host, may be read-only (default: CONFIG GET dir)")
	fs.DurationVar(&o.retention, "retention", 720*time.Hour, "delete backups older than this after each good backup (0 keeps all)")
	fs.DurationVar(&o.wait, "wait", 30*time.Minute, "maximum time to wait for BGSAVE (or for the server's save for SYNC)")
	fs.BoolVar(&o.verify, "verify", true, "re-verify each written backup (checksums against the manifest, RDB format)")
	fs.BoolVar(&o.onceAtStart, "once-at-start", false, "also run one backup immediately at start")
	if err := parse(fs, args); err != nil {
		return err
	}
	c.markSet(fs)
	if err := o.checkSource(); err != nil {
		return err
	}
	sched, err := o.validate(e)
	if err != nil {
		fs.Usage()
		return withCode(ExitUsage, err)
	}
	if _, err := c.options(ctx, e); err != nil && exitCode(err) == ExitUsage {
		return err // a bad --addr, --url or --password-file is a usage error; anything else is a failed run later
	}
	if _, err := o.sentinels.list(); err != nil {
		return err
	}
	if o.remote, err = rf.openIfConfigured(e); err != nil {
		return err
	}
	remote := "none"
	if o.remote != nil {
		remote = o.remote.where
	}
	zone, _ := e.now().Zone()
	fmt.Fprintf(e.stderr, "redis-ops schedule: %s (zone %s), dir %s, source %s, retention %v, verify %v, remote %s; first run at %s\n",
		sched, zone, o.dir, o.source, o.retention, o.verify, remote, sched.next(e.now()).Format(time.RFC3339))
	if o.onceAtStart {
		scheduledRun(ctx, e, c, o)
	}
	for {
		next := sched.next(e.now())
		timer := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			timer.Stop()
			fmt.Fprintln(e.stderr, "redis-ops schedule: stopping")
			return nil
		case <-timer.C:
		}
		scheduledRun(ctx, e, c, o)
	}
}

// validate checks the flags and returns the schedule.
func (o *scheduleOptions) validate(e *env) (schedule, error) {
	switch {
	case o.dir == "":
		return nil, errors.New("--dir is required")
	case o.cron != "" && o.every != 0:
		return nil, errors.New("--cron and --every are mutually exclusive")
	case o.cron == "" && o.every == 0:
		return nil, errors.New("one of --cron or --every is required")
	}
	if o.every != 0 { // at least 1s: checked by parse
		return everySchedule{d: o.every, start: e.now()}, nil
	}
	return parseCron(o.cron, time.Local)
}

// scheduledRun performs one backup and prints its one line.
func scheduledRun(ctx context.Context, e *env, c *connFlags, o scheduleOptions) {
	start := time.Now()
	path, m, deleted, err := backupAndVerify(ctx, e, c, o)
	if err != nil {
		kind := codeName(exitCode(err))
		switch {
		case ctx.Err() != nil:
			kind = "aborted by shutdown"
		case exitCode(err) == ExitVerify:
			kind = "verify"
		case kind == "":
			kind = "error"
		}
		fmt.Fprintf(e.stdout, "backup FAILED: %s: %s\n", kind, oneLine(err.Error()))
		return
	}
	fmt.Fprintf(e.stdout, "backup ok file=%s size=%d keys=%d sha256=%s deleted=%d duration=%s node=%s role=%s\n",
		filepath.Base(path), m.Size, m.Keys, m.SHA256, len(deleted), time.Since(start).Round(time.Millisecond), m.SourceAddr, m.SourceRole)
}

// backupAndVerify connects, backs up, re-verifies, records the success and
// applies retention. A retention error fails the run after last-success is
// written (the backup itself is good).
func backupAndVerify(ctx context.Context, e *env, c *connFlags, o scheduleOptions) (string, manifest, []string, error) {
	client, err := connectBackupNode(ctx, e, c, o.sentinels, &o.backupOptions)
	if err != nil {
		return "", manifest{}, nil, err
	}
	defer client.Close()
	path, m, err := backup(ctx, e, client, o.backupOptions)
	if err != nil {
		return path, m, nil, err
	}
	if o.verify {
		if _, err := verifyBackup(ctx, path); err != nil {
			return path, m, nil, withCode(ExitVerify, fmt.Errorf("written backup %s fails verification: %w", filepath.Base(path), err))
		}
	}
	if err := writeLastSuccess(o.dir, m); err != nil {
		return path, m, nil, err
	}
	deleted, err := applyRetention(o.backupOptions, e.now(), path)
	if err != nil {
		err = fmt.Errorf("backup %s ok, but %w", filepath.Base(path), err)
	}
	if o.remote != nil {
		res, rerr := remoteStep(ctx, e, o.remote, o.backupOptions, path, m)
		if werr := recordRemote(o.dir, e.now(), m.File, rerr); werr != nil {
			rerr = errors.Join(rerr, werr)
		}
		deleted = append(deleted, res.deleted...)
		err = errors.Join(rerr, err) // the remote's code (14) first
	}
	return path, m, deleted, err
}

// writeLastSuccess atomically writes DIR/last-success.
func writeLastSuccess(dir string, m manifest) error {
	return writeFileAtomic(dir, lastSuccessFile, fmt.Sprintf("%s %s\n", m.CreatedAt.UTC().Format(time.RFC3339Nano), m.File))
}

// writeFileAtomic writes DIR/NAME through a synced temp file and a rename.
func writeFileAtomic(dir, name, content string) error {
	tmp, err := os.CreateTemp(dir, "."+name+"-*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(content)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, name))
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// readLastSuccess returns the time in DIR/last-success.
func readLastSuccess(dir string) (time.Time, error) { return readStamp(dir, lastSuccessFile) }

// readStamp returns the time that starts DIR/NAME (last-success, last-remote-success).
func readStamp(dir, name string) (time.Time, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return time.Time{}, err
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return time.Time{}, fmt.Errorf("%s is empty", name)
	}
	return time.Parse(time.RFC3339Nano, f[0])
}

// oneLine joins a multi-line message for a one-line log.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
