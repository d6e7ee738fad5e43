package declared_test

import (
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/emailclient/emailclient-infra/stacks"
	"github.com/emailclient/emailclient-infra/tests/declared"
)

// contractStacks are the topologies whose email-service env the contract table covers: one host
// standalone (dev, prod), Sentinel on one host, and Sentinel across hosts with TLS.
var contractStacks = map[string]struct {
	stack string
	opts  declared.Options
}{
	"dev":      {"dev", declared.Options{}},
	"prod":     {"prod", declared.Options{Config: map[string]string{"emailService": `{"image":"registry.example/email@sha256:` + strings.Repeat("a", 64) + `"}`}}},
	"sentinel": {"dev", declared.Options{Config: map[string]string{"topology": `{"mode":"sentinel"}`, "container": `{"hostPort":0}`}}},
	"sentinel, synchronous enqueue": {"dev", declared.Options{Config: map[string]string{"topology": `{"mode":"sentinel"}`, "container": `{"hostPort":0}`,
		"celery": `{"syncEnqueue":{"enabled":true}}`}}},
	"hosts": {"dev", declared.Options{Config: map[string]string{
		"hosts": `[{"name":"db-1","docker":"tcp://db-1:2376","address":"10.0.0.11"},{"name":"db-2","docker":"tcp://db-2:2376","address":"10.0.0.12"},` +
			`{"name":"db-3","docker":"tcp://db-3:2376","address":"10.0.0.13"}]`,
		"topology": `{"mode":"sentinel"}`, "container": `{"hostPort":0}`,
	}}},
}

// TestEnvContractTableMatchesTheProgram: the guide's table of the email-service's environment names
// exactly the variables the program declares on the email-service containers, over every topology;
// a row that says "always" is set in every one, any other row is missing from at least one; and the
// celeryEnv output carries the plain ones.
func TestEnvContractTableMatchesTheProgram(t *testing.T) {
	root, err := stacks.FindRoot()
	require.NoError(t, err)
	rows, err := declared.EnvContract(root)
	require.NoError(t, err)
	table := map[string]declared.ContractRow{}
	for _, r := range rows {
		assert.NotContains(t, table, r.Variable, "one row per variable")
		assert.NotEmpty(t, r.Meaning, r.Variable)
		assert.NotEmpty(t, r.Example, r.Variable)
		table[r.Variable] = r
	}

	declaredIn := map[string][]string{} // variable -> the topologies that set it
	for name, c := range contractStacks {
		r, err := declared.Run(c.stack, c.opts)
		require.NoError(t, err, name)
		workers := 0
		for _, res := range r.ByType(declared.ContainerType) {
			if !strings.HasPrefix(res.Name, "email-service-container") {
				continue
			}
			workers++
			for _, kv := range res.Inputs["envs"].SecretValue().Element.ArrayValue() {
				k, _, _ := strings.Cut(kv.StringValue(), "=")
				if !slices.Contains(declaredIn[k], name) {
					declaredIn[k] = append(declaredIn[k], name)
				}
			}
		}
		require.NotZero(t, workers, "%s declares an email-service", name)

		outs, err := declared.Outputs(c.stack, c.opts)
		require.NoError(t, err, name)
		celeryEnv, ok := outs["celeryEnv"].Value.(map[string]string)
		require.True(t, ok, "%s: the celeryEnv output is a map: %#v", name, outs["celeryEnv"].Value)
		assert.False(t, outs["celeryEnv"].Secret, "celeryEnv holds no secret")
		for k := range celeryEnv {
			assert.Contains(t, declaredIn, k, "%s: celeryEnv's %s is in the email-service's env", name, k)
			assert.NotContains(t, []string{"CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CELERY_SENTINEL_PASSWORD"}, k, "celeryEnv is plain")
		}
	}

	var inTable, inProgram []string
	for k := range table {
		inTable = append(inTable, k)
	}
	for k := range declaredIn {
		inProgram = append(inProgram, k)
	}
	sort.Strings(inTable)
	sort.Strings(inProgram)
	require.Equal(t, inProgram, inTable, "the variables of %s's table are the email-service env the program declares", declared.GuideFile)
	for k, in := range declaredIn {
		if table[k].Always() {
			assert.Len(t, in, len(contractStacks), "%s is marked always but is set only in %v", k, in)
		} else {
			assert.Less(t, len(in), len(contractStacks), "%s is set in every topology: its row should say always, not %q", k, table[k].When)
		}
	}
}
