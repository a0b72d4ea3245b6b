package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// A migration's detached CRIU processes run in a process group of their
// own under supervisorScript (lazy.go); these read that group from
// /proc: the shim watches a streamed dump with them, and `crhook
// migrate-agent progress` reports the page server or lazy-pages daemon.

// groupMembers lists the processes of group pgid with their names.
func groupMembers(pgid int) map[int]string {
	m := map[int]string{}
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(data)
		i := strings.LastIndexByte(s, ')')
		j := strings.IndexByte(s, '(')
		if i < 0 || j < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		// state ppid pgrp
		if len(f) < 3 || f[0] == "Z" || f[2] != strconv.Itoa(pgid) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		m[pid] = s[j+1 : i]
	}
	return m
}

// GroupWorks reports whether group pgid runs more than its supervisor's
// shell and timer: the CRIU process (or runc) is alive.
func GroupWorks(pgid int) bool {
	for _, name := range groupMembers(pgid) {
		if name != "sleep" && name != "sh" {
			return true
		}
	}
	return false
}

// GroupGone reports whether no process of group pgid is left, not even
// its supervisor: once the CRIU process ended, the supervisor still
// writes its exit status before it leaves.
func GroupGone(pgid int) bool { return len(groupMembers(pgid)) == 0 }

// GroupIO is the bytes read and written by group pgid's processes: it
// grows while pages move.
func GroupIO(pgid int) int64 {
	var n int64
	for pid := range groupMembers(pgid) {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			k, v, ok := strings.Cut(line, ": ")
			if ok && (k == "rchar" || k == "wchar") {
				x, _ := strconv.ParseInt(v, 10, 64)
				n += x
			}
		}
	}
	return n
}
