// Package proc runs one test process in its own process group and tracks its exit: the part the
// redis-server, Sentinel and Celery worker harnesses share.
package proc

import (
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Proc is the current process of a harness; the zero value has none. Safe for concurrent use.
type Proc struct {
	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
}

// Start starts cmd in a new process group (so that signals reach its children too) and records its
// exit. The previous process, if any, must have exited.
func (p *Proc) Start(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done, p.waitErr = cmd, done, nil
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// Pid is the current process's id, or 0 when none was started.
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Done is closed when the current process has exited; nil when none was started.
func (p *Proc) Done() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// WaitErr is the exit error of the last process that exited.
func (p *Proc) WaitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// Running reports whether the current process is alive.
func (p *Proc) Running() bool {
	done := p.Done()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Signal sends sig to the process group and waits up to grace for the process to exit; then whatever
// is left of the group is killed, and Signal returns once the process has exited.
func (p *Proc) Signal(sig syscall.Signal, grace time.Duration) {
	pid, done := p.Pid(), p.Done()
	if pid == 0 || done == nil {
		return
	}
	select {
	case <-done:
	default:
		_ = syscall.Kill(-pid, sig)
		select {
		case <-done:
		case <-time.After(grace):
		}
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	<-done
}
