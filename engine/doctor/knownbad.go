package doctor

import "fmt"

// knownBad is a CRIU × kernel combination that is known to fail, with the
// evidence: every row cites where the failure was seen.
type knownBad struct {
	kernelFrom version // first kernel release that breaks older CRIU
	criuFixed  version // first CRIU release that works on it
	arch       string  // GOARCH the row applies to; "" for every one
	symptom    string
	evidence   string
}

// knownBadTable is ordered by kernel release. Add a row only with a
// reference a reader can follow.
var knownBadTable = []knownBad{
	{
		kernelFrom: mustVersion("6.13"), criuFixed: mustVersion("4.1"), arch: "amd64",
		symptom: `criu check and every dump fail with "Unexpected rt vDSO area bounds": ` +
			`the kernel split the vDSO's vvar area (e93d2521b27f "x86/vdso: Split virtual clock pages into dedicated mapping")`,
		evidence: "checkpoint-restore/criu#2532, fixed by #2539 (after 4.0); Debian 12's CRIU 3.17.1 fails this way on 6.18",
	},
	{
		kernelFrom: mustVersion("6.16"), criuFixed: mustVersion("4.2"),
		symptom: `dumping any TCP socket fails with "Can't get 1:16 opt": ` +
			`getsockopt(SO_PASSCRED) is AF_UNIX-only since kernel 6.16`,
		evidence: "CRIU 4.1.1 dumps but fails on TCP on 6.18, 4.2.1 works (measured, DESIGN.md)",
	},
}

// knownBadFor returns the rows that break this CRIU on this kernel.
func knownBadFor(criu, kernel version, arch string) []knownBad {
	var out []knownBad
	for _, row := range knownBadTable {
		if row.applies(kernel, arch) && criu.less(row.criuFixed) {
			out = append(out, row)
		}
	}
	return out
}

func (row knownBad) applies(kernel version, arch string) bool {
	return kernel.atLeast(row.kernelFrom) && (row.arch == "" || row.arch == arch)
}

// minCRIU is the oldest CRIU that clears every row for this kernel: the
// release to tell the user to get.
func minCRIU(kernel version, arch string) (version, bool) {
	var best version
	found := false
	for _, row := range knownBadTable {
		if row.applies(kernel, arch) && (!found || best.less(row.criuFixed)) {
			best, found = row.criuFixed, true
		}
	}
	return best, found
}

// criuFix names the CRIU to install for this kernel and how runc finds it.
func criuFix(kernel version, hasKernel bool, arch string) string {
	want := "a CRIU release that supports this kernel"
	if hasKernel {
		if v, ok := minCRIU(kernel, arch); ok {
			want = fmt.Sprintf("CRIU %d.%d or later (kernel %s needs it)", v.nums[0], v.nums[1], kernel)
		}
	}
	return "install " + want + " first in PATH, e.g. /usr/local/sbin/criu: runc runs the first criu in PATH. " +
		"On Debian 12, whose criu 3.17 is too old, tests/setup-host.sh builds 4.2.1 from Debian's source archive (docs/install.md)"
}
