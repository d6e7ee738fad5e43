// Package cipipeline_test checks the users' CI pipeline (.github/workflows/deploy.yml): valid YAML
// with the expected triggers and jobs, every `run:` command naming only things that exist in this
// repository (make targets, scripts), and no secret value written into the file.
package cipipeline_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const workflowPath = ".github/workflows/deploy.yml"

// repoRoot is the directory holding go.mod, found from the test's working directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// workflow is the part of a GitHub Actions workflow the checks read.
type workflow struct {
	Name string               `yaml:"name"`
	On   map[string]yaml.Node `yaml:"on"`
	Jobs map[string]job       `yaml:"jobs"`
}

type job struct {
	If          string            `yaml:"if"`
	Needs       yaml.Node         `yaml:"needs"`
	RunsOn      yaml.Node         `yaml:"runs-on"`
	Concurrency yaml.Node         `yaml:"concurrency"`
	Env         map[string]string `yaml:"env"`
	Steps       []step            `yaml:"steps"`
}

type step struct {
	Name  string            `yaml:"name"`
	Uses  string            `yaml:"uses"`
	Run   string            `yaml:"run"`
	With  map[string]string `yaml:"with"`
	Env   map[string]string `yaml:"env"`
	Shell string            `yaml:"shell"`
}

func loadWorkflow(t *testing.T, root string) (workflow, *yaml.Node, []byte) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, workflowPath))
	if err != nil {
		t.Fatalf("read %s: %v", workflowPath, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s is not valid YAML: %v", workflowPath, err)
	}
	var w workflow
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(false)
	if err := dec.Decode(&w); err != nil {
		t.Fatalf("%s does not decode as a workflow: %v", workflowPath, err)
	}
	return w, &doc, raw
}

func TestWorkflowTriggersAndJobs(t *testing.T) {
	root := repoRoot(t)
	w, _, _ := loadWorkflow(t, root)

	if w.Name == "" {
		t.Error("workflow has no name")
	}
	for _, event := range []string{"pull_request", "push"} {
		node, ok := w.On[event]
		if !ok {
			t.Errorf("on.%s: missing trigger", event)
			continue
		}
		var filter struct {
			Branches []string `yaml:"branches"`
		}
		if err := node.Decode(&filter); err != nil {
			t.Errorf("on.%s: %v", event, err)
		}
		if !contains(filter.Branches, "main") {
			t.Errorf("on.%s.branches = %v, want main in it", event, filter.Branches)
		}
	}
	if len(w.On) != 2 {
		t.Errorf("triggers = %v, want exactly pull_request and push", keys(w.On))
	}

	for _, name := range []string{"test", "preview", "deploy"} {
		j, ok := w.Jobs[name]
		if !ok {
			t.Fatalf("job %q missing (jobs: %v)", name, keys(w.Jobs))
		}
		if j.RunsOn.Value == "" && len(j.RunsOn.Content) == 0 {
			t.Errorf("job %s: no runs-on", name)
		}
		if len(j.Steps) == 0 {
			t.Errorf("job %s: no steps", name)
		}
		for i, s := range j.Steps {
			if (s.Uses == "") == (s.Run == "") {
				t.Errorf("job %s step %d (%q): want exactly one of uses and run", name, i, s.Name)
			}
		}
		if !usesAction(j, "actions/checkout@") {
			t.Errorf("job %s: no actions/checkout step", name)
		}
		if !usesAction(j, "actions/setup-go@") {
			t.Errorf("job %s: no actions/setup-go step", name)
		}
		for _, s := range j.Steps {
			if strings.HasPrefix(s.Uses, "actions/setup-go@") && s.With["go-version-file"] != "go.mod" {
				t.Errorf("job %s: setup-go with go-version-file %q, want go.mod", name, s.With["go-version-file"])
			}
		}
	}

	if !runs(w.Jobs["test"], "make unit") {
		t.Error("job test: does not run `make unit`")
	}

	preview, deploy := w.Jobs["preview"], w.Jobs["deploy"]
	if !strings.Contains(preview.If, "pull_request") {
		t.Errorf("job preview: if %q does not restrict it to pull requests", preview.If)
	}
	if !strings.Contains(deploy.If, "push") || !strings.Contains(deploy.If, "refs/heads/main") {
		t.Errorf("job deploy: if %q does not restrict it to pushes to main", deploy.If)
	}
	for name, j := range map[string]job{"preview": preview, "deploy": deploy} {
		if got := needs(j); !contains(got, "test") {
			t.Errorf("job %s: needs %v, want test", name, got)
		}
		if !usesAction(j, "pulumi/actions@") && !runs(j, "get.pulumi.com") {
			t.Errorf("job %s: installs no Pulumi CLI (pulumi/actions or the install script)", name)
		}
		if !runs(j, "bash deployment/scripts/deploy.sh preview prod") {
			t.Errorf("job %s: does not run `bash deployment/scripts/deploy.sh preview prod`", name)
		}
		if group := concurrencyGroup(t, j); group == "" {
			t.Errorf("job %s: no concurrency group", name)
		}
		for _, key := range []string{"PULUMI_CONFIG_PASSPHRASE", "PULUMI_ACCESS_TOKEN", "PULUMI_BACKEND_URL"} {
			if _, ok := j.Env[key]; !ok {
				t.Errorf("job %s: env %s not set", name, key)
			}
		}
	}
	if runs(preview, "deploy.sh up") {
		t.Error("job preview: runs `deploy.sh up` on a pull request")
	}
	if !runs(deploy, "bash deployment/scripts/deploy.sh up prod") {
		t.Error("job deploy: does not run `bash deployment/scripts/deploy.sh up prod`")
	}
	if g1, g2 := concurrencyGroup(t, preview), concurrencyGroup(t, deploy); g1 != g2 {
		t.Errorf("preview and deploy use concurrency groups %q and %q; one group keeps Pulumi operations on prod apart", g1, g2)
	}
	var cancel struct {
		CancelInProgress bool `yaml:"cancel-in-progress"`
	}
	_ = deploy.Concurrency.Decode(&cancel)
	if cancel.CancelInProgress {
		t.Error("job deploy: cancel-in-progress would interrupt a running `pulumi up`")
	}
}

// TestRunCommandsExist checks every `run:` block: bash accepts its syntax, and each command it runs
// is a known tool, a make target of the Makefile, or a script that exists in the repository.
func TestRunCommandsExist(t *testing.T) {
	root := repoRoot(t)
	w, _, _ := loadWorkflow(t, root)
	targets := makeTargets(t, root)
	n := 0
	for _, name := range sortedKeys(w.Jobs) {
		for i, s := range w.Jobs[name].Steps {
			if s.Run == "" {
				continue
			}
			n++
			where := name + " step " + itoa(i) + " (" + s.Name + ")"
			if s.Shell != "" && s.Shell != "bash" {
				t.Errorf("%s: shell %q; the checks assume bash", where, s.Shell)
			}
			if err := bashSyntax(s.Run); err != nil {
				t.Errorf("%s: bash -n: %v", where, err)
			}
			for _, problem := range checkScript(root, targets, s.Run) {
				t.Errorf("%s: %s", where, problem)
			}
		}
	}
	if n == 0 {
		t.Fatal("no run steps found")
	}
}

// TestNoSecretInlined checks that secrets reach the jobs only as ${{ secrets.X }} in env (never
// inside a run script, where they could be echoed or injected) and that no value looks like a
// credential.
func TestNoSecretInlined(t *testing.T) {
	root := repoRoot(t)
	w, doc, raw := loadWorkflow(t, root)
	for _, problem := range secretProblems(w, doc) {
		t.Error(problem)
	}
	// Every secrets.X referenced anywhere in the file is one of the documented ones.
	allowed := map[string]bool{"PULUMI_CONFIG_PASSPHRASE": true, "PULUMI_ACCESS_TOKEN": true}
	for _, m := range regexp.MustCompile(`secrets\.([A-Za-z_][A-Za-z0-9_]*)`).FindAllStringSubmatch(stripComments(string(raw)), -1) {
		if !allowed[m[1]] {
			t.Errorf("secret %s is referenced but not documented in the workflow header", m[1])
		}
	}
}

// TestCheckersCatchMistakes feeds the checkers broken input, so a passing run means something.
func TestCheckersCatchMistakes(t *testing.T) {
	root := repoRoot(t)
	targets := makeTargets(t, root)
	for _, tc := range []struct{ script, want string }{
		{"make deploy-prod", `make target "deploy-prod"`},
		{"make unit && make nosuch", `make target "nosuch"`},
		{"bash deployment/scripts/nosuch.sh up prod", "does not exist"},
		{"./deployment/ops/README.md", "not executable"},
		{"./deployment/scripts/deploy.sh up prod && ./nosuch.sh", "does not exist"},
		{"FOO=1 bash deployment/cmd/redis-ops/main.go", "neither a .sh"},
		{"rm -rf /", `command "rm"`},
		{"if [ -n \"$X\" ]; then\n  make lint\nfi\nmake nope", `make target "nope"`},
		{"echo ${{ secrets.PULUMI_ACCESS_TOKEN }}", "expression"},
	} {
		problems := strings.Join(checkScript(root, targets, tc.script), "\n")
		if !strings.Contains(problems, tc.want) {
			t.Errorf("checkScript(%q) = %q, want a problem containing %q", tc.script, problems, tc.want)
		}
	}
	for _, ok := range []string{"make unit", "bash deployment/scripts/deploy.sh preview prod",
		"if [ -z \"$A\" ]; then\n  echo \"::error::x\"\n  exit 1\nfi", "echo \"A=b\" >> \"$GITHUB_ENV\""} {
		if problems := checkScript(root, targets, ok); len(problems) > 0 {
			t.Errorf("checkScript(%q) = %v, want none", ok, problems)
		}
	}

	bad := `
on: {push: {branches: [main]}}
jobs:
  deploy:
    runs-on: ubuntu-latest
    env:
      PULUMI_CONFIG_PASSPHRASE: hunter2-correct-horse
      PULUMI_ACCESS_TOKEN: pul-0123456789abcdef0123456789abcdef01234567
    steps:
      - run: echo "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"
        env:
          REDIS_URL: redis://celery:s3cr3tpassw0rd@redis:6379/0
`
	var w workflow
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(bad), &w); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(bad), &doc); err != nil {
		t.Fatal(err)
	}
	problems := strings.Join(secretProblems(w, &doc), "\n")
	for _, want := range []string{"PULUMI_CONFIG_PASSPHRASE", "pul-", "redis://", "inside a run script"} {
		if !strings.Contains(problems, want) {
			t.Errorf("secretProblems of a bad workflow = %q, want one about %q", problems, want)
		}
	}
}

// ---- the checkers ----

var (
	// exprRe is a GitHub expression ${{ ... }}.
	exprRe = regexp.MustCompile(`\$\{\{[^}]*\}\}`)
	// secretRefRe is a value that is exactly one secret reference.
	secretRefRe = regexp.MustCompile(`^\$\{\{\s*secrets\.[A-Za-z_][A-Za-z0-9_]*\s*\}\}$`)
	// secretNameRe are env names that hold credentials.
	secretNameRe = regexp.MustCompile(`(?i)(PASSWORD|PASSPHRASE|TOKEN|SECRET|PRIVATE_KEY|ACCESS_KEY|CREDENTIAL)`)
	// credentialRes look like credentials wherever they appear.
	credentialRes = []*regexp.Regexp{
		regexp.MustCompile(`pul-[0-9a-f]{40}`),                             // Pulumi access token
		regexp.MustCompile(`gh[pousr]_[A-Za-z0-9]{30,}`),                   // GitHub token
		regexp.MustCompile(`AKIA[0-9A-Z]{16}`),                             // AWS access key id
		regexp.MustCompile(`-----BEGIN [A-Z ]*PRIVATE KEY-----`),           // private key
		regexp.MustCompile(`(redis|rediss|sentinel)://[^:@/\s]*:[^@\s]+@`), // URL with a password
	}
	// shellBuiltins and tools are the commands a run script may use besides make and repo scripts.
	shellBuiltins = map[string]bool{"echo": true, "printf": true, "exit": true, "test": true, "[": true, "true": true,
		"false": true, "export": true, "cd": true, "set": true, ":": true}
	tools = map[string]bool{"make": true, "bash": true, "go": true, "pulumi": true, "docker": true, "cat": true}
	// shellKeywords precede a command (if X; then Y; fi).
	shellKeywords = map[string]bool{"if": true, "then": true, "else": true, "elif": true, "fi": true, "do": true,
		"done": true, "while": true, "until": true, "!": true, "{": true, "}": true}
	assignRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)
)

// makeTargets are the targets defined in the Makefile.
func makeTargets(t *testing.T, root string) map[string]bool {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	targets := map[string]bool{}
	re := regexp.MustCompile(`^([A-Za-z0-9_./-]+(?:\s+[A-Za-z0-9_./-]+)*)\s*:([^=]|$)`)
	for _, line := range strings.Split(string(raw), "\n") {
		if m := re.FindStringSubmatch(line); m != nil {
			for _, name := range strings.Fields(m[1]) {
				if !strings.HasPrefix(name, ".") {
					targets[name] = true
				}
			}
		}
	}
	if !targets["unit"] || !targets["test"] {
		t.Fatalf("Makefile targets %v: parser found no unit/test", sortedKeys(targets))
	}
	return targets
}

// bashSyntax runs bash -n on a script, with GitHub expressions replaced by a word.
func bashSyntax(script string) error {
	cmd := exec.Command("bash", "-n", "-c", exprRe.ReplaceAllString(script, "EXPR"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return &syntaxError{msg: strings.TrimSpace(string(out))}
	}
	return nil
}

type syntaxError struct{ msg string }

func (e *syntaxError) Error() string { return e.msg }

// checkScript returns what is wrong with one run script: GitHub expressions inside it, commands that
// are not known tools, make targets missing from the Makefile, and scripts missing from the repository.
func checkScript(root string, targets map[string]bool, script string) []string {
	var problems []string
	if exprRe.MatchString(script) {
		problems = append(problems, "a ${{ }} expression inside a run script (pass values through env instead)")
	}
	for _, words := range commands(script) {
		// Leading keywords and variable assignments are not the command.
		for len(words) > 0 && (shellKeywords[words[0]] || assignRe.MatchString(words[0])) {
			words = words[1:]
		}
		if len(words) == 0 {
			continue
		}
		name, args := words[0], words[1:]
		switch {
		case name == "make":
			for _, a := range args {
				if strings.HasPrefix(a, "-") || strings.Contains(a, "=") {
					continue
				}
				if !targets[a] {
					problems = append(problems, "make target "+quote(a)+" is not in the Makefile")
				}
			}
		case name == "bash" || name == "sh":
			script := ""
			for _, a := range args {
				if !strings.HasPrefix(a, "-") {
					script = a
					break
				}
			}
			if script == "" {
				problems = append(problems, name+" without a script file")
				continue
			}
			problems = append(problems, checkPath(root, script, false)...)
		case strings.Contains(name, "/"):
			problems = append(problems, checkPath(root, name, true)...)
		case shellBuiltins[name] || tools[name]:
		default:
			problems = append(problems, "command "+quote(name)+" is neither a make target, a repository script nor a known tool")
		}
	}
	return problems
}

// checkPath checks a script path relative to the repository root: it must exist; run directly it must
// be executable; run with bash it must be a .sh file or executable.
func checkPath(root, path string, direct bool) []string {
	if filepath.IsAbs(path) || strings.Contains(path, "$") {
		return []string{"script " + quote(path) + " is not a path in the repository"}
	}
	info, err := os.Stat(filepath.Join(root, path))
	if err != nil || info.IsDir() {
		return []string{"script " + quote(path) + " does not exist in the repository"}
	}
	executable := info.Mode()&0o111 != 0
	switch {
	case direct && !executable:
		return []string{"script " + quote(path) + " is run directly but is not executable (run it with bash)"}
	case !direct && !executable && !strings.HasSuffix(path, ".sh"):
		return []string{"script " + quote(path) + " is neither a .sh file nor executable"}
	}
	return nil
}

// commands splits a script into simple commands (on newlines, ;, &&, || and |, after joining
// continuation lines and dropping comments and redirections) and each into words, unquoted.
func commands(script string) [][]string {
	script = strings.ReplaceAll(script, "\\\n", " ")
	var out [][]string
	for _, line := range strings.Split(script, "\n") {
		words := shellWords(line)
		var cur []string
		for i := 0; i < len(words); i++ {
			w := words[i]
			switch {
			case w == ";" || w == "&&" || w == "||" || w == "|":
				out = append(out, cur)
				cur = nil
			case w == ">" || w == ">>" || w == "<" || w == "2>" || w == "2>&1" || w == ">&2":
				if w != "2>&1" && w != ">&2" {
					i++ // the redirection target
				}
			default:
				cur = append(cur, w)
			}
		}
		out = append(out, cur)
	}
	return out
}

// shellWords is a small tokenizer: quotes group words, # starts a comment, operators are words.
func shellWords(line string) []string {
	var words []string
	var b strings.Builder
	inWord := false
	flush := func() {
		if inWord {
			words = append(words, b.String())
			b.Reset()
			inWord = false
		}
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\'' || c == '"':
			j := strings.IndexByte(line[i+1:], c)
			if j < 0 {
				j = len(line) - i - 1
			}
			b.WriteString(line[i+1 : i+1+j])
			inWord = true
			i += j + 1
		case c == '#' && !inWord:
			flush()
			return words
		case c == ' ' || c == '\t':
			flush()
		case c == ';' || c == '|' || c == '&' || c == '>' || c == '<':
			op := string(c)
			if i+1 < len(line) && (line[i+1] == c || (c == '>' && line[i+1] == '&')) {
				op += string(line[i+1])
				i++
				if op == ">&" && i+1 < len(line) {
					op += string(line[i+1])
					i++
				}
			}
			if inWord && b.String() == "2" && (op == ">" || op == ">>" || op == ">&1") {
				b.Reset()
				inWord = false
				op = "2" + op
			}
			flush()
			words = append(words, op)
		default:
			b.WriteByte(c)
			inWord = true
		}
	}
	flush()
	return words
}

// secretProblems finds inlined secrets: credential-named env values that are not exactly one
// ${{ secrets.X }}, secrets referenced inside run scripts, and credential-looking strings anywhere.
func secretProblems(w workflow, doc *yaml.Node) []string {
	var problems []string
	checkEnv := func(where string, env map[string]string) {
		for _, k := range sortedKeys(env) {
			v := strings.TrimSpace(env[k])
			if secretNameRe.MatchString(k) && v != "" && !secretRefRe.MatchString(v) {
				problems = append(problems, where+": env "+k+" is not a ${{ secrets.X }} reference")
			}
		}
	}
	for _, name := range sortedKeys(w.Jobs) {
		j := w.Jobs[name]
		checkEnv("job "+name, j.Env)
		for i, s := range j.Steps {
			where := "job " + name + " step " + itoa(i)
			checkEnv(where, s.Env)
			for k, v := range s.With {
				if secretNameRe.MatchString(k) && strings.TrimSpace(v) != "" && !secretRefRe.MatchString(strings.TrimSpace(v)) {
					problems = append(problems, where+": with."+k+" is not a ${{ secrets.X }} reference")
				}
			}
			if strings.Contains(s.Run, "secrets.") {
				problems = append(problems, where+": a secret referenced inside a run script (use env)")
			}
		}
	}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.ScalarNode {
			for _, re := range credentialRes {
				if m := re.FindString(n.Value); m != "" {
					problems = append(problems, "line "+itoa(n.Line)+": credential-like value "+quote(redact(m)))
				}
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(doc)
	return problems
}

// ---- helpers ----

func usesAction(j job, prefix string) bool {
	for _, s := range j.Steps {
		if strings.HasPrefix(s.Uses, prefix) {
			return true
		}
	}
	return false
}

func runs(j job, fragment string) bool {
	for _, s := range j.Steps {
		if strings.Contains(s.Run, fragment) {
			return true
		}
	}
	return false
}

func needs(j job) []string {
	switch j.Needs.Kind {
	case yaml.ScalarNode:
		return []string{j.Needs.Value}
	case yaml.SequenceNode:
		var out []string
		for _, c := range j.Needs.Content {
			out = append(out, c.Value)
		}
		return out
	}
	return nil
}

func concurrencyGroup(t *testing.T, j job) string {
	switch j.Concurrency.Kind {
	case yaml.ScalarNode:
		return j.Concurrency.Value
	case yaml.MappingNode:
		var c struct {
			Group string `yaml:"group"`
		}
		if err := j.Concurrency.Decode(&c); err != nil {
			t.Errorf("concurrency: %v", err)
		}
		return c.Group
	}
	return ""
}

// stripComments drops YAML comment lines, so the header may name secrets it documents.
func stripComments(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

func redact(s string) string {
	if len(s) > 8 {
		return s[:8] + "..."
	}
	return s
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func keys[V any](m map[string]V) []string { return sortedKeys(m) }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func quote(s string) string { return `"` + s + `"` }

func itoa(i int) string { return strconv.Itoa(i) }
