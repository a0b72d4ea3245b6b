package main

import (
	"strings"
	"testing"
)

// The guest scenarios trust memtouch to notice a page CRIU did not bring
// back; each way a restore can lose a page must fail the check.
func TestVerify(t *testing.T) {
	tests := []struct {
		name   string
		damage func(m *memory)
		want   string
	}{
		{"intact", func(*memory) {}, "verify ok"},
		{"zero-filled page", func(m *memory) { clear(m.data[5*pageSize : 6*pageSize]) }, "verify FAILED page=5"},
		{"page from an older round", func(m *memory) {
			m.touch(7)
			m.gen[7]-- // content of the new generation, table of the old
			m.writes--
		}, "verify FAILED page=7"},
		{"one flipped byte", func(m *memory) { m.data[3*pageSize+100] ^= 1 }, "verify FAILED page=3"},
		{"lost write", func(m *memory) { m.writes++ }, "verify FAILED generations"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newMemory(16)
			for i := range 40 {
				m.touch(i % 16)
			}
			tc.damage(m)
			if got := m.verify(); !strings.HasPrefix(got, tc.want) {
				t.Errorf("verify() = %q, want prefix %q", got, tc.want)
			}
		})
	}
}
