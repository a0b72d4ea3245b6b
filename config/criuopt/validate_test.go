package criuopt

import (
	"errors"
	"testing"
)

func TestValidateValue(t *testing.T) {
	for _, c := range []struct {
		name, value string
		ok          bool
	}{
		{"ghost-limit", "banana", false},
		{"ghost-limit", "10M", true},
		{"ghost-limit", "1048576", true},
		{"ghost-limit", "10MB", false},
		{"ghost-limit", "", false},
		{"tree", "0", false},
		{"tree", "42", true},
		{"port", "70000", false},
		{"port", "8080", true},
		{"timeout", "-1", false},
		{"manage-cgroups", "soft", true},
		{"manage-cgroups", "", true},
		{"manage-cgroups", "hard", false},
		{"network-lock", "nftables", true},
		{"tcp-established", "", true},
		{"tcp-established", "yes", false},
		{"images-dir", "", false},
		{"images-dir", "/var/lib/a b", true},
		{"images-dir", "/a\nb", false},
		{"lsm-profile", "a#b", true},
		{"lsm-profile", "a #b", false}, // a '#' after a blank is always a comment
		{"veth-pair", "eth0", false},
		{"veth-pair", "eth0=veth0", true},
		{"ext-mount-map", "auto", true},
		{"ext-mount-map", "/a", false},
		{"feature", "mnt_id", true},
		{"feature", "bogus", false},
		{"cpu-cap", "fpu,^ins", true},
		{"cpu-cap", "gpu", false},
		{"join-ns", "pid:/proc/1/ns/pid", false},
		{"join-ns", "net:/run/netns/a", true},
		{"inherit-fd", "fd[3]:pipe:[123]", true},
		{"inherit-fd", "fd3:x", false},
		{"ext-unix-sk", "0", false},
		{"verbosity", "4", true},
		{"verbosity", "\t", false},
	} {
		opt, _, ok := Lookup(c.name)
		if !ok {
			t.Fatalf("no option %s", c.name)
		}
		err := ValidateValue(opt, c.value)
		if (err == nil) != c.ok {
			t.Errorf("ValidateValue(%s, %q) = %v, want ok=%v", c.name, c.value, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidValue) {
			t.Errorf("ValidateValue(%s, %q) = %v, want ErrInvalidValue", c.name, c.value, err)
		}
	}
}

// TestValidateValueImpliesCRIU checks that every value crhook accepts is
// also accepted by Parse (CRIU's own checks) once written with Format.
func TestValidateValueImpliesCRIU(t *testing.T) {
	values := []string{"", "0", "1", "5", "10M", "net", "soft", "auto", "a:b", "a=b", "/x", "a b", "fd[1]:x", "mnt_id", "fpu", "splice", "filesize", "nftables", "net:/proc/1/ns/net"}
	for _, o := range Options() {
		n := 0
		for _, v := range values {
			if ValidateValue(&o, v) != nil {
				continue
			}
			st := Statement{Option: byName()[o.Name], Value: v, HasValue: v != "" || o.Arg == RequiredArg}
			if _, err := Parse("f", []byte(Format(st)+"\n")); err != nil {
				t.Errorf("ValidateValue(%s, %q) accepts a value CRIU rejects: %v", o.Name, v, err)
			}
			n++
		}
		if n == 0 && o.Name != "ms" {
			t.Errorf("no test value is valid for %s", o.Name)
		}
	}
}

// TestEnumsFromCatalog: an enum option's values are the catalog's list,
// for the editor's check and for the file parser alike: each listed value
// passes both, and anything else fails both.
func TestEnumsFromCatalog(t *testing.T) {
	n := 0
	for _, o := range Options() {
		if o.Type != TypeEnum {
			continue
		}
		n++
		for _, v := range o.Enum {
			if err := ValidateValue(&o, v); err != nil {
				t.Errorf("ValidateValue(%s, %q) = %v, want ok", o.Name, v, err)
			}
			if _, err := Parse("f", []byte(o.Name+"="+v+"\n")); err != nil {
				t.Errorf("Parse(%s=%s) = %v, want ok", o.Name, v, err)
			}
		}
		if err := ValidateValue(&o, "bogus"); !errors.Is(err, ErrInvalidValue) {
			t.Errorf("ValidateValue(%s, bogus) = %v, want ErrInvalidValue", o.Name, err)
		}
		if _, err := Parse("f", []byte(o.Name+"=bogus\n")); !errors.Is(err, ErrInvalidValue) {
			t.Errorf("Parse(%s=bogus) = %v, want ErrInvalidValue", o.Name, err)
		}
	}
	if n == 0 {
		t.Fatal("no enum option in the catalog")
	}
}
