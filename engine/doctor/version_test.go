package doctor

import "testing"

func TestVersionOrder(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		less bool
	}{
		{"Version: 3.17.1", "4.2", true},
		{"Version: 4.2.1", "4.2", false},
		{"runc version 1.0.0-rc6", "1.0.0-rc7", true},
		{"runc version 1.0.0-rc92", "1.0.0-rc7", false},
		{"runc version 1.0.0", "1.0.0-rc7", false},
		{"runc version 1.1.5+ds1", "1.0.0-rc7", false},
		{"6.18.44-fc-v669", "6.16", false},
		{"6.12.0", "6.13", true},
		{"crun version 1.8.1", "1.26", true},
		{"2.230.0", "2.96", false},
	} {
		a, ok := parseVersion(tc.a)
		if !ok {
			t.Errorf("parseVersion(%q) failed", tc.a)
			continue
		}
		if got := a.less(mustVersion(tc.b)); got != tc.less {
			t.Errorf("%q (%s) < %s = %v, want %v", tc.a, a, tc.b, got, tc.less)
		}
	}
	if _, ok := parseVersion("Version: unknown"); ok {
		t.Error("parseVersion accepted a string without a version")
	}
}
