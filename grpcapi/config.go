package grpcapi

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/mecha-gateway/mecha/configs"
	"github.com/mecha-gateway/mecha/grpcapi/component"
)

// Config is the `grpc` section of a configuration.
type Config struct {
	// Listen is the address of the mecha.runtime.v1 services (and of
	// grpc.health.v1 and server reflection).
	Listen string `yaml:"listen"`
	// DaprListen, when set, serves dapr.proto.runtime.v1.Dapr (the
	// configuration, lock and pub/sub calls) for unmodified Dapr SDK
	// applications (Dapr's own default is 127.0.0.1:50001).
	DaprListen string `yaml:"dapr_listen"`
	// Auth requires a token on every call but health checks.
	Auth Auth `yaml:"auth"`
	// TLS, when set, serves both listeners over TLS.
	TLS *configs.TLSServer `yaml:"tls"`
	// MaxMessageSize bounds a request or response message (default 4mb).
	MaxMessageSize configs.Size `yaml:"max_message_size"`
	// SegmentSize is how many ids a sequencer in SEGMENT mode reserves
	// at once per key (default 1000).
	SegmentSize int64 `yaml:"segment_size"`
	// Components are the stores behind the services, by capability
	// (config, lock, pubsub, sequencer) and name; each entry names its
	// type plus the type's options.
	Components map[string]map[string]configs.Node `yaml:"components"`
}

// Auth configures call authentication.
type Auth struct {
	// Token, when set, must be sent by every call as metadata
	// `authorization: Bearer <token>` or `dapr-api-token: <token>` (what
	// Dapr SDKs send when DAPR_API_TOKEN is set).
	Token configs.Secret `yaml:"token"`
}

// DefaultConfig returns the section's defaults.
func DefaultConfig() *Config {
	return &Config{MaxMessageSize: 4 << 20, SegmentSize: 1000}
}

// Validate checks addresses and limits.
func (c *Config) Validate() error {
	var errs []error
	if c.Listen == "" {
		errs = append(errs, configs.Errorf("listen", "is required"))
	} else if err := configs.CheckListen("listen", c.Listen); err != nil {
		errs = append(errs, err)
	}
	if c.DaprListen != "" {
		if err := configs.CheckListen("dapr_listen", c.DaprListen); err != nil {
			errs = append(errs, err)
		} else if c.DaprListen == c.Listen && !strings.HasSuffix(c.Listen, ":0") {
			errs = append(errs, configs.Errorf("dapr_listen", "must differ from listen"))
		}
	}
	if c.MaxMessageSize < 1024 || c.MaxMessageSize > 1<<30 {
		errs = append(errs, configs.Errorf("max_message_size", "must be between 1kb and 1gb"))
	}
	if c.SegmentSize < 1 || c.SegmentSize > 1<<20 {
		errs = append(errs, configs.Errorf("segment_size", "must be between 1 and 1048576"))
	}
	for capName := range c.Components {
		if !knownCapability(capName) {
			errs = append(errs, configs.Errorf("components."+capName, "unknown capability (known: %s)", capabilityNames()))
		}
	}
	return errors.Join(errs...)
}

func knownCapability(name string) bool {
	for _, c := range component.Capabilities {
		if string(c) == name {
			return true
		}
	}
	return false
}

func capabilityNames() string {
	var out []string
	for _, c := range component.Capabilities {
		out = append(out, string(c))
	}
	return strings.Join(out, ", ")
}

// Entry is one configured component.
type Entry struct {
	Capability component.Capability
	Name, Type string
	Node       configs.Node
	C          component.Component
	started    bool
}

// Set is the components of a configuration, built and not yet started.
type Set struct {
	byCap map[component.Capability]map[string]*Entry
}

// Entries lists the set's components by capability, then name.
func (s *Set) Entries() []*Entry {
	if s == nil {
		return nil
	}
	var out []*Entry
	for _, c := range component.Capabilities {
		names := make([]string, 0, len(s.byCap[c]))
		for n := range s.byCap[c] {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			out = append(out, s.byCap[c][n])
		}
	}
	return out
}

// BuildSet decodes and builds every component of cfg. Components whose
// entry is unchanged from running are carried over instead of rebuilt.
// Constructors have no side effects, so a failure leaves nothing behind.
func BuildSet(cfg *Config, env component.Env, running *Set) (*Set, error) {
	var errs configs.Errors
	add := func(err error, n configs.Node) { errs.Add(err, n.Pos(), n.Path()) }
	s := &Set{byCap: map[component.Capability]map[string]*Entry{}}
	for _, capab := range component.Capabilities {
		entries := cfg.Components[string(capab)]
		s.byCap[capab] = map[string]*Entry{}
		names := make([]string, 0, len(entries))
		for n := range entries {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, name := range names {
			node := entries[name]
			typ, ok := node.Scalar("type")
			if !ok {
				errs = append(errs, &configs.Error{Pos: node.Pos(), Key: node.Path() + ".type", Msg: "is required (one of: " + strings.Join(component.Types(capab), ", ") + ")"})
				continue
			}
			mod, ok := component.Lookup(capab, typ)
			if !ok {
				errs = append(errs, &configs.Error{Pos: node.Pos(), Key: node.Path() + ".type", Msg: fmt.Sprintf("unknown %s component type %q (known: %s)", capab, typ, strings.Join(component.Types(capab), ", "))})
				continue
			}
			if running != nil {
				if old, ok := running.byCap[capab][name]; ok && old.Type == typ && old.Node.Equal(node) {
					s.byCap[capab][name] = &Entry{Capability: capab, Name: name, Type: typ, Node: node, C: old.C, started: true}
					continue
				}
			}
			ccfg := mod.NewConfig()
			if err := node.Decode(ccfg); err != nil {
				add(err, node)
				continue
			}
			cenv := env
			cenv.Name = name
			if env.Logger != nil {
				cenv.Logger = env.Logger.With("component", name, "capability", string(capab))
			}
			c, err := mod.New(ccfg, cenv)
			if err != nil {
				add(err, node)
				continue
			}
			s.byCap[capab][name] = &Entry{Capability: capab, Name: name, Type: typ, Node: node, C: c}
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return s, nil
}
