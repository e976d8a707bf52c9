package redis

import (
	"context"
	"sort"
	"strconv"
	"time"

	"github.com/mecha-gateway/mecha/backends/kv"
	"github.com/mecha-gateway/mecha/frontends/redis/resp"
)

func init() {
	reg("ping", cmdPing, noTx)
	reg("echo", cmdEcho, noTx)
	reg("select", cmdSelect, noTx)
	reg("time", cmdTime, noTx)
	reg("wait", cmdWait, noTx)
	reg("lastsave", cmdLastSave, noTx)
	reg("save", cmdSave, noTx, noMulti)
	reg("bgsave", cmdSave, noTx)
	reg("bgrewriteaof", cmdSave, noTx)
	reg("readonly", cmdNoCluster, noTx)
	reg("readwrite", cmdNoCluster, noTx)
	reg("command", cmdCommand, noTx)
	reg("command|count", cmdCommandCount, noTx)
	reg("command|list", cmdCommandList, noTx)
	reg("command|info", cmdCommandInfo, noTx)
	reg("command|docs", cmdCommandDocs, noTx)
}

func cmdPing(c *call) {
	if len(c.args) > 2 {
		c.errorMsg("ERR wrong number of arguments for 'ping' command")
		return
	}
	if c.s.Subscribed() {
		c.array(2)
		c.bulkStr("pong")
		if len(c.args) == 2 {
			c.bulk(c.args[1])
		} else {
			c.bulkStr("")
		}
		return
	}
	if len(c.args) == 2 {
		c.bulk(c.args[1])
		return
	}
	c.simple("PONG")
}

func cmdEcho(c *call) { c.bulk(c.args[1]) }

func cmdSelect(c *call) {
	n, ok := resp.ParseInt(c.args[1])
	if !ok || n > 1<<31-1 || n < -1<<31 {
		c.errorMsg(errNotInt)
		return
	}
	if n < 0 || n >= int64(c.s.e.store.Databases()) {
		c.errorMsg(errDBRange)
		return
	}
	if n != 0 && !c.s.e.Has(kv.FeatureMultiDB) {
		c.errorMsg(c.s.e.unsupported("select"))
		return
	}
	if c.inTx {
		c.tx.Select(int(n))
	}
	c.s.db = int(n)
	c.ok()
}

func cmdTime(c *call) {
	now := time.Now()
	c.array(2)
	c.bulkStr(strconv.FormatInt(now.Unix(), 10))
	c.bulkStr(strconv.FormatInt(int64(now.Nanosecond()/1000), 10))
}

func cmdWait(c *call) {
	n, ok := c.argInt(1)
	if !ok {
		return
	}
	ms, ok := c.argInt(2)
	if !ok {
		return
	}
	if ms < 0 {
		c.errorMsg("ERR timeout is negative")
		return
	}
	// No replicas: WAIT for some waits out its timeout and reports none.
	if n > 0 && !c.inTx {
		d := time.Duration(ms) * time.Millisecond
		if ms == 0 {
			d = time.Duration(1<<63 - 1)
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-c.ctx.Done():
		}
		t.Stop()
	}
	c.int(0)
}

// Compactor is implemented by stores that can rewrite their log on
// demand (SAVE, BGSAVE, BGREWRITEAOF).
type Compactor interface {
	Compact(ctx context.Context, wait bool) error
	LastSave() time.Time
}

func cmdLastSave(c *call) {
	if cp, ok := c.s.e.store.(Compactor); ok {
		c.int(cp.LastSave().Unix())
		return
	}
	c.int(0)
}

func cmdSave(c *call) {
	cp, ok := c.s.e.store.(Compactor)
	if !ok {
		c.errorMsg(c.s.e.unsupported(string(c.args[0])))
		return
	}
	name := lower(c.args[0])
	if err := cp.Compact(c.ctx, name == "save"); err != nil {
		c.errorMsg("ERR " + err.Error())
		return
	}
	switch name {
	case "save":
		c.ok()
	case "bgsave":
		c.simple("Background saving started")
	default:
		c.simple("Background append only file rewriting started")
	}
}

func cmdNoCluster(c *call) { c.errorMsg("ERR This instance has cluster support disabled") }

// commandEntry writes one command's COMMAND INFO entry.
func (c *call) commandEntry(info *resp.CommandInfo) {
	c.array(10)
	c.bulkStr(info.Name)
	c.int(int64(info.Arity))
	flags := info.Flags.Names()
	c.array(len(flags))
	for _, f := range flags {
		c.simple(f)
	}
	c.int(int64(info.FirstKey))
	c.int(int64(info.LastKey))
	c.int(int64(info.Step))
	cats := info.Categories.Names()
	c.array(len(cats))
	for _, f := range cats {
		c.simple(f)
	}
	c.array(0) // tips
	c.array(0) // key specs
	var subs []*resp.CommandInfo
	for _, s := range info.Subcommands {
		if c.s.e.Supported(s.Name) {
			subs = append(subs, s)
		}
	}
	c.array(len(subs))
	for _, s := range subs {
		c.commandEntry(s)
	}
}

// supportedCommands lists the top-level commands the engine serves,
// with those the frontend answers itself.
func (e *Engine) supportedCommands() []*resp.CommandInfo {
	var out []*resp.CommandInfo
	for _, info := range resp.Commands() {
		ok := e.Supported(info.Name)
		for _, s := range info.Subcommands {
			ok = ok || e.Supported(s.Name)
		}
		switch info.Name {
		case "client", "info", "config", "auth", "hello", "quit", "reset":
			ok = true
		}
		if ok {
			out = append(out, info)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func cmdCommand(c *call) {
	if len(c.args) > 1 {
		c.errorMsg("ERR unknown subcommand '" + string(c.args[1]) + "'. Try COMMAND HELP.")
		return
	}
	cmds := c.s.e.supportedCommands()
	c.array(len(cmds))
	for _, info := range cmds {
		c.commandEntry(info)
	}
}

func cmdCommandCount(c *call) { c.int(int64(len(c.s.e.supportedCommands()))) }

func cmdCommandList(c *call) {
	cmds := c.s.e.supportedCommands()
	c.array(len(cmds))
	for _, info := range cmds {
		c.bulkStr(info.Name)
	}
}

func cmdCommandInfo(c *call) {
	names := c.args[2:]
	if len(names) == 0 {
		c.args = c.args[:1]
		cmdCommand(c)
		return
	}
	c.array(len(names))
	for _, n := range names {
		info := resp.Lookup(n)
		if info == nil {
			c.nullArray()
			continue
		}
		c.commandEntry(info)
	}
}

// cmdCommandDocs answers with no documentation: redis-cli then uses its
// built-in help.
func cmdCommandDocs(c *call) { c.array(0) }
