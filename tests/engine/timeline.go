package engine

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto/events"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
)

// Step is what the engine did to one resource during a deploy: its operation, and when the step
// began (ResourcePreEvent) and ended (ResOutputsEvent), from the start of the deploy.
type Step struct {
	URN, Type, Name, Op string
	Start, End          time.Duration
}

// Took is the step's own duration.
func (s Step) Took() time.Duration { return s.End - s.Start }

// Timeline is a deploy's steps as the engine's event stream reported them, in the order they ended.
// The events carry whole-second timestamps only, so each is timed when it reaches the test.
type Timeline struct {
	// Wall is the deploy's wall time (the Automation API call).
	Wall time.Duration
	// Steps are the resources the deploy created, replaced or updated (not the unchanged ones).
	Steps []Step
	// Changes is the engine's summary of the deploy: the number of resources by operation.
	Changes *map[string]int

	begun time.Time
	start map[string]Step
	done  chan struct{}
	mu    sync.Mutex
}

// watch returns the channel for optup.EventStreams and the timeline it fills; each step is also logged
// under EMAILCLIENT_ENGINE_PROGRESS.
func (p *Project) watch() (chan<- events.EngineEvent, *Timeline) {
	ch := make(chan events.EngineEvent)
	tl := &Timeline{begun: time.Now(), start: map[string]Step{}, done: make(chan struct{})}
	log := p.progress("event")
	go func() {
		defer close(tl.done)
		for e := range ch {
			at := time.Since(tl.begun)
			switch {
			case e.ResourcePreEvent != nil && !e.ResourcePreEvent.Planning:
				m := e.ResourcePreEvent.Metadata
				if m.Op == apitype.OpSame || m.Op == apitype.OpRead {
					continue
				}
				tl.mu.Lock()
				tl.start[m.URN] = Step{URN: m.URN, Type: m.Type, Name: urnName(m.URN), Op: string(m.Op), Start: at}
				tl.mu.Unlock()
			case e.ResOutputsEvent != nil && !e.ResOutputsEvent.Planning:
				m := e.ResOutputsEvent.Metadata
				tl.mu.Lock()
				s, ok := tl.start[m.URN]
				if ok {
					s.End = at
					tl.Steps = append(tl.Steps, s)
				}
				tl.mu.Unlock()
				if ok {
					fmt.Fprintf(log, "%-7s %-38s %-34s %5.1fs -> %5.1fs (%.1fs)\n", s.Op, s.Type, s.Name, s.Start.Seconds(), s.End.Seconds(), s.Took().Seconds())
				}
			case e.DiagnosticEvent != nil && e.DiagnosticEvent.Severity == "error":
				fmt.Fprintf(log, "error: %s\n", strings.TrimSpace(e.DiagnosticEvent.Message))
			}
		}
	}()
	return ch, tl
}

// wait returns once the event stream is closed (the Automation API closes it when the operation ends).
func (tl *Timeline) wait() {
	select {
	case <-tl.done:
	case <-time.After(10 * time.Second):
		fmt.Fprintln(os.Stderr, "engine: the event stream did not close within 10s of the operation's end")
	}
}

// urnName is the resource name at the end of a URN.
func urnName(urn string) string {
	if i := strings.LastIndex(urn, "::"); i >= 0 {
		return urn[i+2:]
	}
	return urn
}

// CriticalPath is the chain of steps that held the deploy up: from the step that ended last, each
// step's predecessor is the dependency (or parent) that ended last before it began. deployment is the
// state after the deploy (Project.Export), which records every resource's dependencies.
func (tl *Timeline) CriticalPath(deployment apitype.UntypedDeployment) ([]Step, error) {
	var d apitype.DeploymentV3
	if err := json.Unmarshal(deployment.Deployment, &d); err != nil {
		return nil, fmt.Errorf("deployment: %w", err)
	}
	deps := map[string][]string{}
	for _, r := range d.Resources {
		for _, u := range r.Dependencies {
			deps[string(r.URN)] = append(deps[string(r.URN)], string(u))
		}
		if r.Parent != "" {
			deps[string(r.URN)] = append(deps[string(r.URN)], string(r.Parent))
		}
	}
	// Only what a provider did counts as a step: a component's or the stack's own "step" spans its
	// children's, and a provider's is its configuration.
	custom := map[string]bool{}
	for _, r := range d.Resources {
		custom[string(r.URN)] = r.Custom && !strings.HasPrefix(string(r.Type), "pulumi:providers:")
	}
	steps := map[string]Step{}
	var last Step
	for _, s := range tl.Steps {
		if custom[s.URN] {
			steps[s.URN] = s
			if s.End > last.End {
				last = s
			}
		}
	}
	if len(steps) == 0 {
		return nil, nil
	}
	path := []Step{last}
	for cur := last; ; {
		var prev *Step
		seen := map[string]bool{cur.URN: true}
		var walk func(urn string)
		walk = func(urn string) { // through components, which have no step of their own
			for _, u := range deps[urn] {
				if seen[u] {
					continue
				}
				seen[u] = true
				if s, ok := steps[u]; ok {
					if s.End <= cur.Start+50*time.Millisecond && (prev == nil || s.End > prev.End) {
						s := s
						prev = &s
					}
				} else {
					walk(u)
				}
			}
		}
		walk(cur.URN)
		if prev == nil {
			break
		}
		path = append(path, *prev)
		cur = *prev
	}
	sort.Slice(path, func(i, j int) bool { return path[i].Start < path[j].Start })
	return path, nil
}

// Describe is the deploy's critical path in one line: the time before the first step (the program
// compiled and started), then each step of the path with its share of the wall time.
func (tl *Timeline) Describe(deployment apitype.UntypedDeployment) string {
	path, err := tl.CriticalPath(deployment)
	if err != nil || len(path) == 0 {
		return fmt.Sprintf("no critical path (%v)", err)
	}
	wall := tl.Wall.Seconds()
	share := func(d time.Duration) string { return fmt.Sprintf("%.1fs (%.0f%%)", d.Seconds(), 100*d.Seconds()/wall) }
	parts := []string{"program compiled and started " + share(path[0].Start)}
	for _, s := range path {
		parts = append(parts, s.Op+" "+s.Name+" "+share(s.Took()))
	}
	return fmt.Sprintf("wall %.1fs; critical path: %s", wall, strings.Join(parts, " -> "))
}
