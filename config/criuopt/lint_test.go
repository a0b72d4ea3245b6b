package criuopt

import (
	"errors"
	"strings"
	"testing"
)

func TestLint(t *testing.T) {
	tests := []struct {
		name, file string
		want       []string // "line:col hint-fragment"
	}{
		{"clean", "tcp-established\nmanage-cgroups=soft\nghost-limit 1M\n", nil},
		{"optional value needs =", "manage-cgroups soft\n", []string{"1:16 write manage-cgroups=soft"}},
		{"stray word after a switch", "tcp-established yes\n", []string{"1:17 remove it"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			warns, err := Lint("f.conf", []byte(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, w := range warns {
				if !errors.Is(w, ErrIgnored) {
					t.Errorf("warning %v does not wrap ErrIgnored", w)
				}
				got = append(got, w.Error())
			}
			if len(got) != len(tc.want) {
				t.Fatalf("warnings %q, want %d like %q", got, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				loc, frag, _ := strings.Cut(w, " ")
				if !strings.Contains(got[i], "f.conf:"+loc+":") || !strings.Contains(got[i], frag) {
					t.Errorf("warning %q, want %q", got[i], w)
				}
			}
		})
	}
}
