package criuopt

// Statement is one option as CRIU's getopt_long would take it from a file.
type Statement struct {
	// Option is the catalog entry; Name is how the line spelled it after
	// CRIU's abbreviation and "no-" resolution (always a full option name).
	Option  *Option
	Negated bool
	// Value is the option's argument with quotes and \" escapes removed.
	Value    string
	HasValue bool
	Line     int
	Col      int
}

// Name is the option's canonical spelling, "no-" form included.
func (s Statement) Name() string {
	if s.Negated {
		return "no-" + s.Option.Name
	}
	return s.Option.Name
}
