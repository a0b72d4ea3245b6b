// Package edit is the editor behind `crhook config set` and `crhook config
// unset`: it changes the lines an edit is about and leaves every other
// byte, under a directory lock, through safefile's atomic replace. What a
// valid option and value are is criuopt's decision (criuopt.Check).
package edit
