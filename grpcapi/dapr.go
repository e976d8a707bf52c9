package grpcapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"sync"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	daprv1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/mecha-gateway/mecha/grpcapi/component"
	pb "github.com/mecha-gateway/mecha/grpcapi/runtimev1"
)

// daprService serves the configuration, lock and pub/sub calls of
// dapr.proto.runtime.v1.Dapr from the same components and with the same
// checks as mecha.runtime.v1, so that unmodified Dapr SDK applications
// work against Mecha. Every other call of the service answers
// UNIMPLEMENTED (from the embedded Unimplemented server).
type daprService struct {
	daprv1.UnimplementedDaprServer
	s *Server

	mu   sync.Mutex
	subs map[string]context.CancelFunc // configuration subscriptions by id
}

func registerDapr(g *grpc.Server, s *Server) {
	daprv1.RegisterDaprServer(g, &daprService{s: s, subs: map[string]context.CancelFunc{}})
}

// configArgs: Dapr's configuration API has flat keys; the metadata
// keys app_id, group and label select a scope of Mecha's (the empty
// scope otherwise).
func (d *daprService) configArgs(storeName string, md map[string]string, keys []string) (component.ConfigStore, component.ConfigScope, error) {
	return d.s.configArgs(storeName, md["app_id"], md["group"], md["label"], keys)
}

func daprItem(it *component.ConfigItem, deleted bool) *commonv1.ConfigurationItem {
	md := it.Metadata
	if deleted {
		md = merge(md, map[string]string{"deleted": "true"})
	}
	return &commonv1.ConfigurationItem{Value: it.Content, Version: it.Version, Metadata: md}
}

func (d *daprService) GetConfiguration(ctx context.Context, req *daprv1.GetConfigurationRequest) (*daprv1.GetConfigurationResponse, error) {
	store, scope, err := d.configArgs(req.StoreName, req.Metadata, req.Keys)
	if err != nil {
		return nil, err
	}
	items, err := store.Get(ctx, scope, req.Keys)
	if err != nil {
		return nil, err
	}
	resp := &daprv1.GetConfigurationResponse{Items: make(map[string]*commonv1.ConfigurationItem, len(items))}
	for i := range items {
		resp.Items[items[i].Key] = daprItem(&items[i], false)
	}
	return resp, nil
}

func (d *daprService) GetConfigurationAlpha1(ctx context.Context, req *daprv1.GetConfigurationRequest) (*daprv1.GetConfigurationResponse, error) {
	return d.GetConfiguration(ctx, req)
}

// SubscribeConfiguration sends the subscription id first (the SDK waits
// for it), then one message per batch of changes; a deleted key comes
// with an empty value and metadata deleted=true.
func (d *daprService) SubscribeConfiguration(req *daprv1.SubscribeConfigurationRequest, stream daprv1.Dapr_SubscribeConfigurationServer) error {
	store, scope, err := d.configArgs(req.StoreName, req.Metadata, req.Keys)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	id, ch, err := subscribeConfig(ctx, store, scope, req.Keys)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.subs[id] = cancel
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.subs, id)
		d.mu.Unlock()
	}()
	if err := stream.Send(&daprv1.SubscribeConfigurationResponse{Id: id}); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case changes := <-ch:
			resp := &daprv1.SubscribeConfigurationResponse{Id: id, Items: make(map[string]*commonv1.ConfigurationItem, len(changes))}
			for i := range changes {
				resp.Items[changes[i].Item.Key] = daprItem(&changes[i].Item, changes[i].Deleted)
			}
			if err := stream.Send(resp); err != nil {
				return err
			}
		}
	}
}

func (d *daprService) SubscribeConfigurationAlpha1(req *daprv1.SubscribeConfigurationRequest, stream daprv1.Dapr_SubscribeConfigurationAlpha1Server) error {
	return d.SubscribeConfiguration(req, stream)
}

func (d *daprService) UnsubscribeConfiguration(ctx context.Context, req *daprv1.UnsubscribeConfigurationRequest) (*daprv1.UnsubscribeConfigurationResponse, error) {
	if err := checkName("id", req.Id, true); err != nil {
		return nil, err
	}
	d.mu.Lock()
	cancel, ok := d.subs[req.Id]
	delete(d.subs, req.Id)
	d.mu.Unlock()
	if !ok {
		return &daprv1.UnsubscribeConfigurationResponse{Ok: false, Message: "no subscription with id " + req.Id}, nil
	}
	cancel()
	return &daprv1.UnsubscribeConfigurationResponse{Ok: true}, nil
}

func (d *daprService) UnsubscribeConfigurationAlpha1(ctx context.Context, req *daprv1.UnsubscribeConfigurationRequest) (*daprv1.UnsubscribeConfigurationResponse, error) {
	return d.UnsubscribeConfiguration(ctx, req)
}

func (d *daprService) TryLockAlpha1(ctx context.Context, req *daprv1.TryLockRequest) (*daprv1.TryLockResponse, error) {
	if req.ExpiryInSeconds <= 0 {
		return nil, invalid("expiry_in_seconds must be greater than 0")
	}
	a, err := d.s.lockArgs(req.StoreName, req.ResourceId, req.LockOwner, "expiry_in_seconds", time.Duration(req.ExpiryInSeconds)*time.Second)
	if err != nil {
		return nil, err
	}
	r, err := d.s.tryLock(ctx, a)
	if err != nil {
		return nil, err
	}
	return &daprv1.TryLockResponse{Success: r.Success}, nil
}

func (d *daprService) UnlockAlpha1(ctx context.Context, req *daprv1.UnlockRequest) (*daprv1.UnlockResponse, error) {
	a, err := d.s.lockArgs(req.StoreName, req.ResourceId, req.LockOwner, "", 0)
	if err != nil {
		return nil, err
	}
	st, err := d.s.unlock(ctx, a.store, heldLock{a.storeName, a.resource, a.owner})
	if err != nil {
		return nil, err
	}
	// Dapr's statuses have the same numbers as Mecha's.
	return &daprv1.UnlockResponse{Status: daprv1.UnlockResponse_Status(st)}, nil
}

func (d *daprService) PublishEvent(ctx context.Context, req *daprv1.PublishEventRequest) (*emptypb.Empty, error) {
	_, err := (&pubsubService{s: d.s}).Publish(ctx, &pb.PublishRequest{PubsubName: req.PubsubName, Topic: req.Topic,
		Data: req.Data, ContentType: req.DataContentType, Metadata: req.Metadata})
	if err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// BulkPublishEventAlpha1 reports the entries that failed; Dapr 1.16 has
// no non-alpha BulkPublishEvent.
func (d *daprService) BulkPublishEventAlpha1(ctx context.Context, req *daprv1.BulkPublishRequest) (*daprv1.BulkPublishResponse, error) {
	in := &pb.BulkPublishRequest{PubsubName: req.PubsubName, Topic: req.Topic, Metadata: req.Metadata,
		Entries: make([]*pb.BulkPublishEntry, len(req.Entries))}
	for i, e := range req.Entries {
		if e == nil {
			return nil, invalid("entries[%d] is empty", i)
		}
		in.Entries[i] = &pb.BulkPublishEntry{EntryId: e.EntryId, Data: e.Event, ContentType: e.ContentType, Metadata: e.Metadata}
	}
	out, err := (&pubsubService{s: d.s}).BulkPublish(ctx, in)
	if err != nil {
		return nil, err
	}
	resp := &daprv1.BulkPublishResponse{}
	for _, r := range out.Results {
		if r.Error != "" {
			resp.FailedEntries = append(resp.FailedEntries, &daprv1.BulkPublishResponseFailedEntry{EntryId: r.EntryId, Error: r.Error})
		}
	}
	return resp, nil
}

// daprGroup is the consumer group of Dapr subscriptions that name none
// in metadata `consumerID` (Dapr's own default is the app id, which an
// SDK client does not send).
const daprGroup = "dapr"

// SubscribeTopicEventsAlpha1 is Dapr's streaming subscription: the
// client sends initial_request, Mecha answers initial_response (the SDK
// waits for it), then sends events; SUCCESS acks, RETRY nacks (delivered
// again after the backoff, up to metadata maxAttempts, default 10), DROP
// drops (dead-lettered when dead_letter_topic is set).
func (d *daprService) SubscribeTopicEventsAlpha1(stream daprv1.Dapr_SubscribeTopicEventsAlpha1Server) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	in := first.GetInitialRequest()
	if in == nil {
		return invalid("the first message of a subscription must be initial_request")
	}
	ps, name, err := lookup[component.PubSub](d.s, component.CapPubSub, "pubsub_name", in.PubsubName)
	if err != nil {
		return err
	}
	init := &pb.SubscribeInit{PubsubName: name, Topic: in.Topic, Group: in.Metadata["consumerID"], DeadLetterTopic: in.GetDeadLetterTopic(), Metadata: in.Metadata}
	if init.Group == "" {
		init.Group = daprGroup
	}
	spec, err := subscribeSpec(init)
	if err != nil {
		return err
	}
	if v, ok := in.Metadata["maxAttempts"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return invalid("metadata maxAttempts must be a positive number, not %q", v)
		}
		spec.MaxAttempts = n
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	sub, err := ps.Subscribe(ctx, spec)
	if err != nil {
		return err
	}
	defer sub.Close()
	if err := stream.Send(&daprv1.SubscribeTopicEventsResponseAlpha1{SubscribeTopicEventsResponseType: &daprv1.SubscribeTopicEventsResponseAlpha1_InitialResponse{
		InitialResponse: &daprv1.SubscribeTopicEventsResponseInitialAlpha1{}}}); err != nil {
		return err
	}
	return d.s.pump(ctx, sub,
		func(m *component.Message) error {
			return stream.Send(&daprv1.SubscribeTopicEventsResponseAlpha1{SubscribeTopicEventsResponseType: &daprv1.SubscribeTopicEventsResponseAlpha1_EventMessage{
				EventMessage: topicEvent(m, name)}})
		},
		func() (string, pb.MessageAction, time.Duration, error) {
			req, err := stream.Recv()
			if err != nil {
				return "", 0, 0, err
			}
			p := req.GetEventProcessed()
			if p == nil {
				return "", 0, 0, invalid("after initial_request, a subscription sends only event_processed messages")
			}
			switch p.GetStatus().GetStatus() {
			case daprv1.TopicEventResponse_SUCCESS:
				return p.Id, pb.MessageAction_MESSAGE_ACTION_ACK, 0, nil
			case daprv1.TopicEventResponse_RETRY:
				return p.Id, pb.MessageAction_MESSAGE_ACTION_NACK, 0, nil
			case daprv1.TopicEventResponse_DROP:
				return p.Id, pb.MessageAction_MESSAGE_ACTION_DROP, 0, nil
			}
			return "", 0, 0, invalid("event_processed.status %d is not a TopicEventResponseStatus", p.GetStatus().GetStatus())
		})
}

// topicEvent presents a message as the CloudEvent Dapr delivers. A
// message published as a CloudEvent (application/cloudevents+json) keeps
// its source, type and data; the event id is always Mecha's message id,
// which is what the subscriber acknowledges.
func topicEvent(m *component.Message, pubsub string) *daprv1.TopicEventRequest {
	ev := &daprv1.TopicEventRequest{Id: m.ID, Source: "mecha", Type: "com.dapr.event.sent", SpecVersion: "1.0",
		DataContentType: m.ContentType, Data: m.Data, Topic: m.Topic, PubsubName: pubsub}
	if m.ContentType == "application/cloudevents+json" {
		var ce struct {
			Source, Type, SpecVersion, DataContentType string
			Data                                       json.RawMessage
			DataBase64                                 string `json:"data_base64"`
		}
		if json.Unmarshal(m.Data, &ce) == nil {
			ev.Source, ev.Type, ev.SpecVersion = or(ce.Source, ev.Source), or(ce.Type, ev.Type), or(ce.SpecVersion, ev.SpecVersion)
			ev.DataContentType = or(ce.DataContentType, "application/json")
			switch {
			case ce.DataBase64 != "":
				if b, err := base64.StdEncoding.DecodeString(ce.DataBase64); err == nil {
					ev.Data = b
				}
			case len(ce.Data) > 0:
				var s string
				if ce.Data[0] == '"' && json.Unmarshal(ce.Data, &s) == nil && ev.DataContentType != "application/json" {
					ev.Data = []byte(s)
				} else {
					ev.Data = ce.Data
				}
			default:
				ev.Data = nil
			}
		}
	}
	return ev
}
