package orchestrate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/crhook/crhook/engine/migrate"
	"github.com/crhook/crhook/engine/migrate/pki"
)

// PreDump runs one pre-copy round through podman: `checkpoint
// --pre-checkpoint`, which crhook-runtime turns into the round's
// pre-dump into the destination's page server (engine precopyPreDump).
// The container keeps running. podman refuses it where CRIU cannot
// track dirty pages.
func (h *PodmanHost) PreDump(ctx context.Context, name string) error {
	if _, err := h.R.Run(ctx, nil, "podman", "container", "checkpoint", "--pre-checkpoint", name); err != nil {
		return fmt.Errorf("pre-dump %q on %s: %w", name, h.R.Where(), err)
	}
	return nil
}

// Replan updates the plan of the pre-copy migration there (each round
// after the first, and the final dump), keeping its TLS files.
func (h *PodmanHost) Replan(ctx context.Context, id string, p *migrate.Plan) error {
	data, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if _, err := h.R.Run(ctx, bytes.NewReader(data), h.Crhook, "migrate-agent", "replan", id); err != nil {
		return fmt.Errorf("update the pre-copy plan on %s: %w", h.R.Where(), err)
	}
	return nil
}

// ServeRound starts the destination's page server of pre-copy round n
// (0: the final dump, after last rounds) through the agent.
func (h *PodmanHost) ServeRound(ctx context.Context, id string, p *migrate.Plan, m *pki.TLSMaterial, n, last int) (int, error) {
	req, err := json.Marshal(agentRequest{Plan: p, Role: pki.RoleServer.String(),
		Material: &pki.TLSMaterial{CACert: m.CACert, ServerCert: m.ServerCert, ServerKey: m.ServerKey}})
	if err != nil {
		return 0, err
	}
	out, err := h.R.Run(ctx, bytes.NewReader(req), h.Crhook, "migrate-agent", "serve-round", id, strconv.Itoa(n), strconv.Itoa(last))
	if err != nil {
		return 0, fmt.Errorf("start the page server of pre-copy round %d on %s: %w", n, h.R.Where(), err)
	}
	var ans struct{ Port int }
	if err := json.Unmarshal(out, &ans); err != nil {
		return 0, fmt.Errorf("the page server on %s answered %q: %w", h.R.Where(), out, err)
	}
	if ans.Port < 1 || ans.Port > 65535 {
		return 0, fmt.Errorf("the page server on %s answered %q: no port", h.R.Where(), out)
	}
	return ans.Port, nil
}

// RoundProgress asks the agent about round n's page server.
func (h *PodmanHost) RoundProgress(ctx context.Context, migID string, n int) (Progress, error) {
	out, err := h.R.Run(ctx, nil, h.Crhook, "migrate-agent", "round-progress", migID, strconv.Itoa(n))
	if err != nil {
		return Progress{}, fmt.Errorf("watch pre-copy round %d on %s: %w", n, h.R.Where(), err)
	}
	var p Progress
	if err := json.Unmarshal(out, &p); err != nil {
		return Progress{}, fmt.Errorf("decode the progress from %s: %w: %q", h.R.Where(), err, out)
	}
	return p, nil
}
