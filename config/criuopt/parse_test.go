package criuopt

import (
	"errors"
	"strings"
	"testing"
)

func TestParsePositions(t *testing.T) {
	st, err := Parse("f", []byte("# c\n  tcp-established\n\timages-dir /x # c\ntcp-established -j\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name      string
		line, col int
	}{
		{"tcp-established", 2, 3}, {"images-dir", 3, 2}, {"tcp-established", 4, 1}, {"shell-job", 4, 17},
	}
	if len(st) != len(want) {
		t.Fatalf("got %q", stmtStrings(st))
	}
	for i, w := range want {
		if st[i].Name() != w.name || st[i].Line != w.line || st[i].Col != w.col {
			t.Errorf("statement %d = %s at %d:%d, want %s at %d:%d", i, st[i].Name(), st[i].Line, st[i].Col, w.name, w.line, w.col)
		}
	}
}

// TestParseErrors checks that errors point at the offending byte and say
// what to do.
func TestParseErrors(t *testing.T) {
	for _, c := range []struct {
		in        string
		errIs     error
		line, col int
		hint      string
	}{
		{"tcp-established\n  tcp-establised\n", ErrUnknownOption, 2, 3, "did you mean tcp-established?"},
		{"shell-job\r\n", ErrUnknownOption, 1, 1, "dos2unix"},
		{"tree\t5 # pid\n", ErrUnknownOption, 1, 1, "tab"},
		{"shell-job#c\n", ErrUnknownOption, 1, 1, "preceded by whitespace"},
		{"tls-c /x\n", ErrUnknownOption, 1, 1, "tls-cacert, tls-cacrl, tls-cert"},
		{"images-dir a bc\n", ErrSyntax, 1, 14, "double-quoted"},
		{"lsm-profile \"abc\" junk\n", ErrSyntax, 1, 19, "comment"},
		{"lsm-profile \"abc\n", ErrSyntax, 1, 13, "close the quote"},
		{"lsm-profile \"\n", ErrSyntax, 1, 13, "close the quote"},
		{"\n\ntree\n", ErrSyntax, 3, 1, "same line"},
		{"tree\nshell-job\n", ErrInvalidValue, 2, 1, "pid"},
		{"shell-job=1\n", ErrInvalidValue, 1, 1, "remove =1"},
		{"manage-cgroups=hard\n", ErrInvalidValue, 1, 1, "none, props, soft"},
		{"network-lock bpf\n", ErrInvalidValue, 1, 14, "iptables"},
		{"tcp-established -z\n", ErrSyntax, 1, 17, "remove it"},
	} {
		_, err := Parse("/etc/criu/default.conf", []byte(c.in))
		var fe *FileError
		if !errors.As(err, &fe) || !errors.Is(err, c.errIs) {
			t.Errorf("Parse(%q) = %v, want a *FileError wrapping %v", c.in, err, c.errIs)
			continue
		}
		if fe.File != "/etc/criu/default.conf" || fe.Line != c.line || fe.Col != c.col || !strings.Contains(fe.Hint, c.hint) {
			t.Errorf("Parse(%q) = %q, want it at %d:%d with a hint containing %q", c.in, err, c.line, c.col, c.hint)
		}
	}
}

func TestFormat(t *testing.T) {
	opt := func(name string) *Option { o, _, _ := Lookup(name); return o }
	for _, c := range []struct {
		st   Statement
		want string
	}{
		{Statement{Option: opt("tcp-established")}, "tcp-established"},
		{Statement{Option: opt("tcp-established"), Negated: true}, "no-tcp-established"},
		{Statement{Option: opt("images-dir"), Value: "/x", HasValue: true}, "images-dir /x"},
		{Statement{Option: opt("images-dir"), Value: "", HasValue: true}, "images-dir="},
		{Statement{Option: opt("lsm-profile"), Value: "a#b", HasValue: true}, "lsm-profile=a#b"},
		{Statement{Option: opt("lsm-profile"), Value: "a b", HasValue: true}, `lsm-profile "a b"`},
		{Statement{Option: opt("lsm-profile"), Value: `say "hi" now`, HasValue: true}, `lsm-profile "say \"hi\" now"`},
		{Statement{Option: opt("manage-cgroups"), Value: "soft", HasValue: true}, "manage-cgroups=soft"},
		{Statement{Option: opt("manage-cgroups")}, "manage-cgroups"},
	} {
		got := Format(c.st)
		if got != c.want {
			t.Errorf("Format(%s=%q) = %q, want %q", c.st.Name(), c.st.Value, got, c.want)
		}
		back, err := Parse("f", []byte(got+"\n"))
		if err != nil || len(back) != 1 || back[0].Value != c.st.Value || back[0].Name() != c.st.Name() {
			t.Errorf("Format(%s=%q) = %q reads back as %q, %v", c.st.Name(), c.st.Value, got, stmtStrings(back), err)
		}
	}
}
