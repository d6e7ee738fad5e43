package ops

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// crcJonesReflected is CRC-64/Jones (poly 0xad93d23594c935a9) in the
// reversed bit order Go's reflected table takes.
const crcJonesReflected = 0x95ac9329ac4bc9b5

var jonesTable = crc64.MakeTable(crcJonesReflected)

// redisCRC64 is Redis' crc64: CRC-64/Jones, reflected, init 0, no final xor.
// It streams: start with crc 0 and feed chunks.
func redisCRC64(crc uint64, p []byte) uint64 {
	// Go's crc64.Update inverts on entry and exit; undo both.
	return ^crc64.Update(^crc, jonesTable, p)
}

// rdbCheck is the outcome of checking an RDB file's format.
type rdbCheck struct {
	Version int    `json:"rdb_version"`
	CRC64   string `json:"crc64"`          // stored checksum, hex; "0" when rdbchecksum was off
	Checker string `json:"checker"`        // "redis-check-rdb" or "builtin"
	Keys    int64  `json:"keys,omitempty"` // keys read by redis-check-rdb
}

// checkRDB verifies the magic header, the EOF opcode and the trailing CRC64,
// then runs redis-check-rdb when it is on PATH.
func checkRDB(ctx context.Context, path string) (rdbCheck, error) {
	res, err := checkRDBFormat(path)
	if err != nil {
		return res, err
	}
	res.Checker = "builtin"
	if _, err := exec.LookPath("redis-check-rdb"); err != nil {
		return res, nil
	}
	keys, err := runRedisCheckRDB(ctx, path)
	if err != nil {
		return res, err
	}
	res.Checker, res.Keys = "redis-check-rdb", keys
	return res, nil
}

// checkRDBFormat reads the file once: "REDIS" + 4-digit version, a final EOF
// opcode (0xFF) and, for version >= 5, the little-endian CRC64 of everything
// before it (0 means checksums were disabled).
func checkRDBFormat(path string) (rdbCheck, error) {
	var res rdbCheck
	f, err := os.Open(path)
	if err != nil {
		return res, fmt.Errorf("open rdb: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return res, fmt.Errorf("stat rdb: %w", err)
	}
	const header, trailer = 9, 9
	if st.Size() < header+trailer {
		return res, fmt.Errorf("rdb %s: truncated (%d bytes)", path, st.Size())
	}
	r := bufio.NewReaderSize(f, 1<<20)
	head := make([]byte, header)
	if _, err := io.ReadFull(r, head); err != nil {
		return res, fmt.Errorf("read rdb header: %w", err)
	}
	if !bytes.HasPrefix(head, []byte("REDIS")) {
		return res, fmt.Errorf("rdb %s: bad magic %q, want REDISnnnn", path, head[:5])
	}
	if res.Version, err = strconv.Atoi(string(head[5:])); err != nil {
		return res, fmt.Errorf("rdb %s: bad version %q", path, head[5:])
	}
	body := st.Size() - header - 8
	crc, last, err := crcCopy(redisCRC64(0, head), r, body)
	if err != nil {
		return res, fmt.Errorf("read rdb: %w", err)
	}
	tail := make([]byte, 8)
	if _, err := io.ReadFull(r, tail); err != nil {
		return res, fmt.Errorf("read rdb checksum: %w", err)
	}
	if last != 0xFF {
		return res, fmt.Errorf("rdb %s: no EOF opcode before the checksum (truncated?)", path)
	}
	return res, verifyTrailer(path, &res, crc, tail)
}

// crcCopy feeds n bytes of r into crc and returns the last byte read.
func crcCopy(crc uint64, r io.Reader, n int64) (uint64, byte, error) {
	buf := make([]byte, 1<<20)
	var last byte
	for n > 0 {
		m, err := io.ReadFull(r, buf[:min(int64(len(buf)), n)])
		crc = redisCRC64(crc, buf[:m])
		n -= int64(m)
		if m > 0 {
			last = buf[m-1]
		}
		if err != nil {
			return crc, last, err
		}
	}
	return crc, last, nil
}

// verifyTrailer compares the stored checksum with the computed one.
func verifyTrailer(path string, res *rdbCheck, crc uint64, tail []byte) error {
	stored := binary.LittleEndian.Uint64(tail)
	res.CRC64 = strconv.FormatUint(stored, 16)
	if res.Version >= 5 && stored != 0 && stored != crc {
		return fmt.Errorf("rdb %s: CRC64 mismatch: stored %016x, computed %016x", path, stored, crc)
	}
	return nil
}

var keysReadRe = regexp.MustCompile(`\[info\] (\d+) keys read`)

// runRedisCheckRDB runs redis-check-rdb and returns the keys it read.
func runRedisCheckRDB(ctx context.Context, path string) (int64, error) {
	out, err := exec.CommandContext(ctx, "redis-check-rdb", path).CombinedOutput()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return 0, fmt.Errorf("redis-check-rdb %s failed: %s", path, lastLines(string(out), 3))
		}
		return 0, fmt.Errorf("run redis-check-rdb: %w", err)
	}
	if m := keysReadRe.FindStringSubmatch(string(out)); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		return n, nil
	}
	return 0, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
