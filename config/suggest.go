package config

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
