package ops

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/emailclient/emailclient-infra/components/redisconf"
	"github.com/emailclient/emailclient-infra/deployment/dockerexec"
)

// engine is what restore needs from the Docker engine the stack runs on. dockerEngine implements it
// with the Docker client library; the unit tests use a fake that runs redis-server processes and a
// local directory as /data.
type engine interface {
	// host is the engine's address, as printed in the undo commands.
	host() string
	// inspect returns the container called name, or an error satisfying errdefs.IsNotFound
	// (client.IsErrNotFound) when there is none.
	inspect(ctx context.Context, name string) (ctrInfo, error)
	// stop stops c with its own stop timeout (no-op when it is not running).
	stop(ctx context.Context, c ctrInfo) error
	// start starts c (no-op when it is running).
	start(ctx context.Context, c ctrInfo) error
	// exec runs cmd in the running container c as its user and returns the stdout; a non-zero exit
	// is an error carrying the stderr.
	exec(ctx context.Context, c ctrInfo, cmd ...string) (string, error)
	// inData runs script with /bin/sh in a short-lived helper container that mounts c's /data at
	// /data (its working directory), after copying file (when not "") into /data as fileName; it
	// returns the script's stdout, and removes the helper.
	inData(ctx context.Context, c ctrInfo, file, fileName, script string, args ...string) (string, error)
	// copyOut copies the file at src in container c (running or not) into dir.
	copyOut(ctx context.Context, c ctrInfo, src, dir string) error
	// logs returns the last lines of c's log, for error messages.
	logs(ctx context.Context, c ctrInfo, lines int) string
	close() error
}

// ctrInfo is what restore reads from a container's inspect.
type ctrInfo struct {
	name, id string
	image    string // image ID: the helper container runs the same image
	user     string // uid:gid the container runs as
	running  bool
	// health is State.Health.Status ("starting", "healthy", "unhealthy"), "" without a healthcheck;
	// healthLog is the last probe's output.
	health, healthLog string
	exitCode          int
	// stopTimeout is Config.StopTimeout in seconds (nil: the engine's default, 10 s).
	stopTimeout *int
	// data is the mount at /data (Type "" when there is none).
	data mount.Mount
	// cmd is Config.Cmd: "node ..." or "sentinel ..." in a Sentinel topology.
	cmd []string
}

// stopTimeoutText is the stop timeout as printed.
func (c ctrInfo) stopTimeoutText() string {
	if c.stopTimeout == nil {
		return "engine default"
	}
	return fmt.Sprintf("%ds", *c.stopTimeout)
}

// dataSpec is the -v source of c's /data mount: a volume name or a host path.
func (c ctrInfo) dataSpec() string { return c.data.Source }

// dockerEngine is an engine reached with the Docker client library.
type dockerEngine struct{ cli *client.Client }

// pingTimeout bounds the first request to the engine.
const pingTimeout = 15 * time.Second

// dialDocker connects to the engine at host ("" = DOCKER_HOST and DOCKER_CERT_PATH/DOCKER_TLS_VERIFY,
// else the default socket) and pings it; failures carry ExitEngine. ssh:// engines are refused: the
// client library has no ssh transport (the docker CLI runs ssh for it), so forward the socket.
func dialDocker(ctx context.Context, host string) (engine, error) {
	if rest, ok := strings.CutPrefix(host, "ssh://"); ok {
		return nil, withCode(ExitEngine, fmt.Errorf("Docker engine %s: redis-ops talks to unix:// and tcp:// engines only; "+
			"forward the remote socket and pass it: ssh -nNT -L /tmp/redis-ops-docker.sock:/var/run/docker.sock %s & "+
			"then --docker-host unix:///tmp/redis-ops-docker.sock (or run redis-ops on that host)", host, rest))
	}
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, withCode(ExitEngine, fmt.Errorf("Docker engine %q: %w", host, err))
	}
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	if _, err := cli.Ping(pctx); err != nil {
		_ = cli.Close()
		return nil, withCode(ExitEngine, fmt.Errorf("no Docker engine reachable at %s (the stack's docker:host, --docker-host, DOCKER_HOST or the default socket): %w", cli.DaemonHost(), err))
	}
	return &dockerEngine{cli: cli}, nil
}

func (d *dockerEngine) host() string { return d.cli.DaemonHost() }
func (d *dockerEngine) close() error { return d.cli.Close() }

func (d *dockerEngine) inspect(ctx context.Context, name string) (ctrInfo, error) {
	in, err := d.cli.ContainerInspect(ctx, name)
	if err != nil {
		return ctrInfo{}, err
	}
	c := ctrInfo{name: strings.TrimPrefix(in.Name, "/"), id: in.ID, image: in.Image}
	if in.Config != nil {
		c.user, c.stopTimeout, c.cmd = in.Config.User, in.Config.StopTimeout, in.Config.Cmd
	}
	if st := in.State; st != nil {
		c.running, c.exitCode = st.Running || st.Restarting, st.ExitCode
		if h := st.Health; h != nil {
			c.health = h.Status
			if n := len(h.Log); n > 0 {
				c.healthLog = strings.TrimSpace(h.Log[n-1].Output)
			}
		}
	}
	for _, m := range in.Mounts {
		if m.Destination != redisconf.DataDir {
			continue
		}
		switch m.Type {
		case mount.TypeVolume:
			c.data = mount.Mount{Type: mount.TypeVolume, Source: m.Name, Target: redisconf.DataDir}
		case mount.TypeBind:
			c.data = mount.Mount{Type: mount.TypeBind, Source: m.Source, Target: redisconf.DataDir}
		}
	}
	return c, nil
}

func (d *dockerEngine) stop(ctx context.Context, c ctrInfo) error {
	if err := d.cli.ContainerStop(ctx, c.id, container.StopOptions{Timeout: c.stopTimeout}); err != nil {
		return fmt.Errorf("stop %s: %w", c.name, err)
	}
	return nil
}

func (d *dockerEngine) start(ctx context.Context, c ctrInfo) error {
	if err := d.cli.ContainerStart(ctx, c.id, container.StartOptions{}); err != nil {
		return fmt.Errorf("start %s: %w", c.name, err)
	}
	return nil
}

func (d *dockerEngine) exec(ctx context.Context, c ctrInfo, cmd ...string) (string, error) {
	out, err := dockerexec.Output(ctx, d.cli, c.id, cmd...)
	if err != nil {
		return out, fmt.Errorf("exec in %s: %w", c.name, err)
	}
	return out, nil
}

// helperName is the helper container of c: a fixed name, so that a run removes the helper an
// interrupted run left behind.
func helperName(c ctrInfo) string { return c.name + "-restore-helper" }

// helperLabel marks the helper containers (value: the Redis container's name).
const helperLabel = "emailclient.restore-helper"

func (d *dockerEngine) inData(ctx context.Context, c ctrInfo, file, fileName, script string, args ...string) (out string, err error) {
	if c.data.Type == "" {
		return "", fmt.Errorf("%s has no mount at %s", c.name, redisconf.DataDir)
	}
	name := helperName(c)
	if err := d.removeHelper(ctx, name); err != nil {
		return "", err
	}
	created, err := d.cli.ContainerCreate(ctx, &container.Config{
		Image:           c.image,
		User:            c.user,
		WorkingDir:      redisconf.DataDir,
		Entrypoint:      []string{"/bin/sh", "-c"},
		Cmd:             append([]string{script, "sh"}, args...),
		Labels:          map[string]string{helperLabel: c.name},
		NetworkDisabled: true,
	}, &container.HostConfig{
		Mounts:      []mount.Mount{c.data},
		NetworkMode: "none",
		CapDrop:     []string{"ALL"},
		SecurityOpt: []string{"no-new-privileges:true"},
	}, nil, nil, name)
	if err != nil {
		return "", fmt.Errorf("create helper container %s from %s's image: %w", name, c.name, err)
	}
	defer func() {
		if rerr := d.removeHelper(context.WithoutCancel(ctx), created.ID); rerr != nil && err == nil {
			err = rerr
		}
	}()
	if file != "" {
		if err := d.copyIn(ctx, created.ID, c.user, file, fileName); err != nil {
			return "", err
		}
	}
	if err := d.cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		return "", fmt.Errorf("start helper container %s: %w", name, err)
	}
	waitC, errC := d.cli.ContainerWait(ctx, created.ID, container.WaitConditionNotRunning)
	var code int64
	select {
	case w := <-waitC:
		code = w.StatusCode
	case err := <-errC:
		return "", fmt.Errorf("wait for helper container %s: %w", name, err)
	}
	rc, err := d.cli.ContainerLogs(ctx, created.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return "", fmt.Errorf("logs of helper container %s: %w", name, err)
	}
	defer rc.Close()
	var stdout, stderr bytes.Buffer
	if _, err := stdcopy.StdCopy(&stdout, &stderr, rc); err != nil {
		return "", fmt.Errorf("logs of helper container %s: %w", name, err)
	}
	if code != 0 {
		return stdout.String(), fmt.Errorf("helper container in %s's /data: exit %d: %s", c.name, code, dockerexec.FirstLines(stderr.String(), 3))
	}
	return stdout.String(), nil
}

// removeHelper removes a helper container (by name or ID), if there is one.
func (d *dockerEngine) removeHelper(ctx context.Context, ref string) error {
	err := d.cli.ContainerRemove(ctx, ref, container.RemoveOptions{Force: true})
	if err != nil && !client.IsErrNotFound(err) {
		return fmt.Errorf("remove helper container %s: %w", ref, err)
	}
	return nil
}

// copyIn streams the local file into /data of the created helper as name (a tar of one file),
// owned by user, the Redis container's. A numeric uid:gid goes into the tar header (the engine
// keeps it); a user name is left to the engine to resolve in the image (CopyUIDGID), which
// Docker 20.10 cannot do for numeric ids ("getent unable to find entry").
func (d *dockerEngine) copyIn(ctx context.Context, id, user, file, name string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	hdr := &tar.Header{Name: name, Mode: 0o600, Size: st.Size(), ModTime: st.ModTime(), Typeflag: tar.TypeReg}
	uid, gid, numeric := numericUser(user)
	hdr.Uid, hdr.Gid = uid, gid
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := tw.WriteHeader(hdr)
		if err == nil {
			_, err = io.Copy(tw, f)
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	if err := d.cli.CopyToContainer(ctx, id, redisconf.DataDir, pr, container.CopyToContainerOptions{CopyUIDGID: !numeric}); err != nil {
		_ = pr.CloseWithError(err)
		return fmt.Errorf("copy %s into the helper's %s: %w", filepath.Base(file), redisconf.DataDir, err)
	}
	return nil
}

// numericUser parses "uid:gid" (or "uid", gid 0); numeric is false for anything else.
func numericUser(user string) (uid, gid int, numeric bool) {
	u, g, _ := strings.Cut(user, ":")
	uid, err1 := strconv.Atoi(u)
	gid, err2 := strconv.Atoi(g)
	if g == "" {
		gid, err2 = 0, nil
	}
	return uid, gid, err1 == nil && err2 == nil
}

func (d *dockerEngine) copyOut(ctx context.Context, c ctrInfo, src, dir string) error {
	rc, _, err := d.cli.CopyFromContainer(ctx, c.id, src)
	if err != nil {
		return fmt.Errorf("copy %s out of %s: %w", src, c.name, err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	h, err := tr.Next()
	if err != nil {
		return fmt.Errorf("copy %s out of %s: %w", src, c.name, err)
	}
	if h.Typeflag != tar.TypeReg {
		return fmt.Errorf("copy %s out of %s: not a regular file", src, c.name)
	}
	f, err := os.OpenFile(filepath.Join(dir, path.Base(src)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, tr); err != nil {
		f.Close()
		return fmt.Errorf("copy %s out of %s: %w", src, c.name, err)
	}
	return f.Close()
}

func (d *dockerEngine) logs(ctx context.Context, c ctrInfo, lines int) string {
	rc, err := d.cli.ContainerLogs(ctx, c.id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: fmt.Sprint(lines)})
	if err != nil {
		return "(logs: " + err.Error() + ")"
	}
	defer rc.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, rc); err != nil && !errors.Is(err, io.EOF) {
		return "(logs: " + err.Error() + ")"
	}
	return strings.TrimSpace(out.String())
}
