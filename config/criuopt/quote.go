package criuopt

import (
	"strconv"
	"unicode/utf8"
)

// Printable returns s unchanged when it is plain printable text, and
// strconv.Quote(s) otherwise. Messages name files, options and
// annotations that users and containers choose; a name with an escape
// sequence, a bidi override or invalid UTF-8 must reach the terminal as
// visible escapes, never raw. This is the one copy of the rule: use it
// (or %q) for every such string in a message.
func Printable(s string) string {
	if !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	for _, r := range s {
		if !strconv.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}
