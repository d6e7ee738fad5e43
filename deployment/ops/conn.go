package ops

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/redis/go-redis/v9"
)

// connFlags are the connection flags every Redis command takes.
type connFlags struct {
	// addr is host:port. Defaults to $REDIS_ADDR, else 127.0.0.1:6379.
	addr string
	// user is the ACL user. Defaults to $REDIS_USERNAME, else "ops".
	user string
	// passwordFile holds the password. Defaults to $REDIS_PASSWORD_FILE. The
	// password itself comes only from $REDIS_PASSWORD or this file, never from
	// a flag value visible in ps.
	passwordFile string
	// url is a redis:// URL, an alternative to addr/user. Defaults to $REDIS_URL.
	url string
	// stack reads redisHost, redisPort and opsPassword from
	// "pulumi stack output --json --show-secrets --stack NAME".
	stack string
	// timeout bounds every Redis call. Defaults to 5s.
	timeout time.Duration

	set map[string]bool // flags given explicitly on the command line
}

func (e *env) addConnFlags(fs *flag.FlagSet) *connFlags {
	c := &connFlags{}
	fs.StringVar(&c.addr, "addr", envOr(e.getenv, "REDIS_ADDR", "127.0.0.1:6379"), "Redis host:port (env REDIS_ADDR)")
	fs.StringVar(&c.user, "user", envOr(e.getenv, "REDIS_USERNAME", "ops"), "ACL user (env REDIS_USERNAME); the password comes from env REDIS_PASSWORD or --password-file")
	fs.StringVar(&c.passwordFile, "password-file", e.getenv("REDIS_PASSWORD_FILE"), "file holding the password (env REDIS_PASSWORD_FILE); overrides REDIS_PASSWORD")
	// The env value is read after parsing, so --help never prints a URL
	// that may hold a password.
	fs.StringVar(&c.url, "url", "", "redis:// URL instead of --addr/--user (env REDIS_URL); its user and password win when present")
	fs.StringVar(&c.stack, "stack", "", "take redisHost, redisPort and opsPassword from this Pulumi stack's outputs (needs the pulumi CLI)")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Second, "timeout of every Redis call")
	return c
}

// markSet records which flags were given explicitly.
func (c *connFlags) markSet(fs *flag.FlagSet) {
	c.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { c.set[f.Name] = true })
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

// options resolves the flags into go-redis options.
func (c *connFlags) options(ctx context.Context, e *env) (*redis.Options, error) {
	password, err := c.password(e)
	if err != nil {
		return nil, err
	}
	if c.url == "" {
		c.url = e.getenv("REDIS_URL")
	}
	var o *redis.Options
	switch {
	case c.stack != "":
		o, err = c.stackOptions(ctx, password)
	case c.url != "" && !c.set["addr"]:
		o, err = redis.ParseURL(c.url)
		if err != nil {
			return nil, urlError(c.url, err)
		}
		if o.Username == "" {
			o.Username = c.user
		}
		if o.Password == "" {
			o.Password = password
		}
	default:
		if err := checkAddr(c.addr); err != nil {
			return nil, err
		}
		o = &redis.Options{Addr: c.addr, Username: c.user, Password: password}
	}
	if err != nil {
		return nil, err
	}
	o.DialTimeout, o.ReadTimeout, o.WriteTimeout = c.timeout, c.timeout, c.timeout
	o.ContextTimeoutEnabled = true
	o.MaxRetries = -1
	o.DisableIdentity = true
	return o, nil
}

// checkAddr accepts host:port with a port 1-65535 and no whitespace or control
// characters (a newline would split the one-line output of health).
func checkAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	n, perr := strconv.Atoi(port)
	bad := func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }
	if err != nil || perr != nil || n < 1 || n > 65535 || strings.ContainsFunc(addr, bad) {
		return withCode(ExitUsage, fmt.Errorf("--addr/REDIS_ADDR %q: want host:port, a port 1-65535, no whitespace or control characters", addr))
	}
	return nil
}

// urlError is a usage error for a --url that does not parse, without the
// URL's password: url.Parse's message quotes the whole URL, so only its cause
// is kept, and the URL is shown with the password replaced.
func urlError(raw string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	msg := err.Error()
	if pw := urlPassword(raw); pw != "" {
		msg = strings.ReplaceAll(msg, pw, "xxxxx")
	}
	return withCode(ExitUsage, fmt.Errorf("--url/REDIS_URL %q: %s", redactURL(raw), msg))
}

// userinfoSpan returns where the userinfo of a URL that may not parse is:
// after "scheme://" and before the last "@" (a password may hold "/", "?",
// "#" or "@" unescaped, so everything up to the last "@" counts).
func userinfoSpan(raw string) (start, end int) {
	if i := strings.Index(raw, "://"); i >= 0 {
		start = i + len("://")
	}
	end = strings.LastIndex(raw[start:], "@")
	if end < 0 {
		return start, start
	}
	return start, start + end
}

// urlPassword is the raw password of a URL that may not parse ("" if none).
func urlPassword(raw string) string {
	start, end := userinfoSpan(raw)
	_, pw, _ := strings.Cut(raw[start:end], ":")
	return pw
}

// redactURL replaces the password of a URL that may not parse with "xxxxx"
// (url.URL.Redacted needs a parsed URL).
func redactURL(raw string) string {
	start, end := userinfoSpan(raw)
	user, _, hasPassword := strings.Cut(raw[start:end], ":")
	if !hasPassword {
		return raw
	}
	return raw[:start] + user + ":xxxxx" + raw[end:]
}

// password reads the password from --password-file, else $REDIS_PASSWORD.
func (c *connFlags) password(e *env) (string, error) {
	if c.passwordFile == "" {
		return e.getenv("REDIS_PASSWORD"), nil
	}
	b, err := os.ReadFile(c.passwordFile) // the error names the path, never the content
	if err != nil {
		return "", withCode(ExitUsage, fmt.Errorf("--password-file/REDIS_PASSWORD_FILE: read password file: %w", err))
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// stackOutputs are the Pulumi stack outputs redis-ops uses.
type stackOutputs struct {
	// RedisHostAddress is host:port where the stack publishes Redis on this host (dev); absent when
	// it publishes none (prod), where redisHost:redisPort resolves only on the Docker network.
	RedisHostAddress string          `json:"redisHostAddress"`
	RedisHost        string          `json:"redisHost"`
	RedisPort        json.RawMessage `json:"redisPort"`
	OpsPassword      string          `json:"opsPassword"`
	// RedisContainer, EmailServiceContainer (absent when the email-service is disabled) and
	// SentinelMasterName (present only in the Sentinel topology) are what restore acts on.
	RedisContainer        string `json:"redisContainer"`
	EmailServiceContainer string `json:"emailServiceContainer"`
	SentinelMasterName    string `json:"sentinelMasterName"`
	// BackupRemote (plain) and BackupRemoteCredentials (secret) are operations.backup.remote, present
	// when it is enabled: list, verify and restore --remote read them.
	BackupRemote struct {
		Endpoint string `json:"endpoint"`
		Bucket   string `json:"bucket"`
		Prefix   string `json:"prefix"`
		Region   string `json:"region"`
	} `json:"backupRemote"`
	BackupRemoteCredentials *stackCredentials `json:"backupRemoteCredentials"`
}

// pulumiCLI runs "pulumi ARGS --stack STACK" and returns its stdout; an error names the command by
// what ("stack output") and quotes the CLI's stderr.
func pulumiCLI(ctx context.Context, stack, what string, args ...string) ([]byte, error) {
	bin, err := exec.LookPath("pulumi")
	if err != nil {
		return nil, fmt.Errorf("--stack %s needs the pulumi CLI, which is not on PATH (install it, or pass the flags that replace --stack): %w", stack, err)
	}
	cmd := exec.CommandContext(ctx, bin, append(args, "--stack", stack)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("pulumi %s --stack %s: %w: %s", what, stack, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// readStackOutputs runs "pulumi stack output --json --show-secrets --stack NAME".
func readStackOutputs(ctx context.Context, stack string) (stackOutputs, error) {
	var so stackOutputs
	out, err := pulumiCLI(ctx, stack, "stack output", "stack", "output", "--json", "--show-secrets")
	if err != nil {
		return so, err
	}
	if err := json.Unmarshal(out, &so); err != nil {
		return so, fmt.Errorf("parse outputs of stack %s: %w", stack, err)
	}
	return so, nil
}

// stackOptions runs the pulumi CLI for the stack's outputs. An explicit
// --addr, --user or password source overrides the stack's values.
func (c *connFlags) stackOptions(ctx context.Context, password string) (*redis.Options, error) {
	so, err := readStackOutputs(ctx, c.stack)
	if err != nil {
		return nil, err
	}
	port := strings.Trim(string(so.RedisPort), `"`)
	if so.RedisHost == "" || port == "" {
		return nil, fmt.Errorf("stack %s has no redisHost/redisPort outputs", c.stack)
	}
	if _, err := strconv.Atoi(port); err != nil {
		return nil, fmt.Errorf("stack %s: redisPort %q is not a number", c.stack, port)
	}
	o := &redis.Options{Addr: net.JoinHostPort(so.RedisHost, port), Username: c.user, Password: so.OpsPassword}
	if so.RedisHostAddress != "" {
		o.Addr = so.RedisHostAddress
	}
	if c.set["addr"] {
		if err := checkAddr(c.addr); err != nil {
			return nil, err
		}
		o.Addr = c.addr
	}
	if password != "" {
		o.Password = password
	}
	return o, nil
}

// connect resolves the options, opens a client and PINGs it; the error is
// classified by exitCode (unreachable, auth, loading).
func (c *connFlags) connect(ctx context.Context, e *env) (*redis.Client, error) {
	o, err := c.options(ctx, e)
	if err != nil {
		return nil, err
	}
	client := redis.NewClient(o)
	// MISCONF (a failing save) refuses PING but the connection is
	// authenticated and reads work: callers report it from INFO.
	if err := client.Ping(ctx).Err(); err != nil && classify(err) != ExitPersistence {
		_ = client.Close()
		return nil, fmt.Errorf("connect to %s as %s: %w", o.Addr, o.Username, err)
	}
	return client, nil
}

// classify maps a Redis or network error to an exit code.
func classify(err error) int {
	msg := err.Error()
	var opErr *net.OpError
	var dnsErr *net.DNSError
	switch {
	case strings.Contains(msg, "WRONGPASS"), strings.Contains(msg, "NOAUTH"), strings.Contains(msg, "NOPERM"):
		return ExitAuth
	case strings.Contains(msg, "LOADING"):
		return ExitLoading
	case strings.Contains(msg, "MISCONF"):
		return ExitPersistence
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET),
		errors.As(err, &opErr), errors.As(err, &dnsErr):
		return ExitUnreachable
	}
	return ExitError
}
