package grpcapi

import (
	"context"
	"sync"

	"github.com/mecha-gateway/mecha/grpcapi/component"
	pb "github.com/mecha-gateway/mecha/grpcapi/runtimev1"
)

type sequencerService struct {
	pb.UnimplementedSequencerServer
	s *Server
}

// segments caches, per sequencer component instance and key, the rest of
// the block of ids reserved for SEGMENT mode. Keyed by the instance, not
// the name: a reload that keeps a component keeps its blocks, and one that
// replaces it starts new ones.
type segments struct {
	mu sync.Mutex
	m  map[seqKey]*segment
}

type seqKey struct {
	store component.SequencerStore
	key   string
}

type segment struct {
	mu        sync.Mutex
	next, end int64 // ids next .. end-1 are reserved and unused
}

func (g *segments) get(k seqKey) *segment {
	g.mu.Lock()
	defer g.mu.Unlock()
	sg, ok := g.m[k]
	if !ok {
		sg = &segment{}
		g.m[k] = sg
	}
	return sg
}

// retain forgets the blocks of components no longer served (their
// remaining ids are skipped).
func (g *segments) retain(keep map[component.Component]bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for k := range g.m {
		if !keep[k.store] {
			delete(g.m, k)
		}
	}
}

func (q *sequencerService) NextID(ctx context.Context, req *pb.NextIDRequest) (*pb.NextIDResponse, error) {
	store, _, err := lookup[component.SequencerStore](q.s, component.CapSequencer, "store_name", req.StoreName)
	if err != nil {
		return nil, err
	}
	if err := checkName("key", req.Key, true); err != nil {
		return nil, err
	}
	switch req.Mode {
	case pb.SequencerMode_SEQUENCER_MODE_STRICT:
		id, err := store.Reserve(ctx, req.Key, 1)
		if err != nil {
			return nil, err
		}
		return &pb.NextIDResponse{NextId: id}, nil
	case pb.SequencerMode_SEQUENCER_MODE_SEGMENT:
		sg := q.s.seqs.get(seqKey{store, req.Key})
		sg.mu.Lock()
		defer sg.mu.Unlock()
		if sg.next >= sg.end {
			size := q.s.Config().SegmentSize
			first, err := store.Reserve(ctx, req.Key, size)
			if err != nil {
				return nil, err
			}
			sg.next, sg.end = first, first+size
		}
		id := sg.next
		sg.next++
		return &pb.NextIDResponse{NextId: id}, nil
	}
	return nil, invalid("mode %d is not a SequencerMode", req.Mode)
}
