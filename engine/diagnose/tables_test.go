package diagnose

// Tests read the catalog directly; production code loads it on first use.
func init() { loadTables() }
