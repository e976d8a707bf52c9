package grpcapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"

	"github.com/mecha-gateway/mecha/grpcapi/component"
	pb "github.com/mecha-gateway/mecha/grpcapi/runtimev1"
)

type configService struct {
	pb.UnimplementedConfigurationServer
	s *Server
}

func checkScope(appID, group, label string) (component.ConfigScope, error) {
	for _, f := range [][2]string{{"app_id", appID}, {"group", group}, {"label", label}} {
		if err := checkName(f[0], f[1], false); err != nil {
			return component.ConfigScope{}, err
		}
	}
	return component.ConfigScope{AppID: appID, Group: group, Label: label}, nil
}

// configArgs resolves the store and checks the scope and keys of a
// configuration request.
func (s *Server) configArgs(storeName, appID, group, label string, keys []string) (component.ConfigStore, component.ConfigScope, error) {
	store, _, err := lookup[component.ConfigStore](s, component.CapConfig, "store_name", storeName)
	if err != nil {
		return nil, component.ConfigScope{}, err
	}
	scope, err := checkScope(appID, group, label)
	if err != nil {
		return nil, scope, err
	}
	return store, scope, checkNames("keys", keys)
}

func itemToPB(it *component.ConfigItem) *pb.ConfigurationItem {
	return &pb.ConfigurationItem{AppId: it.AppID, Group: it.Group, Label: it.Label, Key: it.Key,
		Content: it.Content, Tags: it.Tags, Version: it.Version, Metadata: it.Metadata}
}

func (c *configService) Get(ctx context.Context, req *pb.GetConfigurationRequest) (*pb.GetConfigurationResponse, error) {
	store, scope, err := c.s.configArgs(req.StoreName, req.AppId, req.Group, req.Label, req.Keys)
	if err != nil {
		return nil, err
	}
	items, err := store.Get(ctx, scope, req.Keys)
	if err != nil {
		return nil, err
	}
	resp := &pb.GetConfigurationResponse{Items: make([]*pb.ConfigurationItem, len(items))}
	for i := range items {
		resp.Items[i] = itemToPB(&items[i])
	}
	return resp, nil
}

func (c *configService) Save(ctx context.Context, req *pb.SaveConfigurationRequest) (*pb.SaveConfigurationResponse, error) {
	store, _, err := lookup[component.ConfigStore](c.s, component.CapConfig, "store_name", req.StoreName)
	if err != nil {
		return nil, err
	}
	if len(req.Items) == 0 {
		return nil, invalid("items is empty")
	}
	type id struct {
		scope component.ConfigScope
		key   string
	}
	seen := map[id]bool{}
	items := make([]component.ConfigItem, len(req.Items))
	for i, it := range req.Items {
		if it == nil {
			return nil, invalid("items[%d] is empty", i)
		}
		appID, group, label := or(it.AppId, req.AppId), or(it.Group, req.Group), or(it.Label, req.Label)
		scope, err := checkScope(appID, group, label)
		if err != nil {
			return nil, err
		}
		if err := checkName("items[].key", it.Key, true); err != nil {
			return nil, err
		}
		k := id{scope, it.Key}
		if seen[k] {
			return nil, invalid("items[%d]: key %q appears twice in one request", i, it.Key)
		}
		seen[k] = true
		items[i] = component.ConfigItem{AppID: appID, Group: group, Label: label, Key: it.Key,
			Content: it.Content, Tags: it.Tags, Version: it.Version, Metadata: it.Metadata}
	}
	saved, err := store.Save(ctx, items)
	if err != nil {
		return nil, err
	}
	resp := &pb.SaveConfigurationResponse{Items: make([]*pb.ConfigurationItem, len(saved))}
	for i := range saved {
		resp.Items[i] = itemToPB(&saved[i])
	}
	return resp, nil
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (c *configService) Delete(ctx context.Context, req *pb.DeleteConfigurationRequest) (*pb.DeleteConfigurationResponse, error) {
	store, scope, err := c.s.configArgs(req.StoreName, req.AppId, req.Group, req.Label, req.Keys)
	if err != nil {
		return nil, err
	}
	n, err := store.Delete(ctx, scope, req.Keys)
	if err != nil {
		return nil, err
	}
	return &pb.DeleteConfigurationResponse{Deleted: int64(n)}, nil
}

// subscribeConfig starts a subscription and returns its id and the
// channel its changes arrive on; the subscription ends with ctx.
func subscribeConfig(ctx context.Context, store component.ConfigStore, scope component.ConfigScope, keys []string) (string, <-chan []component.ConfigChange, error) {
	ch := make(chan []component.ConfigChange, 64)
	err := store.Subscribe(ctx, scope, keys, func(changes []component.ConfigChange) {
		// Back-pressure: a slow client holds up only its own
		// subscription's delivery, until it goes away.
		select {
		case ch <- changes:
		case <-ctx.Done():
		}
	})
	if err != nil {
		return "", nil, err
	}
	return newID(), ch, nil
}

func newID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (c *configService) Subscribe(req *pb.SubscribeConfigurationRequest, stream pb.Configuration_SubscribeServer) error {
	store, scope, err := c.s.configArgs(req.StoreName, req.AppId, req.Group, req.Label, req.Keys)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	id, ch, err := subscribeConfig(ctx, store, scope, req.Keys)
	if err != nil {
		return err
	}
	if err := stream.Send(&pb.SubscribeConfigurationResponse{SubscriptionId: id}); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case changes := <-ch:
			resp := &pb.SubscribeConfigurationResponse{SubscriptionId: id, Changes: make([]*pb.ConfigurationChange, len(changes))}
			for i := range changes {
				t := pb.ConfigurationChangeType_CONFIGURATION_CHANGE_TYPE_UPDATED
				if changes[i].Deleted {
					t = pb.ConfigurationChangeType_CONFIGURATION_CHANGE_TYPE_DELETED
				}
				resp.Changes[i] = &pb.ConfigurationChange{Type: t, Item: itemToPB(&changes[i].Item)}
			}
			if err := stream.Send(resp); err != nil {
				return err
			}
		}
	}
}
