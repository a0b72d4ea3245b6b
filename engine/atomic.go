package engine

import (
	"os"

	"github.com/crhook/crhook/config/safefile"
)

// atomicWrite replaces path with data through safefile's one atomic
// writer (O_EXCL|O_NOFOLLOW temp file, fsync, rename, directory fsync):
// readers see the old file or the new one, never a mix. A variable so a
// test can make the rewrite fail as a read-only bundle, ENOSPC or EDQUOT
// would, which a test running as root cannot otherwise arrange.
var atomicWrite = func(path string, data []byte, perm os.FileMode) error {
	return safefile.WriteFile(path, data, uint32(perm))
}
