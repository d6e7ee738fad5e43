package ops

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// TestReadRDBPayload feeds the replies a server gives to SYNC, one byte per
// read and in halves (so the end-of-RDB mark is split across reads), and
// checks what is written: exactly the RDB, never a keepalive newline, the
// "$" header or the mark, nor bytes after the payload.
func TestReadRDBPayload(t *testing.T) {
	rdb := append([]byte("REDIS0010"), bytes.Repeat([]byte("0123456789\r\n$\n"), 5000)...)
	mark := strings.Repeat("a1b2c3d4e5", 4)
	cases := []struct {
		name, reply string
		want        []byte
		err         string
		code        int
	}{
		{"$len", "$" + strconv.Itoa(len(rdb)) + "\r\n" + string(rdb), rdb, "", 0},
		{"$len with keepalives and more bytes after it", "\n\n\n$" + strconv.Itoa(len(rdb)) + "\r\n" + string(rdb) + "+PING\r\n", rdb, "", 0},
		{"EOF mark", "\n$EOF:" + mark + "\r\n" + string(rdb) + mark, rdb, "", 0},
		{"EOF mark, then a replication stream", "$EOF:" + mark + "\r\n" + string(rdb) + mark + "*1\r\n$4\r\nPING\r\n", rdb, "", 0},
		{"empty RDB", "$0\r\n", nil, "", 0},
		{"$len truncated", "$" + strconv.Itoa(len(rdb)) + "\r\n" + string(rdb[:1000]), rdb[:1000], "after 1000 of", ExitUnreachable},
		{"EOF mark never comes", "$EOF:" + mark + "\r\n" + string(rdb), rdb[:len(rdb)-len(mark)+1], "before the end-of-RDB mark", ExitUnreachable},
		{"NOPERM", "-NOPERM User x has no permissions to run the 'sync' command\r\n", nil, "+sync +replconf", ExitAuth},
		{"NOMASTERLINK", "-NOMASTERLINK Can't SYNC while not connected with my master\r\n", nil, "SYNC refused: NOMASTERLINK", ExitError},
		{"not a bulk", "+FULLRESYNC abc 0\r\n", nil, "unexpected reply to SYNC", ExitError},
		{"bad length", "$-5\r\n", nil, "unexpected reply to SYNC", ExitError},
		{"short mark", "$EOF:abc\r\n", nil, "unexpected reply to SYNC", ExitError},
	}
	for _, tc := range cases {
		for rname, wrap := range map[string]func(io.Reader) io.Reader{"one byte": iotest.OneByteReader, "halves": iotest.HalfReader} {
			t.Run(tc.name+"/"+rname, func(t *testing.T) {
				r := bufio.NewReaderSize(wrap(strings.NewReader(tc.reply)), 16)
				var out bytes.Buffer
				header, err := readSyncHeader(r)
				var n int64
				if err == nil {
					n, err = readRDBPayload(header, r, &out, nil)
				}
				if tc.err == "" && err != nil {
					t.Fatalf("error %v", err)
				}
				if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || exitCode(err) != tc.code) {
					t.Fatalf("error %v (exit %d), want one with %q and exit %d", err, exitCode(err), tc.err, tc.code)
				}
				if !bytes.Equal(out.Bytes(), tc.want) || n != int64(len(tc.want)) {
					t.Errorf("wrote %d bytes (n=%d), want %d", out.Len(), n, len(tc.want))
				}
			})
		}
	}
}

func TestReadSyncHeaderEOF(t *testing.T) {
	// The server closes the connection while it prepares the RDB (its save failed).
	_, err := readSyncHeader(bufio.NewReader(strings.NewReader("\n\n\n")))
	if !errors.Is(err, io.EOF) {
		t.Errorf("error %v, want EOF", err)
	}
	_, err = readSyncHeader(bufio.NewReader(strings.NewReader("$" + strings.Repeat("9", 5000))))
	if err == nil || !strings.Contains(err.Error(), "no line end") {
		t.Errorf("error %v, want no line end", err)
	}
}
