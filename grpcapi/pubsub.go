package grpcapi

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/mecha-gateway/mecha/grpcapi/component"
	pb "github.com/mecha-gateway/mecha/grpcapi/runtimev1"
)

type pubsubService struct {
	pb.UnimplementedPubSubServer
	s *Server
}

// Subscription defaults and bounds.
const (
	defaultGroup       = "default"
	defaultMaxInFlight = 32
	maxMaxInFlight     = 10000
	defaultMaxAttempts = 10
	defaultMinBackoff  = 100 * time.Millisecond
	defaultMaxBackoff  = 30 * time.Second
	maxDelay           = 366 * 24 * time.Hour
)

func outMessage(field string, data []byte, contentType string, md map[string]string, delay *durationpb.Duration) (component.OutMessage, error) {
	d, err := duration(field+"delay", delay)
	if err != nil {
		return component.OutMessage{}, err
	}
	if d > maxDelay {
		return component.OutMessage{}, invalid("%sdelay must be at most %s", field, maxDelay)
	}
	m := component.OutMessage{Data: data, ContentType: contentType, Metadata: md}
	if d > 0 {
		m.DeliverAt = time.Now().Add(d)
	}
	return m, nil
}

func (p *pubsubService) Publish(ctx context.Context, req *pb.PublishRequest) (*pb.PublishResponse, error) {
	ps, _, err := lookup[component.PubSub](p.s, component.CapPubSub, "pubsub_name", req.PubsubName)
	if err != nil {
		return nil, err
	}
	if err := checkName("topic", req.Topic, true); err != nil {
		return nil, err
	}
	m, err := outMessage("", req.Data, req.ContentType, req.Metadata, req.Delay)
	if err != nil {
		return nil, err
	}
	res := ps.Publish(ctx, req.Topic, []component.OutMessage{m})
	if len(res) != 1 {
		return nil, status.Errorf(codes.Internal, "pub/sub component returned %d results for 1 message", len(res))
	}
	if res[0].Err != nil {
		return nil, res[0].Err
	}
	return &pb.PublishResponse{MessageId: res[0].ID}, nil
}

func (p *pubsubService) BulkPublish(ctx context.Context, req *pb.BulkPublishRequest) (*pb.BulkPublishResponse, error) {
	ps, _, err := lookup[component.PubSub](p.s, component.CapPubSub, "pubsub_name", req.PubsubName)
	if err != nil {
		return nil, err
	}
	if err := checkName("topic", req.Topic, true); err != nil {
		return nil, err
	}
	if len(req.Entries) == 0 {
		return nil, invalid("entries is empty")
	}
	seen := make(map[string]bool, len(req.Entries))
	msgs := make([]component.OutMessage, len(req.Entries))
	for i, e := range req.Entries {
		if e == nil {
			return nil, invalid("entries[%d] is empty", i)
		}
		if err := checkName("entries[].entry_id", e.EntryId, true); err != nil {
			return nil, err
		}
		if seen[e.EntryId] {
			return nil, invalid("entry_id %q appears twice", e.EntryId)
		}
		seen[e.EntryId] = true
		md := e.Metadata
		if len(req.Metadata) > 0 {
			md = merge(req.Metadata, e.Metadata)
		}
		if msgs[i], err = outMessage("entries[].", e.Data, e.ContentType, md, e.Delay); err != nil {
			return nil, err
		}
	}
	res := ps.Publish(ctx, req.Topic, msgs)
	if len(res) != len(msgs) {
		return nil, status.Errorf(codes.Internal, "pub/sub component returned %d results for %d messages", len(res), len(msgs))
	}
	resp := &pb.BulkPublishResponse{Results: make([]*pb.BulkPublishResult, len(res))}
	for i, r := range res {
		out := &pb.BulkPublishResult{EntryId: req.Entries[i].EntryId, MessageId: r.ID}
		if r.Err != nil {
			out.MessageId = ""
			out.Error = status.Convert(toStatus(r.Err)).Message()
			resp.Failed++
		}
		resp.Results[i] = out
	}
	return resp, nil
}

// merge returns base overlaid with over.
func merge(base, over map[string]string) map[string]string {
	out := make(map[string]string, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}

// subscribeSpec checks a subscription request and fills its defaults.
func subscribeSpec(in *pb.SubscribeInit) (component.SubscribeSpec, error) {
	spec := component.SubscribeSpec{Topic: in.Topic, Group: in.Group, MaxInFlight: int(in.MaxInFlight),
		MaxAttempts: int(in.MaxAttempts), DeadLetterTopic: in.DeadLetterTopic, Metadata: in.Metadata}
	if err := checkName("subscribe.topic", in.Topic, true); err != nil {
		return spec, err
	}
	if err := checkName("subscribe.group", in.Group, false); err != nil {
		return spec, err
	}
	if err := checkName("subscribe.dead_letter_topic", in.DeadLetterTopic, false); err != nil {
		return spec, err
	}
	if in.DeadLetterTopic != "" && in.DeadLetterTopic == in.Topic {
		return spec, invalid("subscribe.dead_letter_topic must differ from the topic")
	}
	if spec.Group == "" {
		spec.Group = defaultGroup
	}
	switch {
	case spec.MaxInFlight < 0 || spec.MaxInFlight > maxMaxInFlight:
		return spec, invalid("subscribe.max_in_flight must be between 1 and %d (0: %d)", maxMaxInFlight, defaultMaxInFlight)
	case spec.MaxInFlight == 0:
		spec.MaxInFlight = defaultMaxInFlight
	}
	switch {
	case spec.MaxAttempts < 0:
		return spec, invalid("subscribe.max_attempts must not be negative")
	case spec.MaxAttempts == 0:
		spec.MaxAttempts = defaultMaxAttempts
	}
	var err error
	if spec.MinBackoff, err = duration("subscribe.min_backoff", in.MinBackoff); err != nil {
		return spec, err
	}
	if spec.MaxBackoff, err = duration("subscribe.max_backoff", in.MaxBackoff); err != nil {
		return spec, err
	}
	if spec.MinBackoff == 0 {
		spec.MinBackoff = defaultMinBackoff
	}
	if spec.MaxBackoff == 0 {
		spec.MaxBackoff = max(defaultMaxBackoff, spec.MinBackoff)
	}
	if spec.MinBackoff > spec.MaxBackoff {
		return spec, invalid("subscribe.min_backoff (%s) is above subscribe.max_backoff (%s)", spec.MinBackoff, spec.MaxBackoff)
	}
	return spec, nil
}

func messageToPB(m *component.Message) *pb.Message {
	out := &pb.Message{Id: m.ID, Topic: m.Topic, Data: m.Data, ContentType: m.ContentType,
		Metadata: m.Metadata, Attempt: int32(m.Attempt)}
	if !m.PublishTime.IsZero() {
		out.PublishTime = timestamppb.New(m.PublishTime)
	}
	return out
}

func (p *pubsubService) Subscribe(stream pb.PubSub_SubscribeServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	in := first.GetSubscribe()
	if in == nil {
		return invalid("the first message of a subscription must be `subscribe`")
	}
	ps, _, err := lookup[component.PubSub](p.s, component.CapPubSub, "subscribe.pubsub_name", in.PubsubName)
	if err != nil {
		return err
	}
	spec, err := subscribeSpec(in)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	sub, err := ps.Subscribe(ctx, spec)
	if err != nil {
		return err
	}
	defer sub.Close()
	if err := stream.Send(&pb.SubscribeResponse{Response: &pb.SubscribeResponse_Ready{Ready: &pb.SubscribeReady{SubscriptionId: newID()}}}); err != nil {
		return err
	}
	return p.s.pump(ctx, sub,
		func(m *component.Message) error {
			return stream.Send(&pb.SubscribeResponse{Response: &pb.SubscribeResponse_Message{Message: messageToPB(m)}})
		},
		func() (string, pb.MessageAction, time.Duration, error) {
			req, err := stream.Recv()
			if err != nil {
				return "", 0, 0, err
			}
			r := req.GetResult()
			if r == nil {
				return "", 0, 0, invalid("after `subscribe`, a subscription sends only `result` messages")
			}
			retry, err := duration("result.retry_after", r.RetryAfter)
			return r.MessageId, r.Action, retry, err
		})
}

// pump runs a subscription: messages from sub go out through send,
// results come in through recv and settle them. Results are settled
// concurrently (up to maxSettling at once), so that a store that makes
// each settlement durable can share that work between them. pump returns
// when the client ends the stream (nil, once every result received has
// been settled), a send or receive fails, or the subscription fails. A
// result for an unknown id is ignored: the message was settled already
// or never delivered to this member.
func (s *Server) pump(ctx context.Context, sub component.Subscription,
	send func(*component.Message) error,
	recv func() (id string, action pb.MessageAction, retryAfter time.Duration, err error)) error {
	const maxSettling = 64
	errc := make(chan error, 3)
	var settling sync.WaitGroup
	sem := make(chan struct{}, maxSettling)
	settle := func(id string, action pb.MessageAction, retry time.Duration) {
		defer func() { <-sem; settling.Done() }()
		var err error
		switch action {
		case pb.MessageAction_MESSAGE_ACTION_ACK:
			err = sub.Ack(ctx, id)
		case pb.MessageAction_MESSAGE_ACTION_NACK:
			err = sub.Nack(ctx, id, retry)
		case pb.MessageAction_MESSAGE_ACTION_DROP:
			err = sub.Drop(ctx, id)
		}
		if errors.Is(err, component.ErrUnknownMessage) {
			s.log.Debug("result for a message this subscription does not hold", "id", id)
			err = nil
		}
		if err != nil {
			select {
			case errc <- err:
			default:
			}
		}
	}
	go func() {
		for {
			id, action, retry, err := recv()
			if err == nil && (action < pb.MessageAction_MESSAGE_ACTION_ACK || action > pb.MessageAction_MESSAGE_ACTION_DROP) {
				err = invalid("result.action %d is not a MessageAction", action)
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				settling.Wait()
				errc <- err
				return
			}
			sem <- struct{}{}
			settling.Add(1)
			go settle(id, action, retry)
		}
	}()
	go func() {
		for m := range sub.Messages() {
			if err := send(m); err != nil {
				errc <- err
				return
			}
		}
		err := sub.Err()
		if err == nil && ctx.Err() == nil {
			err = status.Error(codes.Unavailable, "subscription ended by the pub/sub component")
		}
		errc <- err
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return nil
	}
}
