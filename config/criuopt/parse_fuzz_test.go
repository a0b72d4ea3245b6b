package criuopt

import (
	"reflect"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, is deterministic, and that
// accepted files round-trip: formatting each statement as a line and
// parsing the result gives the same statements. The seed corpus lives in
// testdata/fuzz/FuzzParse; TestDifferential also runs it through CRIU.
func FuzzParse(f *testing.F) {
	for _, c := range diffCases {
		f.Add([]byte(c.in))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := Parse("f", data)
		st2, err2 := Parse("f", data)
		if !reflect.DeepEqual(st, st2) || (err == nil) != (err2 == nil) {
			t.Fatalf("Parse(%q) is not deterministic", data)
		}
		if err != nil {
			return
		}
		var lines []string
		for _, s := range st {
			// A blank in an optional value can only come from a quoted
			// word read as a short option ("-v\t"): NAME=VALUE cannot
			// carry it, so no single line can.
			if s.Option.Arg == OptionalArg && strings.ContainsAny(s.Value, " \t") {
				return
			}
			lines = append(lines, Format(s))
		}
		text := strings.Join(lines, "\n") + "\n"
		back, err := Parse("f", []byte(text))
		if err != nil {
			t.Fatalf("Parse(%q) = %q; its formatting %q does not parse: %v", data, stmtStrings(st), text, err)
		}
		if !reflect.DeepEqual(stmtStrings(back), stmtStrings(st)) {
			t.Fatalf("Parse(%q) = %q; its formatting %q reads back as %q", data, stmtStrings(st), text, stmtStrings(back))
		}
	})
}
