package config

import (
	"fmt"
	"strings"
	"testing"

	"github.com/crhook/crhook/config/criuopt"
)

// BenchmarkResolve4x50 resolves four layers of 50 options each: the work
// crhook does before every checkpoint and restore (target <= 100 us/op).
func BenchmarkResolve4x50(b *testing.B) {
	var names []string
	for _, o := range criuopt.Options() {
		if !o.Owned && !o.Unsafe && o.Arg != criuopt.OptionalArg {
			names = append(names, o.Name)
		}
	}
	layer := func(shift int) string {
		var sb strings.Builder
		for i := 0; i < 50; i++ {
			o, _, _ := criuopt.Lookup(names[(i+shift)%len(names)])
			switch {
			case o.Arg == criuopt.NoArg:
				fmt.Fprintf(&sb, "%s\n", o.Name)
			case o.Type == criuopt.TypeEnum:
				fmt.Fprintf(&sb, "%s %s\n", o.Name, o.Enum[0])
			case o.Type == criuopt.TypeInt:
				fmt.Fprintf(&sb, "%s %d\n", o.Name, i+1)
			case o.Type == criuopt.TypeSize:
				fmt.Fprintf(&sb, "%s %dM\n", o.Name, i+1)
			default:
				fmt.Fprintf(&sb, "# %s takes a structured value\n%s\n", o.Name, "tcp-established")
			}
		}
		return sb.String()
	}
	p := tree(b, map[string]string{
		"etc/criu/default.conf":   layer(0),
		"home/.criu/default.conf": layer(7),
		"etc/criu/runc.conf":      layer(13),
	})
	ann := map[string]string{}
	s := Fallback()
	for i, n := range names {
		if o, _, _ := criuopt.Lookup(n); o.Arg == criuopt.NoArg && len(ann) < 50 && i%2 == 0 {
			ann[AnnotationPrefix+n] = "true"
			s.Annotations.Allow = append(s.Annotations.Allow, n)
		}
	}
	if _, err := Resolve(p, Input{Runtime: "runc", Annotations: ann, Settings: s}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Resolve(p, Input{Runtime: "runc", Annotations: ann, Settings: s}); err != nil {
			b.Fatal(err)
		}
	}
}
