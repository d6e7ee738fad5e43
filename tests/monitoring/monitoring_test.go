// Package monitoring_test checks the alerts and dashboard of deployment/monitoring against the things
// they depend on, so that none of them drifts silently:
//   - promtool accepts the rules file and its unit tests pass (`promtool check rules`, `test rules`);
//   - every alert has a severity, summary, description and a runbook anchor that exists in
//     docs/OPERATIONS.md, and at least one firing and one quiet promtool test case;
//   - the alert table of docs/OPERATIONS.md ("Monitor and alert") lists exactly the rules' alerts;
//   - every metric the rules and the Grafana dashboard query is one that `redis-ops metrics` serves,
//     read from the exporter itself running against a real redis-server (the rules' pending group may
//     use series the exporter does not serve yet, as long as the rules file lists them).
//
// promtool comes from Debian's prometheus package; without it the promtool test skips with one line,
// or fails when EMAILCLIENT_REQUIRE_TIERS names the monitoring or the redis tier (see tests/tiers).
package monitoring_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/emailclient/emailclient-infra/components/redisconf"
	"github.com/emailclient/emailclient-infra/deployment/ops"
	"github.com/emailclient/emailclient-infra/stacks"
	"github.com/emailclient/emailclient-infra/tests/realredis"
	"github.com/emailclient/emailclient-infra/tests/redistest"
	"github.com/emailclient/emailclient-infra/tests/tiers"
)

// Paths from the repository root.
const (
	monitoringDir = "deployment/monitoring"
	rulesFile     = "redis-broker.rules.yml"
	rulesTestFile = "redis-broker.rules.test.yml"
	dashboardFile = "emailclient-redis.dashboard.json"
	operationsDoc = "docs/OPERATIONS.md"
	alertSection  = "## Monitor and alert"
)

// monitoringTier is the tier name of this package in EMAILCLIENT_REQUIRE_TIERS and the tier report.
const monitoringTier = "monitoring"

// pendingGroup is the rule group whose alerts may query series the exporter does not serve yet.
const pendingGroup = "emailclient-redis-broker-pending-metrics"

// dashboardRows are the rows the dashboard must have, in this order.
var dashboardRows = []string{"Overview", "Queue depth and age", "Throughput", "Memory against maxmemory", "Evictions",
	"Persistence", "Replication", "Backups"}

// repoRoot is the directory holding go.mod, found from the test's working directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := stacks.FindRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func readFile(t *testing.T, path ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(append([]string{repoRoot(t)}, path...)...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// requirePromtool returns promtool's path, or skips (one line) when it is not installed; it fails
// instead when EMAILCLIENT_REQUIRE_TIERS names the monitoring tier, or the redis tier, whose CI step
// installs promtool with redis-server.
func requirePromtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	missing := ""
	if err != nil {
		missing = "promtool not installed (apt-get install prometheus)"
	}
	tier := monitoringTier
	if missing != "" && !tiers.Required(monitoringTier) && tiers.Required(tiers.Redis) {
		tier = tiers.Redis
	}
	tiers.Require(t, tier, missing)
	return path
}

// TestPromtool runs `promtool check rules` on the rules file and `promtool test rules` on its tests.
func TestPromtool(t *testing.T) {
	promtool := requirePromtool(t)
	dir := filepath.Join(repoRoot(t), monitoringDir)
	for _, args := range [][]string{{"check", "rules", rulesFile}, {"test", "rules", rulesTestFile}} {
		t.Run(strings.Join(args[:2], " "), func(t *testing.T) {
			cmd := exec.Command(promtool, args...)
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("promtool %s (in %s): %v\n%s", strings.Join(args, " "), monitoringDir, err, out)
			}
		})
	}
}

// ruleFile is the part of a Prometheus rules file the checks read.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
	group       string
}

// loadRules returns the rules of the rules file, in file order, with their group.
func loadRules(t *testing.T) []rule {
	t.Helper()
	var f ruleFile
	if err := yaml.Unmarshal(readFile(t, monitoringDir, rulesFile), &f); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	var rules []rule
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			r.group = g.Name
			rules = append(rules, r)
		}
	}
	if len(rules) == 0 {
		t.Fatalf("%s: no rules", rulesFile)
	}
	return rules
}

// alerts returns the alerting rules by name.
func alerts(t *testing.T) map[string]rule {
	t.Helper()
	out := map[string]rule{}
	for _, r := range loadRules(t) {
		if r.Alert == "" {
			continue
		}
		if _, dup := out[r.Alert]; dup {
			t.Errorf("alert %s is defined twice", r.Alert)
		}
		out[r.Alert] = r
	}
	return out
}

// runbookAnchor is the anchor of an alert's row in docs/OPERATIONS.md.
func runbookAnchor(alert string) string { return "alert-" + strings.ToLower(alert) }

// promDuration is a Prometheus duration such as 1m, 26h or 1h30m.
var promDuration = regexp.MustCompile(`^([0-9]+(ms|s|m|h|d|w|y))+$`)

// TestAlertsDocumentedAndTested: every alert has a for: duration, a severity, summary, description and
// a runbook anchor present in the guide, and a firing and a quiet promtool case.
func TestAlertsDocumentedAndTested(t *testing.T) {
	rules := alerts(t)
	doc := string(readFile(t, operationsDoc))
	for name, r := range rules {
		if !promDuration.MatchString(r.For) {
			t.Errorf("%s: for: %q, want a duration such as 5m", name, r.For)
		}
		if s := r.Labels["severity"]; s != "critical" && s != "warning" {
			t.Errorf("%s: label severity %q, want critical or warning", name, s)
		}
		for _, a := range []string{"summary", "description"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("%s: annotation %s missing", name, a)
			}
		}
		runbook := r.Annotations["runbook_url"]
		if runbook == "" {
			runbook = r.Annotations["runbook"]
		}
		want := operationsDoc + "#" + runbookAnchor(name)
		if !strings.HasSuffix(runbook, want) {
			t.Errorf("%s: runbook %q, want it to end in %s", name, runbook, want)
		}
		if !strings.Contains(doc, `id="`+runbookAnchor(name)+`"`) {
			t.Errorf("%s: %s has no anchor id=%q for the runbook", name, operationsDoc, runbookAnchor(name))
		}
	}

	var tf struct {
		RuleFiles []string `yaml:"rule_files"`
		Tests     []struct {
			AlertRuleTest []struct {
				Alertname string      `yaml:"alertname"`
				EvalTime  string      `yaml:"eval_time"`
				ExpAlerts []yaml.Node `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(readFile(t, monitoringDir, rulesTestFile), &tf); err != nil {
		t.Fatalf("%s: %v", rulesTestFile, err)
	}
	if !slices.Contains(tf.RuleFiles, rulesFile) {
		t.Errorf("%s: rule_files %v does not name %s", rulesTestFile, tf.RuleFiles, rulesFile)
	}
	firing, quiet := map[string]int{}, map[string]int{}
	for _, g := range tf.Tests {
		for _, c := range g.AlertRuleTest {
			if _, ok := rules[c.Alertname]; !ok {
				t.Errorf("%s: a case at %s tests %q, which is not an alert of %s", rulesTestFile, c.EvalTime, c.Alertname, rulesFile)
			}
			if len(c.ExpAlerts) > 0 {
				firing[c.Alertname]++
			} else {
				quiet[c.Alertname]++
			}
		}
	}
	for _, name := range sortedKeys(rules) {
		if firing[name] == 0 {
			t.Errorf("%s: no case where %s fires (alert_rule_test with exp_alerts)", rulesTestFile, name)
		}
		if quiet[name] == 0 {
			t.Errorf("%s: no case where %s stays quiet (alert_rule_test without exp_alerts)", rulesTestFile, name)
		}
	}
}

// alertTable returns the rows of the alert table in the guide's "Monitor and alert" section: alert
// name -> the row's cells.
func alertTable(t *testing.T, doc string) map[string][]string {
	t.Helper()
	start := strings.Index(doc, "\n"+alertSection+"\n")
	if start < 0 {
		t.Fatalf("%s: no %q section", operationsDoc, alertSection)
	}
	section := doc[start+len(alertSection)+2:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	nameCell := regexp.MustCompile("^(?:<a id=\"([^\"]+)\"></a>)?`([A-Za-z0-9]+)`$")
	rows := map[string][]string{}
	inTable := false
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "|") {
			if inTable {
				break // the first table of the section only
			}
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if !inTable {
			inTable = true
			if cells[0] != "alert" {
				t.Fatalf("%s: the first table of %q starts with %q, want the alert table (| alert | severity | ...)", operationsDoc, alertSection, line)
			}
			continue
		}
		if strings.Trim(cells[0], "-: ") == "" {
			continue // the separator row
		}
		m := nameCell.FindStringSubmatch(cells[0])
		if m == nil {
			t.Errorf("%s: alert table row %q: first cell is not <a id=\"alert-...\"></a>`AlertName`", operationsDoc, line)
			continue
		}
		if m[1] != runbookAnchor(m[2]) {
			t.Errorf("%s: alert table row %s: anchor %q, want %q", operationsDoc, m[2], m[1], runbookAnchor(m[2]))
		}
		if _, dup := rows[m[2]]; dup {
			t.Errorf("%s: alert %s listed twice", operationsDoc, m[2])
		}
		rows[m[2]] = cells
	}
	return rows
}

// TestOperationsTableMatchesRules: the guide's alert table lists exactly the alerts of the rules file,
// with the same severity.
func TestOperationsTableMatchesRules(t *testing.T) {
	rules := alerts(t)
	rows := alertTable(t, string(readFile(t, operationsDoc)))
	for _, name := range sortedKeys(rules) {
		cells, ok := rows[name]
		if !ok {
			t.Errorf("%s: alert %s of %s is missing from the table in %q", operationsDoc, name, rulesFile, alertSection)
			continue
		}
		if len(cells) < 4 {
			t.Errorf("%s: row %s has %d cells, want alert | severity | what it means | what to do", operationsDoc, name, len(cells))
			continue
		}
		if sev := rules[name].Labels["severity"]; cells[1] != sev {
			t.Errorf("%s: row %s says severity %q, %s says %q", operationsDoc, name, cells[1], rulesFile, sev)
		}
	}
	for _, name := range sortedKeys(rows) {
		if _, ok := rules[name]; !ok {
			t.Errorf("%s: the table lists %s, which is not an alert of %s", operationsDoc, name, rulesFile)
		}
	}
}

// dashboard is the part of a Grafana dashboard the checks read.
type dashboard struct {
	Inputs []struct {
		Name     string `json:"name"`
		Type     string `json:"type"`
		PluginID string `json:"pluginId"`
	} `json:"__inputs"`
	SchemaVersion int     `json:"schemaVersion"`
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Datasource *datasource     `json:"datasource"`
			Query      json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	Targets    []struct {
		Datasource *datasource `json:"datasource"`
		Expr       string      `json:"expr"`
		RefID      string      `json:"refId"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's panels
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

const dsInput = "${DS_PROMETHEUS}"

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader(readFile(t, monitoringDir, dashboardFile)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// allPanels returns the dashboard's panels, those inside collapsed rows included.
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// dashboardQueries returns every PromQL expression of the dashboard: "where" -> expression.
func dashboardQueries(t *testing.T, d dashboard) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			out[fmt.Sprintf("panel %d %q target %s", p.ID, p.Title, tg.RefID)] = tg.Expr
		}
	}
	labelValues := regexp.MustCompile(`^\s*label_values\(\s*(.*?)\s*,\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			if err := json.Unmarshal(v.Query, &q.Query); err != nil {
				t.Errorf("%s: variable %s: query is neither a string nor an object: %s", dashboardFile, v.Name, v.Query)
				continue
			}
		}
		m := labelValues.FindStringSubmatch(q.Query)
		if m == nil {
			t.Errorf("%s: variable %s: query %q is not label_values(<expr>, <label>)", dashboardFile, v.Name, q.Query)
			continue
		}
		out["variable "+v.Name] = m[1]
	}
	return out
}

// TestDashboardShape: the dashboard imports with a Prometheus data source input, every query uses
// it, and the rows are the agreed ones.
func TestDashboardShape(t *testing.T) {
	d := loadDashboard(t)
	if d.SchemaVersion < 39 {
		t.Errorf("schemaVersion %d, want 39 or later", d.SchemaVersion)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q, title %q: both needed for a stable import", d.UID, d.Title)
	}
	if !slices.ContainsFunc(d.Inputs, func(in struct {
		Name     string `json:"name"`
		Type     string `json:"type"`
		PluginID string `json:"pluginId"`
	}) bool {
		return in.Name == "DS_PROMETHEUS" && in.Type == "datasource" && in.PluginID == "prometheus"
	}) {
		t.Errorf("__inputs has no DS_PROMETHEUS Prometheus data source: %+v", d.Inputs)
	}
	var rows []string
	ids := map[int]bool{}
	for _, p := range allPanels(d.Panels) {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			rows = append(rows, p.Title)
			continue
		}
		if len(p.Targets) > 0 && (p.Datasource == nil || p.Datasource.UID != dsInput) {
			t.Errorf("panel %q: datasource %+v, want uid %s", p.Title, p.Datasource, dsInput)
		}
		for _, tg := range p.Targets {
			if tg.Datasource != nil && tg.Datasource.UID != dsInput {
				t.Errorf("panel %q target %s: datasource uid %q, want %s", p.Title, tg.RefID, tg.Datasource.UID, dsInput)
			}
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q target %s: no expr", p.Title, tg.RefID)
			}
		}
	}
	for _, v := range d.Templating.List {
		if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != dsInput) {
			t.Errorf("variable %s: datasource %+v, want uid %s", v.Name, v.Datasource, dsInput)
		}
	}
	if !slices.Equal(rows, dashboardRows) {
		t.Errorf("rows %q, want %q", rows, dashboardRows)
	}
}

// TestQueriedMetricsAreServed: every metric in the dashboard's queries and in the rules' expressions
// is served by `redis-ops metrics`; the pending group's alerts may use unserved series, each listed in
// the rules file, and each such alert must still need one (else it belongs in the main group).
func TestQueriedMetricsAreServed(t *testing.T) {
	served := servedMetrics(t)

	d := loadDashboard(t)
	queries := dashboardQueries(t, d)
	for _, where := range sortedKeys(queries) {
		for _, name := range metricNames(queries[where]) {
			if !served[name] {
				t.Errorf("%s: %s queries %s, which redis-ops metrics does not serve (%s)", dashboardFile, where, name, queries[where])
			}
		}
	}

	rulesText := string(readFile(t, monitoringDir, rulesFile))
	for _, r := range loadRules(t) {
		name := r.Alert + r.Record
		var unserved []string
		for _, m := range metricNames(r.Expr) {
			if !served[m] {
				unserved = append(unserved, m)
			}
		}
		switch {
		case r.group != pendingGroup && len(unserved) > 0:
			t.Errorf("%s: %s uses %v, which redis-ops metrics does not serve; serve it, or move the alert to group %s and list the series there",
				rulesFile, name, unserved, pendingGroup)
		case r.group == pendingGroup && len(unserved) == 0:
			t.Errorf("%s: %s is in group %s but the exporter now serves all its series: move it to the main group", rulesFile, name, pendingGroup)
		}
		for _, m := range unserved {
			if !regexp.MustCompile(`(?m)^\s*#\s+` + regexp.QuoteMeta(m) + `\b`).MatchString(rulesText) {
				t.Errorf("%s: %s uses unserved %s, which the pending group's comment does not list", rulesFile, name, m)
			}
		}
	}
}

// servedMetrics starts `redis-ops metrics` against a real redis-server set up so that every
// conditional series appears (a maxmemory limit, keys, a Celery queue, a backup in --backup-dir),
// and against a real Sentinel topology (the replication and Sentinel series), scrapes both and
// returns the names of the series they serve.
func servedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	served := servedStandalone(t)
	for name := range servedSentinel(t) {
		served[name] = true
	}
	return served
}

// servedSentinel scrapes `redis-ops metrics --sentinels ...` once against a real Sentinel topology
// (tests/realredis) and returns the series names; the Sentinel and replication ones must be there.
func servedSentinel(t *testing.T) map[string]bool {
	t.Helper()
	top := realredis.StartSentinel(t, "dev", `{"mode":"sentinel"}`)
	var sentinels []string
	for _, s := range top.Sentinels {
		sentinels = append(sentinels, s.Addr())
	}
	t.Setenv("REDIS_SENTINEL_PASSWORD", top.Sentinel)
	t.Setenv("REDIS_PASSWORD", top.Ops)
	body, _ := scrapeExporter(t, "--user", redisconf.OpsUser, "--sentinels", strings.Join(sentinels, ","), "--master-name", top.Master)
	served, values := seriesNames(body)
	if values["redis_up"] != "1" || !served["redis_sentinel_config_epoch"] || !served["redis_replication_replica_lag_seconds"] {
		t.Fatalf("the exporter did not read the Sentinel topology (redis_up %q), so its series are incomplete\n%s", values["redis_up"], body)
	}
	return served
}

// servedStandalone scrapes the exporter against one redis-server with a backup directory.
func servedStandalone(t *testing.T) map[string]bool {
	t.Helper()
	const opsPassword, monitorPassword = "ops-test-pw", "monitor-test-pw"
	acl := redistest.WriteACLFile(t,
		"user default off",
		"user "+redisconf.OpsUser+" "+strings.Join(redisconf.ACLRules(redisconf.OpsUser), " ")+" >"+opsPassword,
		"user "+redisconf.MonitorUser+" "+strings.Join(redisconf.ACLRules(redisconf.MonitorUser), " ")+" >"+monitorPassword,
	)
	s := redistest.Start(t, redistest.Options{Args: append(acl, "--maxmemory", "64mb", "--appendonly", "yes")})
	client := s.Client(t, redisconf.OpsUser, opsPassword)
	ctx := context.Background()
	if err := client.LPush(ctx, "celery", `{"body":"e30=","headers":{"task":"t"}}`).Err(); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	passwordFile := func(pw string) string {
		f := filepath.Join(t.TempDir(), "password")
		if err := os.WriteFile(f, []byte(pw), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	var out, errOut bytes.Buffer
	if code := ops.Run(ctx, []string{"backup", "--dir", dir, "--addr", s.Addr(), "--user", redisconf.OpsUser,
		"--password-file", passwordFile(opsPassword)}, &out, &errOut); code != ops.ExitOK {
		t.Fatalf("redis-ops backup: exit %d\n%s%s", code, out.String(), errOut.String())
	}

	body, stderr := scrapeExporter(t, "--backup-dir", dir, "--addr", s.Addr(),
		"--user", redisconf.MonitorUser, "--password-file", passwordFile(monitorPassword))
	served, values := seriesNames(body)
	// The fixture must have reached every conditional branch, or a name would be missing for the
	// wrong reason: Redis readable, and a good backup found.
	if values["redis_up"] != "1" {
		t.Fatalf("redis_up = %q: the exporter could not read Redis, so its series are incomplete\n%s", values["redis_up"], stderr)
	}
	if !served["redis_backup_last_success_age_seconds"] {
		t.Fatalf("the exporter found no backup in --backup-dir, so its series are incomplete\n%s", body)
	}
	return served
}

// seriesNames returns the metric names of an exposition and the last value of each.
func seriesNames(body []byte) (map[string]bool, map[string]string) {
	served := map[string]bool{}
	values := map[string]string{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name := line[:strings.IndexAny(line, "{ ")]
		served[name] = true
		values[name] = line[strings.LastIndexByte(line, ' ')+1:]
	}
	return served, values
}

// scrapeExporter runs `redis-ops metrics` with args on a free port until the test ends, and returns
// its first successful /metrics body and its stderr so far.
func scrapeExporter(t *testing.T, args ...string) ([]byte, string) {
	t.Helper()
	port, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	listen := "127.0.0.1:" + strconv.Itoa(port)
	runCtx, cancel := context.WithCancel(context.Background())
	stderr := &redistest.SyncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- ops.Run(runCtx, append([]string{"metrics", "--listen", listen}, args...), io.Discard, stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("redis-ops metrics did not stop within 10s of its context's end")
		}
	})

	var body []byte
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case code := <-done:
			t.Fatalf("redis-ops metrics exited %d before serving:\n%s", code, stderr.String())
		default:
		}
		resp, err := http.Get("http://" + listen + "/metrics")
		if err == nil {
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode == http.StatusOK {
				break
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-ops metrics on %s: %v\n%s", listen, err, stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return body, stderr.String()
}

// promqlKeywords are identifiers of PromQL that are not metric names when not followed by "(".
var promqlKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "by": true, "without": true,
	"on": true, "ignoring": true, "group_left": true, "group_right": true, "inf": true, "nan": true,
}

// aggregations are PromQL's aggregation operators, which may take their grouping before the
// parenthesised expression: sum by (queue) (x).
var aggregations = map[string]bool{"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true,
	"stdvar": true, "count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
	"limitk": true, "limit_ratio": true}

// groupingKeywords take a parenthesised label list, which holds label names, not metrics.
var groupingKeywords = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true,
	"group_left": true, "group_right": true}

// metricNames returns the metric names a PromQL expression selects (sorted, without duplicates):
// the identifiers outside label matchers, ranges, strings, label lists and Grafana variables that are
// neither keywords nor followed by "(" (functions and aggregations). It is a scanner, not a parser:
// enough for the expressions of this repository, and TestMetricNames pins what it understands.
func metricNames(expr string) []string {
	isIdentStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isIdent := func(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }
	// skipQuoted returns the index after the string literal starting at i.
	skipQuoted := func(i int) int {
		q := expr[i]
		for i++; i < len(expr); i++ {
			if expr[i] == '\\' && q != '`' {
				i++
			} else if expr[i] == q {
				return i + 1
			}
		}
		return i
	}
	// skipTo returns the index after the closer matching the opener at i, skipping strings inside.
	skipTo := func(i int, open, close byte) int {
		depth := 0
		for i < len(expr) {
			switch c := expr[i]; {
			case c == '"' || c == '\'' || c == '`':
				i = skipQuoted(i)
				continue
			case c == open:
				depth++
			case c == close:
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	}
	nextNonSpace := func(i int) int {
		for i < len(expr) && strings.IndexByte(" \t\r\n", expr[i]) >= 0 {
			i++
		}
		return i
	}
	identAt := func(i int) string {
		j := i
		for j < len(expr) && isIdent(expr[j]) {
			j++
		}
		return strings.ToLower(expr[i:j])
	}
	seen := map[string]bool{}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipQuoted(i)
		case c == '{':
			i = skipTo(i, '{', '}')
		case c == '[':
			i = skipTo(i, '[', ']')
		case c == '#':
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case c == '$': // a Grafana variable: $name or ${name}
			i++
			if i < len(expr) && expr[i] == '{' {
				i = skipTo(i, '{', '}')
			}
			for i < len(expr) && isIdent(expr[i]) {
				i++
			}
		case c >= '0' && c <= '9' || c == '.': // numbers and durations: 0.9, 1e6, 0x1f, 5m
			for i < len(expr) && (isIdent(expr[i]) || expr[i] == '.') {
				i++
			}
		case isIdentStart(c):
			j := i
			for j < len(expr) && isIdent(expr[j]) {
				j++
			}
			word, next := expr[i:j], nextNonSpace(j)
			i = j
			switch {
			case groupingKeywords[strings.ToLower(word)]:
				if next < len(expr) && expr[next] == '(' {
					i = skipTo(next, '(', ')')
				}
			case promqlKeywords[strings.ToLower(word)]:
			case next < len(expr) && expr[next] == '(': // a function or an aggregation
			case aggregations[strings.ToLower(word)] && groupingKeywords[identAt(next)]: // sum by (x) (...)
			default:
				seen[word] = true
			}
		default:
			i++
		}
	}
	return sortedKeys(seen)
}

// TestMetricNames pins what metricNames extracts.
func TestMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`redis_up == 0`, []string{"redis_up"}},
		{`redis_rdb_last_bgsave_ok == 0 or redis_aof_last_write_ok == 0`, []string{"redis_aof_last_write_ok", "redis_rdb_last_bgsave_ok"}},
		{`increase(redis_evicted_keys_total{instance=~"$instance", job!="a{b}"}[10m]) > 0`, []string{"redis_evicted_keys_total"}},
		{`sum by (queue, instance) (rate(x_total[$__rate_interval])) * 60`, []string{"x_total"}},
		{`count by (master_name) (count by (master_name, primary) (info == 1)) > 1`, []string{"info"}},
		{"(a == 1 unless on (instance, job) (b <= 10))\nand on () (count(c) > 0)", []string{"a", "b", "c"}},
		{`a * on (x) group_left (y, z) b`, []string{"a", "b"}},
		{`a > bool 26 * 3600 offset 1h`, []string{"a"}},
		{`max_over_time(a[1h:5m]) > 1e6 and b > 0x1f # comment naming c`, []string{"a", "b"}},
		{`label_replace(a, "dst", "$1", "src", "(.*)")`, []string{"a"}},
		{`{__name__="a"}`, nil},
		{`vector(1) + Inf + NaN`, nil},
		{`sum without (job) (a)`, []string{"a"}},
		{`sum(bytes_total) by (x)`, []string{"bytes_total"}},
		{`a:recorded:rate5m`, []string{"a:recorded:rate5m"}},
	} {
		if got := metricNames(tc.expr); !slices.Equal(got, tc.want) {
			t.Errorf("metricNames(%q) = %q, want %q", tc.expr, got, tc.want)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
