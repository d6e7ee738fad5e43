package ops

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// rdbEOFMarkSize is the length of the delimiter of a diskless transfer
// ("$EOF:<40 bytes>\r\n" ... "<the same 40 bytes>"), RDB_EOF_MARK_SIZE in Redis.
const rdbEOFMarkSize = 40

// syncIdleMin is the shortest time syncRDB waits for the next byte: while
// the server prepares the RDB it sends a newline every second (replicationCron),
// so a shorter --timeout must not end a healthy transfer.
const syncIdleMin = 3 * time.Second

// syncHint is what a user refused SYNC or REPLCONF needs.
const syncHint = "the ACL user needs SYNC and REPLCONF (+sync +replconf, both in @admin) for --source network; " +
	"or back up from the data dir (--source datadir)"

// syncRDB takes an RDB from the server the way `redis-cli --rdb` does
// (sendSync/getRDB in redis-cli.c): a dedicated connection dialled with the
// client's options (TLS when they use it), AUTH, REPLCONF capa eof and
// REPLCONF rdb-only 1 (errors ignored: servers before 7.0 do not know
// rdb-only, but a NOPERM is reported), then SYNC. The server forks a save of
// its own for it; the reply is "$<len>\r\n" and len bytes, or, for a diskless
// transfer, "$EOF:<mark>\r\n", the RDB and the mark again. It writes the RDB
// into w and returns its length. The connection is closed on return, so the
// server drops the pseudo-replica. wait bounds the time until the server
// starts sending (its save included); every read waits at most
// max(ReadTimeout, syncIdleMin) for data.
func syncRDB(ctx context.Context, o *redis.Options, w io.Writer, p *progress, wait time.Duration) (int64, error) {
	dial := o.Dialer
	if dial == nil {
		dial = redis.NewDialer(o)
	}
	network := o.Network
	if network == "" {
		network = "tcp"
	}
	conn, err := dial(ctx, network, o.Addr)
	if err != nil {
		return 0, fmt.Errorf("dial %s for SYNC: %w", o.Addr, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() }) // unblocks a read on cancel
	defer stop()
	n, err := syncOn(conn, o, w, p, wait)
	if ctxErr := ctx.Err(); ctxErr != nil && err != nil {
		return n, ctxErr
	}
	return n, err
}

// syncOn runs the replication handshake on conn and reads the RDB into w.
func syncOn(conn net.Conn, o *redis.Options, w io.Writer, p *progress, wait time.Duration) (int64, error) {
	timeout := o.ReadTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	dr := &deadlineReader{conn: conn, idle: timeout}
	r := bufio.NewReaderSize(dr, 256<<10)
	call := func(args ...string) error {
		_ = conn.SetWriteDeadline(time.Now().Add(timeout))
		if err := writeCommand(conn, args...); err != nil {
			return fmt.Errorf("send %s: %w", args[0], err)
		}
		return readStatus(r)
	}
	if o.Password != "" {
		args := []string{"AUTH", o.Password}
		if o.Username != "" {
			args = []string{"AUTH", o.Username, o.Password}
		}
		if err := call(args...); err != nil {
			return 0, fmt.Errorf("AUTH as %s on the SYNC connection: %w", o.Username, err)
		}
	}
	// capa eof: we read the diskless form; rdb-only: no replication stream
	// after the RDB (Redis 7.0+). Other errors mean an older server.
	for _, opt := range [][2]string{{"capa", "eof"}, {"rdb-only", "1"}} {
		if err := call("REPLCONF", opt[0], opt[1]); err != nil && classify(err) == ExitAuth {
			return 0, fmt.Errorf("REPLCONF %s %s: %w (%s)", opt[0], opt[1], err, syncHint)
		} else if err != nil && !isServerError(err) {
			return 0, fmt.Errorf("REPLCONF %s %s: %w", opt[0], opt[1], err)
		}
	}
	_ = conn.SetWriteDeadline(time.Now().Add(timeout))
	if err := writeCommand(conn, "SYNC"); err != nil {
		return 0, fmt.Errorf("send SYNC: %w", err)
	}
	dr.idle, dr.until = max(timeout, syncIdleMin), time.Now().Add(wait)
	header, err := readSyncHeader(r)
	if err != nil {
		if !dr.until.IsZero() && time.Now().After(dr.until) {
			return 0, fmt.Errorf("no RDB from SYNC within --wait %v: %w", wait, err)
		}
		return 0, fmt.Errorf("waiting for the RDB after SYNC: %w", err)
	}
	dr.until = time.Time{} // the transfer runs as long as data flows
	return readRDBPayload(header, r, w, p)
}

// readRDBPayload reads the RDB announced by header (the first line of the
// reply to SYNC, without its line end) from r into w.
func readRDBPayload(header string, r io.Reader, w io.Writer, p *progress) (int64, error) {
	switch {
	case strings.HasPrefix(header, "-"):
		err := errors.New(strings.TrimPrefix(header, "-"))
		if classify(err) == ExitAuth {
			return 0, fmt.Errorf("SYNC refused: %w (%s)", err, syncHint)
		}
		return 0, fmt.Errorf("SYNC refused: %w", err)
	case !strings.HasPrefix(header, "$"):
		return 0, fmt.Errorf("unexpected reply to SYNC: %q", truncate(header, 64))
	}
	if mark, ok := strings.CutPrefix(header, "$EOF:"); ok && len(mark) >= rdbEOFMarkSize {
		n, err := copyUntilMark(w, r, []byte(mark[:rdbEOFMarkSize]))
		if err != nil {
			return n, fmt.Errorf("diskless RDB transfer after %d bytes: %w", n, err)
		}
		return n, nil
	}
	size, err := strconv.ParseInt(header[1:], 10, 64)
	if err != nil || size < 0 {
		return 0, fmt.Errorf("unexpected reply to SYNC: %q", truncate(header, 64))
	}
	p.setTotal(size)
	n, err := io.CopyN(w, r, size) // io.EOF when the connection ends early: exit 3
	if err != nil {
		return n, fmt.Errorf("RDB transfer after %d of %d bytes: %w", n, size, err)
	}
	return n, nil
}

// readSyncHeader reads the first line of the reply to SYNC, skipping the
// newlines the server sends as keepalives while it prepares the RDB (as
// redis-cli's sendSync does), and returns it without "\r\n".
func readSyncHeader(r *bufio.Reader) (string, error) {
	var line []byte
	for {
		b, err := r.ReadByte()
		if err != nil {
			return "", err
		}
		if b == '\n' {
			if len(line) == 0 {
				continue
			}
			return strings.TrimSuffix(string(line), "\r"), nil
		}
		if line = append(line, b); len(line) > 4096 {
			return "", fmt.Errorf("reply to SYNC: no line end in %d bytes", len(line))
		}
	}
}

// copyUntilMark copies r into w up to the delimiter mark, which it does not
// write. The whole stream is searched (redis-cli compares the last bytes of
// each read), so bytes a server sends after the mark are never taken for RDB.
func copyUntilMark(w io.Writer, r io.Reader, mark []byte) (int64, error) {
	buf := make([]byte, 256<<10+len(mark))
	var n int64
	held := 0 // buf[:held] may be the start of the mark: not written yet
	for {
		k, rerr := r.Read(buf[held:])
		data := buf[:held+k]
		if i := bytes.Index(data, mark); i >= 0 {
			m, err := w.Write(data[:i])
			return n + int64(m), err
		}
		keep := min(len(data), len(mark)-1)
		if out := data[:len(data)-keep]; len(out) > 0 {
			m, err := w.Write(out)
			n += int64(m)
			if err != nil {
				return n, err
			}
		}
		held = copy(buf, data[len(data)-keep:])
		if rerr == io.EOF {
			return n, fmt.Errorf("connection closed before the end-of-RDB mark: %w", io.EOF)
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// deadlineReader sets a read deadline before every read: idle from now,
// but never later than until (when set).
type deadlineReader struct {
	conn  net.Conn
	idle  time.Duration
	until time.Time
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	dl := time.Now().Add(d.idle)
	if !d.until.IsZero() && d.until.Before(dl) {
		dl = d.until
	}
	_ = d.conn.SetReadDeadline(dl)
	return d.conn.Read(p)
}

// writeCommand sends args as a RESP array of bulk strings.
func writeCommand(w io.Writer, args ...string) error {
	b := fmt.Appendf(nil, "*%d\r\n", len(args))
	for _, a := range args {
		b = fmt.Appendf(b, "$%d\r\n%s\r\n", len(a), a)
	}
	_, err := w.Write(b)
	return err
}

// serverError is an error reply ("-ERR ...") of the server.
type serverError string

func (e serverError) Error() string { return string(e) }

func isServerError(err error) bool {
	var se serverError
	return errors.As(err, &se)
}

// readStatus reads a one-line reply: nil for "+...", a serverError for "-...".
func readStatus(r *bufio.Reader) error {
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	line = strings.TrimRight(line, "\r\n")
	switch {
	case strings.HasPrefix(line, "+"):
		return nil
	case strings.HasPrefix(line, "-"):
		return serverError(line[1:])
	}
	return fmt.Errorf("unexpected reply %q", truncate(line, 64))
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// syncFailure explains a SYNC that ended without an RDB: when the server's
// own save failed (rdb_last_bgsave_status:err, a disk-based transfer), the
// error carries ExitPersistence.
func syncFailure(ctx context.Context, c *redis.Client, err error) error {
	if ctx.Err() != nil || (!errors.Is(err, io.EOF) && !errors.Is(err, os.ErrDeadlineExceeded)) {
		return err
	}
	if inf, ierr := fetchInfo(ctx, c, "persistence"); ierr == nil && inf["rdb_last_bgsave_status"] != "ok" {
		return withCode(ExitPersistence, fmt.Errorf("%w; the server's save for SYNC failed: rdb_last_bgsave_status:%s (see the Redis log)", err, inf["rdb_last_bgsave_status"]))
	}
	return err
}
