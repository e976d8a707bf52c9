// Package modules compiles every Mecha module into the binary. Each
// registers itself by its configuration `type` or `protocol`; adding one
// is adding a line here.
package modules

import (
	_ "github.com/mecha-gateway/mecha/backends/embedded"
	_ "github.com/mecha-gateway/mecha/backends/fs"
	_ "github.com/mecha-gateway/mecha/backends/memcached"
	_ "github.com/mecha-gateway/mecha/backends/memory"
	_ "github.com/mecha-gateway/mecha/backends/mysql"
	_ "github.com/mecha-gateway/mecha/backends/redis"
	_ "github.com/mecha-gateway/mecha/backends/rediscluster"
	_ "github.com/mecha-gateway/mecha/backends/s3"
	_ "github.com/mecha-gateway/mecha/frontends/mysql"
	_ "github.com/mecha-gateway/mecha/frontends/redis"
	_ "github.com/mecha-gateway/mecha/frontends/s3"
	_ "github.com/mecha-gateway/mecha/grpcapi/components/contribpubsub"
	_ "github.com/mecha-gateway/mecha/grpcapi/components/embedded"
	_ "github.com/mecha-gateway/mecha/grpcapi/components/mysql"
	_ "github.com/mecha-gateway/mecha/grpcapi/components/postgresql"
	_ "github.com/mecha-gateway/mecha/grpcapi/components/redis"
)
