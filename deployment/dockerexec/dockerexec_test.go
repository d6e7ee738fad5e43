package dockerexec

import "testing"

func TestExitErrorNamesCodeAndFirstLines(t *testing.T) {
	err := &ExitError{Code: 2, Output: "\n  NOAUTH Authentication required.  \n\nsecond\nthird\nfourth\n"}
	if got, want := err.Error(), "exit 2: NOAUTH Authentication required. | second | third"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	if got := FirstLines(" \n\n", 3); got != "" {
		t.Fatalf("FirstLines of blank lines = %q, want empty", got)
	}
}
