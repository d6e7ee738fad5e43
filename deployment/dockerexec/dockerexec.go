// Package dockerexec runs a command in a running container through the Docker Engine API (what
// `docker exec` does), for the program's question to the Sentinels at deploy time (stacks.LivePrimary)
// and for `redis-ops restore` (deployment/ops). Nothing here prints a command line: callers pass no
// secret in cmd (the containers read their passwords from files).
package dockerexec

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
)

// ExitError is a command that ran and exited with a non-zero status.
type ExitError struct {
	Code   int
	Output string // stderr, then stdout
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("exit %d: %s", e.Code, FirstLines(e.Output, 3))
}

// Output runs cmd in the container ctr (a name or id) and returns its stdout. A non-zero exit
// returns the stdout too, with an *ExitError.
func Output(ctx context.Context, cli *client.Client, ctr string, cmd ...string) (string, error) {
	created, err := cli.ContainerExecCreate(ctx, ctr, container.ExecOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return "", err
	}
	att, err := cli.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return "", err
	}
	defer att.Close()
	var stdout, stderr bytes.Buffer
	if _, err := stdcopy.StdCopy(&stdout, &stderr, att.Reader); err != nil {
		return "", err
	}
	ins, err := cli.ContainerExecInspect(ctx, created.ID)
	if err != nil {
		return "", err
	}
	if ins.ExitCode != 0 {
		return stdout.String(), &ExitError{Code: ins.ExitCode, Output: stderr.String() + stdout.String()}
	}
	return stdout.String(), nil
}

// FirstLines is the first n non-empty lines of s, trimmed and joined with " | ".
func FirstLines(s string, n int) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && len(out) < n {
			out = append(out, l)
		}
	}
	return strings.Join(out, " | ")
}
