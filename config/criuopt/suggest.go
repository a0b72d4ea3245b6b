package criuopt

import (
	"fmt"
	"strings"
)

// Suggest returns the catalog name ("no-" forms included) closest to name
// by edit distance, or "" when nothing is close enough to be a likely typo.
func Suggest(name string) string {
	if len(name) > 64 { // no option is that long; spare the quadratic distance
		return ""
	}
	best, bestDist := "", len(name)/3+2
	for _, cand := range longNames() {
		if d := editDistance(name, cand); d < bestDist {
			best, bestDist = cand, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance over bytes (option names are
// ASCII).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// UnknownOption explains a name that is not a full catalog name. getopt
// would take an unambiguous abbreviation, but a file edited by crhook
// spells names out so that it still means the same after a CRIU release
// adds an option with the same prefix.
func UnknownOption(name string) error {
	if hint := DidYouMean(name); hint != "" {
		return fmt.Errorf("%w%s", ErrUnknownOption, hint)
	}
	var full []string
	for _, n := range longNames() {
		if name != "" && strings.HasPrefix(n, name) {
			full = append(full, n)
		}
	}
	switch {
	case len(full) == 1:
		return fmt.Errorf("%w; write the full name: %s", ErrUnknownOption, full[0])
	case len(full) > 1 && len(full) <= 5:
		return fmt.Errorf("%w; write the full name, one of: %s", ErrUnknownOption, strings.Join(full, ", "))
	}
	return fmt.Errorf("%w (crhook config show lists the options in effect; criu --help lists them all)", ErrUnknownOption)
}

// DidYouMean is Suggest as the end of a message: "; did you mean X?", or "".
func DidYouMean(name string) string {
	if s := Suggest(name); s != "" {
		return "; did you mean " + s + "?"
	}
	return ""
}
