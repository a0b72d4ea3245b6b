package doctor

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// version is a dotted release with an optional -rcN pre-release: enough
// for criu, runc, crun, podman, container-selinux and kernel releases.
type version struct {
	nums [3]int
	rc   int // 0 for a final release
}

// versionRE takes the first dotted number: "Version: 4.2.1",
// "runc version 1.0.0-rc7", "6.18.44-fc-v669", "1.1.5+ds1".
var versionRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(\d+)\.(\d+)(?:\.(\d+))?(?:[-~.]?rc\.?(\d+))?`) })

func parseVersion(s string) (version, bool) {
	m := versionRE().FindStringSubmatch(s)
	if m == nil {
		return version{}, false
	}
	var v version
	for i := 0; i < 3; i++ {
		v.nums[i], _ = strconv.Atoi(m[i+1]) // empty patch is 0
	}
	v.rc, _ = strconv.Atoi(m[4])
	return v, true
}

// mustVersion is for the literals of the known-bad table and the minimums
// ("4.2", "1.0.0-rc7"). It does not use versionRE, so building these
// tables at package init costs no regexp compile. (crhook-runtime no longer
// links this package: hook/crhook-runtime/deps_test.go keeps it out.)
func mustVersion(s string) version {
	var v version
	main, rc, hasRC := strings.Cut(s, "-rc")
	parts := strings.Split(main, ".")
	ok := len(parts) >= 2 && len(parts) <= 3
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		ok = ok && err == nil && i < 3
		if ok {
			v.nums[i] = n
		}
	}
	if hasRC {
		n, err := strconv.Atoi(rc)
		ok = ok && err == nil
		v.rc = n
	}
	if !ok {
		panic("doctor: bad version literal " + s)
	}
	return v
}

// less orders releases; a release candidate comes before its release.
func (v version) less(w version) bool {
	for i := range v.nums {
		if v.nums[i] != w.nums[i] {
			return v.nums[i] < w.nums[i]
		}
	}
	switch {
	case v.rc == w.rc:
		return false
	case v.rc == 0:
		return false
	case w.rc == 0:
		return true
	}
	return v.rc < w.rc
}

func (v version) atLeast(w version) bool { return !v.less(w) }

func (v version) String() string {
	s := fmt.Sprintf("%d.%d.%d", v.nums[0], v.nums[1], v.nums[2])
	if v.rc > 0 {
		s += fmt.Sprintf("-rc%d", v.rc)
	}
	return s
}
