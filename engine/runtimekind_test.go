package engine

import (
	"strings"
	"testing"
)

// TestKindFromFeatures: the features documents of crun 1.28 and runc
// 1.1.5 as they print them here (trimmed to their annotations).
func TestKindFromFeatures(t *testing.T) {
	for _, tc := range []struct {
		name, in     string
		kind         RuntimeKind
		version, err string
	}{
		{"crun 1.28", `{"ociVersionMin":"1.0.0","annotations":{"io.github.seccomp.libseccomp.version":"2.5.4","org.opencontainers.runc.checkpoint.enabled":"true","run.oci.crun.checkpoint.enabled":"true","run.oci.crun.version":"1.28"}}`, Crun, "1.28", ""},
		{"runc 1.1.5", `{"annotations":{"org.opencontainers.runc.checkpoint.enabled":"true","org.opencontainers.runc.version":"1.1.5+ds1"}}`, Runc, "1.1.5+ds1", ""},
		{"neither", `{"annotations":{"io.github.seccomp.libseccomp.version":"2.5.4"}}`, "", "", "neither crun"},
		{"no annotations", `{"ociVersionMin":"1.0.0"}`, "", "", "neither crun"},
		{"not JSON", "flag provided but not defined: -features", "", "", "read the runtime's features"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, v, err := KindFromFeatures([]byte(tc.in))
			if k != tc.kind || v != tc.version || (tc.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.err) {
				t.Errorf("KindFromFeatures = %q, %q, %v; want %q, %q, error containing %q", k, v, err, tc.kind, tc.version, tc.err)
			}
		})
	}
}
