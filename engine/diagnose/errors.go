package diagnose

import "errors"

// ErrUnreadableLog is wrapped by Explain and ExplainReader when the log
// could not be opened or read to its end; the Diagnosis returned with it is
// still printable. The underlying error is wrapped too, so
// errors.Is(err, fs.ErrNotExist) tells a missing log apart.
var ErrUnreadableLog = errors.New("cannot read CRIU log")
