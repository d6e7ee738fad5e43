package components

import (
	"os/exec"
	"strings"
	"testing"
)

// TestComponentsDoNotImportTheOpsTool keeps the Pulumi components free of the redis-ops CLI: they
// validate schedules with components/cronspec, which the CLI shares.
func TestComponentsDoNotImportTheOpsTool(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/emailclient/emailclient-infra/deployment") {
			t.Errorf("components imports %s", pkg)
		}
	}
}
