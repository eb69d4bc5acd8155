package server

import "atoll.dev/atoll/examples/kv/store"

func init() {
	const (
		w  = flagWrite
		wd = flagWrite | flagDenyOOM
		ro = flagReadOnly
	)
	one := [3]int{1, 1, 1}
	all := [3]int{1, -1, 1}
	register([]command{
		// Strings.
		{"get", 2, ro, one, cmdGet},
		{"set", -3, wd, one, cmdSet},
		{"setnx", 3, wd, one, cmdSetNX},
		{"setex", 4, wd, one, func(x *ctx) { setEx(x, 1000) }},
		{"psetex", 4, wd, one, func(x *ctx) { setEx(x, 1) }},
		{"getset", 3, wd, one, cmdGetSet},
		{"getdel", 2, w, one, cmdGetDel},
		{"getex", -2, w, one, cmdGetEx},
		{"mget", -2, ro, all, cmdMGet},
		{"mset", -3, wd, [3]int{1, -1, 2}, func(x *ctx) { mset(x, "mset", false) }},
		{"msetnx", -3, wd, [3]int{1, -1, 2}, func(x *ctx) { mset(x, "msetnx", true) }},
		{"strlen", 2, ro, one, cmdStrLen},
		{"append", 3, wd, one, cmdAppend},
		{"incr", 2, wd, one, func(x *ctx) { incr(x, 1) }},
		{"decr", 2, wd, one, func(x *ctx) { incr(x, -1) }},
		{"incrby", 3, wd, one, cmdIncrBy},
		{"decrby", 3, wd, one, cmdDecrBy},
		{"incrbyfloat", 3, wd, one, cmdIncrByFloat},
		// Keys.
		{"del", -2, w, all, cmdDel},
		{"unlink", -2, w, all, cmdDel},
		{"exists", -2, ro, all, cmdExists},
		{"type", 2, ro, one, cmdType},
		{"expire", -3, w, one, func(x *ctx) { expire(x, 1000, false) }},
		{"pexpire", -3, w, one, func(x *ctx) { expire(x, 1, false) }},
		{"expireat", -3, w, one, func(x *ctx) { expire(x, 1000, true) }},
		{"pexpireat", -3, w, one, func(x *ctx) { expire(x, 1, true) }},
		{"ttl", 2, ro, one, func(x *ctx) { ttl(x, false) }},
		{"pttl", 2, ro, one, func(x *ctx) { ttl(x, true) }},
		{"expiretime", 2, ro, one, func(x *ctx) { expireTime(x, false) }},
		{"pexpiretime", 2, ro, one, func(x *ctx) { expireTime(x, true) }},
		{"persist", 2, w, one, cmdPersist},
		{"scan", -2, ro, [3]int{}, cmdScan},
		{"keys", 2, ro, [3]int{}, cmdKeys},
		{"dbsize", 1, ro, [3]int{}, func(x *ctx) { x.r.int(int64(x.tx.DBSize())) }},
		{"flushdb", -1, w, [3]int{}, cmdFlush},
		{"flushall", -1, w, [3]int{}, cmdFlush},
		// Hashes.
		{"hset", -4, wd, one, func(x *ctx) { hset(x, "hset") }},
		{"hmset", -4, wd, one, func(x *ctx) { hset(x, "hmset") }},
		{"hsetnx", 4, wd, one, cmdHSetNX},
		{"hget", 3, ro, one, cmdHGet},
		{"hmget", -3, ro, one, cmdHMGet},
		{"hdel", -3, w, one, cmdHDel},
		{"hgetall", 2, ro, one, cmdHGetAll},
		{"hkeys", 2, ro, one, func(x *ctx) { hpart(x, 0) }},
		{"hvals", 2, ro, one, func(x *ctx) { hpart(x, 1) }},
		{"hlen", 2, ro, one, cmdHLen},
		{"hexists", 3, ro, one, cmdHExists},
		{"hincrby", 4, wd, one, cmdHIncrBy},
		{"hscan", -3, ro, one, cmdHScan},
		// Lists.
		{"lpush", -3, wd, one, func(x *ctx) { push(x, true, false) }},
		{"rpush", -3, wd, one, func(x *ctx) { push(x, false, false) }},
		{"lpushx", -3, wd, one, func(x *ctx) { push(x, true, true) }},
		{"rpushx", -3, wd, one, func(x *ctx) { push(x, false, true) }},
		{"lpop", -2, w, one, func(x *ctx) { pop(x, true) }},
		{"rpop", -2, w, one, func(x *ctx) { pop(x, false) }},
		{"lrange", 4, ro, one, cmdLRange},
		{"llen", 2, ro, one, cmdLLen},
		{"lindex", 3, ro, one, cmdLIndex},
		// Sets.
		{"sadd", -3, wd, one, cmdSAdd},
		{"srem", -3, w, one, cmdSRem},
		{"smembers", 2, ro, one, cmdSMembers},
		{"sismember", 3, ro, one, cmdSIsMember},
		{"smismember", -3, ro, one, cmdSMIsMember},
		{"scard", 2, ro, one, cmdSCard},
		{"sscan", -3, ro, one, cmdSScan},
	})
}

// Strings.

func cmdGet(x *ctx) {
	v, err := x.tx.Get(x.args[1])
	if err != nil {
		x.fail(err)
		return
	}
	x.r.bulkOrNull(v)
}

// expireArg reads an expiry argument of a command named name: a time of
// unit milliseconds, relative to now unless abs, as Unix milliseconds.
func (x *ctx) expireArg(i int, unit int64, abs bool, name string) (int64, bool) {
	n, ok := x.int(i)
	if !ok {
		return 0, false
	}
	if n <= 0 || n > maxInt64/unit {
		x.r.err("ERR invalid expire time in '" + name + "' command")
		return 0, false
	}
	n *= unit
	if !abs {
		if n > maxInt64-x.tx.Now() {
			x.r.err("ERR invalid expire time in '" + name + "' command")
			return 0, false
		}
		n += x.tx.Now()
	}
	return n, true
}

const maxInt64 = 1<<63 - 1

func cmdSet(x *ctx) {
	var o store.SetOptions
	expiry := false
	for i := 3; i < len(x.args); i++ {
		more := i+1 < len(x.args)
		switch {
		case x.is(i, "nx") && !o.XX:
			o.NX = true
		case x.is(i, "xx") && !o.NX:
			o.XX = true
		case x.is(i, "get"):
			o.Get = true
		case x.is(i, "keepttl") && !expiry:
			o.KeepTTL = true
		case more && !o.KeepTTL && !expiry && (x.is(i, "ex") || x.is(i, "px") || x.is(i, "exat") || x.is(i, "pxat")):
			unit := int64(1)
			if x.is(i, "ex") || x.is(i, "exat") {
				unit = 1000
			}
			abs := x.is(i, "exat") || x.is(i, "pxat")
			at, ok := x.expireArg(i+1, unit, abs, "set")
			if !ok {
				return
			}
			o.At = at
			expiry = true
			i++
		default:
			x.r.err(errSyntax)
			return
		}
	}
	old, done, err := x.tx.Set(x.args[1], x.args[2], o)
	switch {
	case err != nil:
		x.fail(err)
	case o.Get:
		x.r.bulkOrNull(old)
	case done:
		x.r.ok()
	default:
		x.r.null()
	}
}

func cmdSetNX(x *ctx) {
	_, done, err := x.tx.Set(x.args[1], x.args[2], store.SetOptions{NX: true})
	if err != nil {
		x.fail(err)
		return
	}
	x.r.bool(done)
}

// setEx is SETEX (unit 1000) and PSETEX (1).
func setEx(x *ctx, unit int64) {
	name := "setex"
	if unit == 1 {
		name = "psetex"
	}
	at, ok := x.expireArg(2, unit, false, name)
	if !ok {
		return
	}
	if _, _, err := x.tx.Set(x.args[1], x.args[3], store.SetOptions{At: at}); err != nil {
		x.fail(err)
		return
	}
	x.r.ok()
}

func cmdGetSet(x *ctx) {
	old, _, err := x.tx.Set(x.args[1], x.args[2], store.SetOptions{Get: true})
	if err != nil {
		x.fail(err)
		return
	}
	x.r.bulkOrNull(old)
}

func cmdGetDel(x *ctx) {
	v, err := x.tx.GetDel(x.args[1])
	if err != nil {
		x.fail(err)
		return
	}
	x.r.bulkOrNull(v)
}

func cmdGetEx(x *ctx) {
	var at int64
	set, persist := false, false
	for i := 2; i < len(x.args); i++ {
		more := i+1 < len(x.args)
		switch {
		case x.is(i, "persist") && !set:
			persist, set = true, true
		case more && !set && (x.is(i, "ex") || x.is(i, "px") || x.is(i, "exat") || x.is(i, "pxat")):
			unit := int64(1)
			if x.is(i, "ex") || x.is(i, "exat") {
				unit = 1000
			}
			var ok bool
			if at, ok = x.expireArg(i+1, unit, x.is(i, "exat") || x.is(i, "pxat"), "getex"); !ok {
				return
			}
			set = true
			i++
		default:
			x.r.err(errSyntax)
			return
		}
	}
	_ = persist // PERSIST is an expiry of 0
	v, err := x.tx.GetEx(x.args[1], set, at)
	if err != nil {
		x.fail(err)
		return
	}
	x.r.bulkOrNull(v)
}

func cmdMGet(x *ctx) {
	x.r.array(len(x.args) - 1)
	for _, k := range x.args[1:] {
		v, _ := x.tx.Get(k) // another kind of value is a null, as in Redis
		x.r.bulkOrNull(v)
	}
}

func mset(x *ctx, name string, nx bool) {
	if len(x.args)%2 == 0 {
		x.wrongArgs(name)
		return
	}
	done := x.tx.MSet(x.args[1:], nx)
	if nx {
		x.r.bool(done)
	} else {
		x.r.ok()
	}
}

func cmdStrLen(x *ctx) {
	n, err := x.tx.StrLen(x.args[1])
	if err != nil {
		x.fail(err)
		return
	}
	x.r.int(int64(n))
}

func cmdAppend(x *ctx) {
	n, err := x.tx.Append(x.args[1], x.args[2])
	if err != nil {
		x.fail(err)
		return
	}
	x.r.int(int64(n))
}

func incr(x *ctx, delta int64) {
	n, err := x.tx.IncrBy(x.args[1], delta)
	if err != nil {
		x.fail(err)
		return
	}
	x.r.int(n)
}

func cmdIncrBy(x *ctx) {
	if d, ok := x.int(2); ok {
		incr(x, d)
	}
}

func cmdDecrBy(x *ctx) {
	d, ok := x.int(2)
	if !ok {
		return
	}
	if d == -1<<63 {
		x.r.err("ERR decrement would overflow")
		return
	}
	incr(x, -d)
}

func cmdIncrByFloat(x *ctx) {
	v, err := x.tx.IncrByFloat(x.args[1], x.args[2])
	if err != nil {
		x.fail(err)
		return
	}
	x.r.bulk(v)
}

// Keys.

func cmdDel(x *ctx) {
	n := 0
	for _, k := range x.args[1:] {
		if x.tx.Del(k) {
			n++
		}
	}
	x.r.int(int64(n))
}

func cmdExists(x *ctx) {
	n := 0
	for _, k := range x.args[1:] {
		if x.tx.Exists(k) {
			n++
		}
	}
	x.r.int(int64(n))
}

func cmdType(x *ctx) { x.r.simple(x.tx.Type(x.args[1]).String()) }

// expire is EXPIRE and its kin: a time in unit milliseconds, absolute or
// from now.
func expire(x *ctx, unit int64, abs bool) {
	var cond store.ExpireCond
	for i := 3; i < len(x.args); i++ {
		switch {
		case x.is(i, "nx"):
			cond |= store.ExpireNX
		case x.is(i, "xx"):
			cond |= store.ExpireXX
		case x.is(i, "gt"):
			cond |= store.ExpireGT
		case x.is(i, "lt"):
			cond |= store.ExpireLT
		default:
			x.r.err("ERR Unsupported option " + string(x.args[i]))
			return
		}
	}
	if cond&store.ExpireNX != 0 && cond&^store.ExpireNX != 0 {
		x.r.err("ERR NX and XX, GT or LT options at the same time are not compatible")
		return
	}
	if cond&store.ExpireGT != 0 && cond&store.ExpireLT != 0 {
		x.r.err("ERR GT and LT options at the same time are not compatible")
		return
	}
	n, ok := x.int(2)
	if !ok {
		return
	}
	name := string(x.args[0])
	bad := func() { x.r.err("ERR invalid expire time in '" + lower(name) + "' command") }
	if unit == 1000 {
		if n > maxInt64/1000 || n < -maxInt64/1000 {
			bad()
			return
		}
		n *= 1000
	}
	if !abs {
		if n > maxInt64-x.tx.Now() {
			bad()
			return
		}
		n += x.tx.Now()
	}
	x.r.bool(x.tx.Expire(x.args[1], n, cond))
}

func lower(s string) string { return lookup([]byte(s)).name }

func ttl(x *ctx, ms bool) {
	t := x.tx.TTL(x.args[1])
	if t >= 0 && !ms {
		t = (t + 500) / 1000
	}
	x.r.int(t)
}

func expireTime(x *ctx, ms bool) {
	t := x.tx.ExpireTime(x.args[1])
	if t >= 0 && !ms {
		t = (t + 500) / 1000
	}
	x.r.int(t)
}

func cmdPersist(x *ctx) { x.r.bool(x.tx.Persist(x.args[1])) }

// kindNever is a TYPE filter no value has: SCAN TYPE of an unknown name.
const kindNever store.Kind = 255

func cmdScan(x *ctx) {
	a, ok := x.parseScan(1, true, false)
	if !ok {
		return
	}
	kind := a.kind
	if !a.anyKind && kind == store.KindNone {
		kind = kindNever
	}
	next, keys := x.tx.Scan(a.cursor, a.count, a.pattern, kind)
	x.scanReply(next, keys)
}

func cmdKeys(x *ctx) { x.r.bulks(x.tx.Keys(x.args[1])) }

func cmdFlush(x *ctx) {
	if len(x.args) > 2 || len(x.args) == 2 && !x.is(1, "async") && !x.is(1, "sync") {
		x.r.err(errSyntax)
		return
	}
	x.tx.Flush()
	x.r.ok()
}

// Hashes.

func hset(x *ctx, name string) {
	if len(x.args)%2 != 0 {
		x.wrongArgs(name)
		return
	}
	n, err := x.tx.HSet(x.args[1], x.args[2:])
	switch {
	case err != nil:
		x.fail(err)
	case name == "hmset":
		x.r.ok()
	default:
		x.r.int(int64(n))
	}
}

func cmdHSetNX(x *ctx) {
	done, err := x.tx.HSetNX(x.args[1], x.args[2], x.args[3])
	if err != nil {
		x.fail(err)
		return
	}
	x.r.bool(done)
}

func cmdHGet(x *ctx) {
	v, err := x.tx.HGet(x.args[1], x.args[2])
	if err != nil {
		x.fail(err)
		return
	}
	x.r.bulkOrNull(v)
}

func cmdHMGet(x *ctx) {
	vs, err := x.tx.HMGet(x.args[1], x.args[2:])
	if err != nil {
		x.fail(err)
		return
	}
	x.r.bulks(vs)
}

func cmdHDel(x *ctx) {
	n, err := x.tx.HDel(x.args[1], x.args[2:])
	if err != nil {
		x.fail(err)
		return
	}
	x.r.int(int64(n))
}

func cmdHGetAll(x *ctx) {
	kv, err := x.tx.HGetAll(x.args[1])
	if err != nil {
		x.fail(err)
		return
	}
	x.r.mapLen(len(kv) / 2)
	for _, b := range kv {
		x.r.bulk(b)
	}
}

// hpart is HKEYS (part 0) and HVALS (1).
func hpart(x *ctx, part int) {
	kv, err := x.tx.HGetAll(x.args[1])
	if err != nil {
		x.fail(err)
		return
	}
	x.r.array(len(kv) / 2)
	for i := part; i < len(kv); i += 2 {
		x.r.bulk(kv[i])
	}
}

func cmdHLen(x *ctx) {
	n, err := x.tx.HLen(x.args[1])
	if err != nil {
		x.fail(err)
		return
	}
	x.r.int(int64(n))
}

func cmdHExists(x *ctx) {
	ok, err := x.tx.HExists(x.args[1], x.args[2])
	if err != nil {
		x.fail(err)
		return
	}
	x.r.bool(ok)
}

func cmdHIncrBy(x *ctx) {
	d, ok := x.int(3)
	if !ok {
		return
	}
	n, err := x.tx.HIncrBy(x.args[1], x.args[2], d)
	if err != nil {
		x.fail(err)
		return
	}
	x.r.int(n)
}

func cmdHScan(x *ctx) {
	a, ok := x.parseScan(2, false, true)
	if !ok {
		return
	}
	next, items, err := x.tx.HScan(x.args[1], a.cursor, a.count, a.pattern, a.noValues)
	if err != nil {
		x.fail(err)
		return
	}
	x.scanReply(next, items)
}

// Lists.

func push(x *ctx, left, onlyExisting bool) {
	n, err := x.tx.Push(x.args[1], x.args[2:], left, onlyExisting)
	if err != nil {
		x.fail(err)
		return
	}
	x.r.int(int64(n))
}

func pop(x *ctx, left bool) {
	if len(x.args) > 3 {
		x.wrongArgs(lower(string(x.args[0])))
		return
	}
	count := int64(1)
	if len(x.args) == 3 {
		var ok bool
		if count, ok = store.ParseInt(x.args[2]); !ok || count < 0 {
			x.r.err(errPositive)
			return
		}
	}
	es, err := x.tx.Pop(x.args[1], int(min(count, 1<<31)), left)
	switch {
	case err != nil:
		x.fail(err)
	case len(x.args) == 2 && es == nil:
		x.r.null()
	case len(x.args) == 2:
		x.r.bulk(es[0])
	case es == nil:
		x.r.nullArray()
	default:
		x.r.bulks(es)
	}
}

func cmdLRange(x *ctx) {
	start, ok := x.int(2)
	if !ok {
		return
	}
	stop, ok := x.int(3)
	if !ok {
		return
	}
	es, err := x.tx.LRange(x.args[1], start, stop)
	if err != nil {
		x.fail(err)
		return
	}
	x.r.bulks(es)
}

func cmdLLen(x *ctx) {
	n, err := x.tx.LLen(x.args[1])
	if err != nil {
		x.fail(err)
		return
	}
	x.r.int(int64(n))
}

func cmdLIndex(x *ctx) {
	i, ok := x.int(2)
	if !ok {
		return
	}
	v, err := x.tx.LIndex(x.args[1], i)
	if err != nil {
		x.fail(err)
		return
	}
	x.r.bulkOrNull(v)
}

// Sets.

func cmdSAdd(x *ctx) {
	n, err := x.tx.SAdd(x.args[1], x.args[2:])
	if err != nil {
		x.fail(err)
		return
	}
	x.r.int(int64(n))
}

func cmdSRem(x *ctx) {
	n, err := x.tx.SRem(x.args[1], x.args[2:])
	if err != nil {
		x.fail(err)
		return
	}
	x.r.int(int64(n))
}

func cmdSMembers(x *ctx) {
	ms, err := x.tx.SMembers(x.args[1])
	if err != nil {
		x.fail(err)
		return
	}
	x.r.setLen(len(ms))
	for _, m := range ms {
		x.r.bulk(m)
	}
}

func cmdSIsMember(x *ctx) {
	ok, err := x.tx.SIsMember(x.args[1], x.args[2])
	if err != nil {
		x.fail(err)
		return
	}
	x.r.bool(ok)
}

func cmdSMIsMember(x *ctx) {
	// Check the kind once, so that the reply is the error or the array.
	if _, err := x.tx.SIsMember(x.args[1], nil); err != nil {
		x.fail(err)
		return
	}
	x.r.array(len(x.args) - 2)
	for _, m := range x.args[2:] {
		ok, _ := x.tx.SIsMember(x.args[1], m)
		x.r.bool(ok)
	}
}

func cmdSCard(x *ctx) {
	n, err := x.tx.SCard(x.args[1])
	if err != nil {
		x.fail(err)
		return
	}
	x.r.int(int64(n))
}

func cmdSScan(x *ctx) {
	a, ok := x.parseScan(2, false, false)
	if !ok {
		return
	}
	next, items, err := x.tx.SScan(x.args[1], a.cursor, a.count, a.pattern)
	if err != nil {
		x.fail(err)
		return
	}
	x.scanReply(next, items)
}
