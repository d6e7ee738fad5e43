package declared_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/emailclient/emailclient-infra/tests/declared"
)

func TestRunDeclaresEveryStack(t *testing.T) {
	for _, stack := range []string{"dev", "prod"} {
		t.Run(stack, func(t *testing.T) {
			r, err := declared.Run(stack, declared.Options{})
			require.NoError(t, err)
			for _, res := range r.Resources {
				t.Logf("%s %s parent=%s deps=%v", res.Type, res.Name, res.Parent, res.DependsOn)
			}
			require.NotEmpty(t, r.ByType(declared.ContainerType))
		})
	}
}
