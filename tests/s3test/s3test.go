// Package s3test runs a real S3-compatible server for tests: SeaweedFS's `weed server -s3`, built
// outside this repository by deployment/scripts/build-seaweedfs.sh (never committed; .ci/run builds
// it). The binary is EMAILCLIENT_WEED, else /opt/seaweedfs/weed. Tests that need it skip with one line
// when it is missing, or fail when EMAILCLIENT_REQUIRE_TIERS contains "s3".
package s3test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/emailclient/emailclient-infra/tests/proc"
	"github.com/emailclient/emailclient-infra/tests/redistest"
	"github.com/emailclient/emailclient-infra/tests/tiers"
)

// DefaultBinary is where build-seaweedfs.sh installs weed.
const DefaultBinary = "/opt/seaweedfs/weed"

// Credentials the server accepts (its only identity, with every action).
const (
	AccessKey = "emailclient-test"
	SecretKey = "s3test-secret-key-0123456789"
)

// ReadyTimeout is how long Start waits for the S3 API to answer. Defaults to 60s: the master, the
// volume server, the filer and the S3 gateway start one after the other.
var ReadyTimeout = 60 * time.Second

// Binary returns the weed binary, or what is missing.
func Binary() (path, missing string) {
	path = os.Getenv("EMAILCLIENT_WEED")
	if path == "" {
		path = DefaultBinary
	}
	if st, err := os.Stat(path); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return "", fmt.Sprintf("no SeaweedFS weed binary at %s (bash deployment/scripts/build-seaweedfs.sh, or set EMAILCLIENT_WEED)", path)
	}
	return path, ""
}

// Require skips the test (one line) when weed is missing, or fails it when the s3 tier is required.
func Require(t testing.TB) string {
	t.Helper()
	path, missing := Binary()
	tiers.Require(t, tiers.S3, missing)
	return path
}

// Server is a running weed server with its S3 gateway, owned by a test.
type Server struct {
	Port int    // of the S3 API, bound on every address
	Dir  string // its data
	bin  string
	args []string
	log  string
	proc.Proc
}

// Start runs weed server -s3 on free ports (bound on every address, so that containers reach it
// through their network's gateway), with AccessKey/SecretKey as its only identity, and waits until
// the S3 API answers. It is killed when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Require(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "s3.json")
	b, _ := json.Marshal(map[string]any{"identities": []any{map[string]any{
		"name": "admin", "credentials": []any{map[string]string{"accessKey": AccessKey, "secretKey": SecretKey}},
		"actions": []string{"Admin", "Read", "Write", "List", "Tagging"},
	}}})
	if err := os.WriteFile(cfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	// weed also listens on each port+10000 (gRPC): pick ports whose +10000 is free too. Each bucket
	// is a collection that grows volumes of its own: with 20 volumes of 256 MB the bench's second
	// 1 GiB PUT failed ("No writable volumes and no free volumes left"); 100 of 1 GiB hold it.
	ports := freePorts(t, 4)
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o750); err != nil {
		t.Fatal(err)
	}
	s := &Server{Port: ports[0], Dir: data, bin: bin, log: filepath.Join(dir, "weed.log"), args: []string{"server",
		"-dir=" + data, "-ip=127.0.0.1", "-ip.bind=0.0.0.0",
		"-master.port=" + strconv.Itoa(ports[1]), "-volume.port=" + strconv.Itoa(ports[2]), "-filer.port=" + strconv.Itoa(ports[3]),
		"-s3", "-s3.port=" + strconv.Itoa(ports[0]), "-s3.config=" + cfg, "-volume.max=100", "-master.volumeSizeLimitMB=1024",
	}}
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Kill()
		if t.Failed() {
			t.Logf("weed server log (tail):\n%s", s.Log())
		}
	})
	if err := s.waitReady(); err != nil {
		t.Fatalf("weed server: %v\n%s", err, s.Log())
	}
	return s
}

// start spawns the process with its output in the log file.
func (s *Server) start() error {
	f, err := os.OpenFile(s.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.Command(s.bin, s.args...)
	cmd.Stdout, cmd.Stderr = f, f
	return s.Proc.Start(cmd)
}

// waitReady waits until an authenticated ListBuckets succeeds.
func (s *Server) waitReady() error {
	c := s.Client(AccessKey, SecretKey)
	deadline := time.Now().Add(ReadyTimeout)
	var err error
	for time.Now().Before(deadline) {
		if !s.Running() {
			return fmt.Errorf("exited: %v", s.WaitErr())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err = c.ListBuckets(ctx)
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(300 * time.Millisecond)
	}
	return fmt.Errorf("S3 API on port %d not ready after %v: %v", s.Port, ReadyTimeout, err)
}

// Kill kills the server with SIGKILL (what a lost host does to it) and waits for it to exit.
func (s *Server) Kill() {
	if s.Running() {
		s.Signal(syscall.SIGKILL, 0)
	}
}

// Restart starts the killed server again on the same ports and data, and waits until it answers.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Kill()
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	if err := s.waitReady(); err != nil {
		t.Fatalf("weed server restart: %v\n%s", err, s.Log())
	}
}

// Endpoint is the S3 API's URL through host (127.0.0.1 from this host, a network's gateway address
// from a container).
func (s *Server) Endpoint(host string) string {
	return "http://" + net.JoinHostPort(host, strconv.Itoa(s.Port))
}

// ContainerEndpoint is the S3 API's URL for containers on any network of the local Docker engine:
// through the host's address on Docker's default bridge (the bridge's IPAM gateway, or where the
// engine does not record it, as Debian's 20.10, the address of docker0).
func (s *Server) ContainerEndpoint(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("docker", "network", "inspect", "bridge", "-f", "{{range .IPAM.Config}}{{.Gateway}}{{end}}").Output()
	if gw := strings.TrimSpace(string(out)); err == nil && gw != "" {
		return s.Endpoint(gw)
	}
	ifc, err := net.InterfaceByName("docker0")
	if err != nil {
		t.Fatalf("docker's bridge network has no gateway address and there is no docker0: %v", err)
	}
	addrs, _ := ifc.Addrs()
	for _, a := range addrs {
		if ip, ok := a.(*net.IPNet); ok && ip.IP.To4() != nil {
			return s.Endpoint(ip.IP.String())
		}
	}
	t.Fatal("docker0 has no IPv4 address")
	return ""
}

// Client is a minio client of the server with the given keys.
func (s *Server) Client(access, secret string) *minio.Client {
	c, err := minio.New(net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)), &minio.Options{Creds: credentials.NewStaticV4(access, secret, "")})
	if err != nil {
		panic(err) // only a malformed endpoint fails here
	}
	c.SetAppInfo("s3test", "1")
	return c
}

// MakeBucket creates a bucket with a unique name for the test and returns it.
func (s *Server) MakeBucket(t testing.TB) string {
	t.Helper()
	name := strings.ToLower(fmt.Sprintf("t%d-%d", time.Now().UnixNano()%1e9, os.Getpid()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Client(AccessKey, SecretKey).MakeBucket(ctx, name, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("make bucket %s: %v", name, err)
	}
	return name
}

// Objects lists the object names in bucket under prefix.
func (s *Server) Objects(t testing.TB, bucket, prefix string) []string {
	t.Helper()
	var out []string
	for o := range s.Client(AccessKey, SecretKey).ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			t.Fatalf("list %s/%s: %v", bucket, prefix, o.Err)
		}
		out = append(out, o.Key)
	}
	return out
}

// Log is the server's output so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// freePorts returns n free ports p whose p+10000 is free too.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var out []int
	for tries := 0; len(out) < n && tries < 200; tries++ {
		p, err := redistest.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if p+10000 > 65535 || !free(p+10000) {
			continue
		}
		dup := false
		for _, q := range out {
			dup = dup || q == p || q+10000 == p || p+10000 == q
		}
		if !dup {
			out = append(out, p)
		}
	}
	if len(out) < n {
		t.Fatal("no free ports for weed")
	}
	return out
}

func free(port int) bool {
	l, err := net.Listen("tcp", ":"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}
