package declared

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// GuideFile is the operator's guide, relative to the repository root.
const GuideFile = "docs/OPERATIONS.md"

// contractHeading opens the guide's table of the email-service's environment.
const contractHeading = "### The email-service's environment"

// ContractRow is one row of the guide's env contract table.
type ContractRow struct {
	Variable, Meaning, Example, When string
}

// Always tells whether the row says the program sets the variable in every stack.
func (r ContractRow) Always() bool { return r.When == "always" }

// EnvContract reads the env contract table from the guide under root: the first table after its
// heading, one row per variable (the variable's name in backticks in the first column).
func EnvContract(root string) ([]ContractRow, error) {
	data, err := os.ReadFile(filepath.Join(root, GuideFile))
	if err != nil {
		return nil, err
	}
	_, section, ok := strings.Cut(string(data), contractHeading+"\n")
	if !ok {
		return nil, fmt.Errorf("%s: no %q section", GuideFile, contractHeading)
	}
	var rows []ContractRow
	inTable := false
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "|") {
			if inTable {
				break
			}
			continue
		}
		inTable = true
		if strings.Trim(line, "|-") == "" {
			continue // the header's separator row
		}
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		if len(cells) != 4 {
			return nil, fmt.Errorf("%s: env contract row %q has %d columns, want 4", GuideFile, line, len(cells))
		}
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		name := strings.Trim(cells[0], "`")
		if name == "variable" {
			continue
		}
		rows = append(rows, ContractRow{Variable: name, Meaning: cells[1], Example: cells[2], When: cells[3]})
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%s: the %q section has no table", GuideFile, contractHeading)
	}
	return rows, nil
}
