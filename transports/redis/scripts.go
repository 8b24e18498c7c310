package redistransport

import "github.com/redis/go-redis/v9"

// luaRecord is shared by the pop and record scripts. record(v, queue, now)
// queues what kombu's QoS.append writes for a popped message,
// ZADD unacked_index <now> <tag> and
// HSET unacked <tag> json.dumps([envelope, exchange, routing_key]),
// and flush() writes everything queued with one ZADD and one HSET (HMSET
// before Redis 7), in the same script that popped the messages: one call
// per batch instead of two per message.
// record returns the delivery tag it recorded and whether the tag is free
// of newlines (only a JSON escape can put one there; the fast path leaves
// such tags to cjson), or nil (and queues nothing) for a payload that is
// not a kombu envelope with a delivery tag; the Go side then drops it.
// Envelopes laid out as kombu writes them (properties last, delivery_tag
// its last member, delivery_info starting with exchange and routing_key,
// no escapes in those values) take a fast path that copies the fields'
// JSON text verbatim, which is byte-identical to kombu's output. The fast
// path looks for those fields in the last 256 bytes first, with plain
// finds for needles that start with a rare letter rather than a quote
// (every quote in the payload was a candidate the search compared), and
// scans everything only when they are not there. Anything else goes
// through cjson, which escapes "/" as "\/"; that is turned back so values
// match Python's json.dumps for ASCII names (non-ASCII stays raw UTF-8,
// which Python reads identically).
const luaRecord = `
local function jstr(s)
  return (string.gsub(cjson.encode(s), '\\/', '/'))
end
local find, match, byte = string.find, string.match, string.byte
local function lastplain(v, needle, from)
  local last
  while true do
    local s, e = find(v, needle, from, true)
    if not s then return last end
    if byte(v, s - 1) == 34 then last = e end
    from = e + 1
  end
end
local function fastfields(v, tail)
  if tail < 2 then tail = 2 end
  local tag
  local from = tail
  while true do
    local s, e = find(v, 'delivery_tag": "', from, true)
    if not s then break end
    if byte(v, s - 1) == 34 then
      tag = match(v, '^([^"\\\n]+)"}}%s*$', e + 1)
      if tag then break end
    end
    from = e + 1
  end
  if not tag then return nil end
  local last = lastplain(v, 'delivery_info": {"exchange": "', tail)
  if not last then return nil end
  local ex, rk = match(v, '^([^"\\]*)", "routing_key": "([^"\\]*)"', last + 1)
  if not ex then return nil end
  return tag, ex, rk
end
local zargs, hargs = {}, {}
local function flush()
  if #zargs > 0 then
    redis.call('ZADD', KEYS[2], unpack(zargs))
    if redis.REDIS_VERSION_NUM then
      redis.call('HSET', KEYS[1], unpack(hargs))
    else
      redis.call('HMSET', KEYS[1], unpack(hargs))
    end
    zargs, hargs = {}, {}
  end
end
local function put(now, tag, rec)
  local i = #zargs
  zargs[i + 1], zargs[i + 2] = now, tag
  hargs[i + 1], hargs[i + 2] = tag, rec
  if i >= 254 then flush() end
end
local function record(v, queue, now)
  local tag, ex, rk = fastfields(v, #v - 255)
  if not tag and #v > 256 then tag, ex, rk = fastfields(v, 2) end
  if tag then
    put(now, tag, '[' .. v .. ', "' .. ex .. '", "' .. rk .. '"]')
    return tag, true
  end
  local ok, env = pcall(cjson.decode, v)
  if not ok or type(env) ~= 'table' then return nil end
  local p = env['properties']
  if type(p) ~= 'table' then return nil end
  local tag = p['delivery_tag']
  if type(tag) ~= 'string' or tag == '' then return nil end
  local ex, rk = '', queue
  local di = p['delivery_info']
  if type(di) == 'table' then
    if type(di['exchange']) == 'string' then ex = di['exchange'] end
    if type(di['routing_key']) == 'string' then rk = di['routing_key'] end
  end
  put(now, tag, '[' .. v .. ', ' .. jstr(ex) .. ', ' .. jstr(rk) .. ']')
  return tag, not find(tag, '\n', 1, true)
end
`

// popScript first acknowledges the delivery tags it is given (kombu's
// basic_ack: ZREM unacked_index, HDEL unacked), then pops up to ARGV[1]
// messages without blocking, in the order kombu's BRPOP would deliver
// them one by one (priority step major, queue minor, the queue rotated to
// the end after each delivery), and records each in the unacked
// structures atomically with the pop. Carrying the acks of the previous
// batch saves a round trip per batch. With one queue on Redis 6.2 or
// later it pops each priority step's list with RPOP's count (the same
// order, one call per list instead of one per message).
//
// A pop's reply can be lost with its connection after Redis ran it (the
// Redis client then sends it again, or the caller does). So the script
// also writes a ticket: the pop's id and, for each message it recorded,
// its delivery tag (after its queue index when there are several
// queues). A call that carries the id its ticket already holds is such a
// repeat: it pops nothing and returns the unacked entries of the messages
// the first run recorded (the caller takes each payload from its entry),
// instead of leaving them in unacked until the visibility timeout. (A tag with a newline, which only a JSON escape can
// give, is left out of the ticket.)
//
// KEYS[1] unacked, KEYS[2] unacked_index, KEYS[3] the ticket, KEYS[4..]
// list keys laid out step by step, each step listing the queues in ARGV
// order.
// ARGV[1] max, ARGV[2] now (Unix seconds), ARGV[3] number of queues m,
// ARGV[3+i] queue i's name (used when delivery_info lacks routing_key),
// ARGV[4+m] the pop's id, ARGV[5+m] the ticket's lifetime in seconds,
// ARGV[6+m] "1" when the call may be a repeat (only then is the ticket
// read), ARGV[7+m..] delivery tags to acknowledge (at most
// maxCarriedAcks).
// Returns a flat array {queueIndex, payload, recorded, ...}: recorded is
// 1 when the message was recorded, 0 when it is not a kombu envelope, and
// 2 for a repeat, whose "payload" is the message's unacked entry.
var popScript = redis.NewScript(luaRecord + `
local max = tonumber(ARGV[1])
local now = ARGV[2]
local m = tonumber(ARGV[3])
local id = ARGV[4 + m]
if #ARGV > 6 + m then
  redis.call('ZREM', KEYS[2], unpack(ARGV, 7 + m))
  redis.call('HDEL', KEYS[1], unpack(ARGV, 7 + m))
end
local out = {}
local prev = ARGV[6 + m] == '1' and redis.call('GET', KEYS[3])
if prev and string.sub(prev, 1, #id + 1) == id .. '\n' then
  local entry = '(%d+) ([^\n]*)\n'
  if m == 1 then entry = '()([^\n]*)\n' end
  for qi, tag in string.gmatch(string.sub(prev, #id + 2) .. '\n', entry) do
    local rec = redis.call('HGET', KEYS[1], tag)
    if rec then
      if m == 1 then qi = 1 end
      out[#out + 1] = tonumber(qi)
      out[#out + 1] = rec
      out[#out + 1] = 2
    end
  end
  return out
end
local ticket = {id}
local function finish()
  flush()
  if #ticket > 1 then
    redis.call('SET', KEYS[3], table.concat(ticket, '\n'), 'EX', ARGV[5 + m])
  end
  return out
end
local steps = (#KEYS - 3) / m
local n = 0
if m == 1 and redis.REDIS_VERSION_NUM and redis.REDIS_VERSION_NUM >= 0x060200 then
  -- One queue: pop each priority step's list with a count, in step
  -- order, which is the order single pops would deliver.
  for s = 0, steps - 1 do
    if n >= max then break end
    local vs = redis.call('RPOP', KEYS[4 + s], max - n)
    if vs then
      for i = 1, #vs do
        local v = vs[i]
        local tag, plain = record(v, ARGV[4], now)
        local o = #out
        out[o + 1], out[o + 2], out[o + 3] = 1, v, tag and 1 or 0
        if plain then ticket[#ticket + 1] = tag end
      end
      n = n + #vs
    end
  end
  return finish()
end
local order = {}
for i = 1, m do order[i] = i end
local empty = {}
while n < max do
  local got = false
  for s = 0, steps - 1 do
    for j = 1, m do
      local qi = order[j]
      local k = 4 + s * m + (qi - 1)
      if not empty[k] then
        local v = redis.call('RPOP', KEYS[k])
        if v then
          local tag, plain = record(v, ARGV[3 + qi], now)
          local o = #out
          out[o + 1], out[o + 2], out[o + 3] = qi, v, tag and 1 or 0
          if plain then ticket[#ticket + 1] = qi .. ' ' .. tag end
          table.remove(order, j)
          order[#order + 1] = qi
          got = true
          break
        end
        empty[k] = true
      end
    end
    if got then break end
  end
  if not got then break end
  n = n + 1
end
return finish()
`)

// recordScript records one message popped by BRPOP.
// KEYS[1] unacked, KEYS[2] unacked_index; ARGV[1] payload, ARGV[2] queue,
// ARGV[3] now. Returns 1 when recorded, 0 for a payload that is not a
// kombu envelope.
var recordScript = redis.NewScript(luaRecord + `
local tag = record(ARGV[1], ARGV[2], ARGV[3])
flush()
if tag then return 1 end
return 0
`)

// restoreScript is the compare-and-swap form of kombu's restore_by_tag
// transaction (WATCH unacked; HGET; MULTI; ZREM; HDEL; L/RPUSH; EXEC),
// without WATCHing the whole hash that every worker writes to.
// KEYS[1] unacked, KEYS[2] unacked_index, KEYS[3..] destination lists.
// ARGV[1] tag, ARGV[2] the value read before ("*": any), ARGV[3] payload,
// ARGV[4] "L" for LPUSH (reject with requeue) or "R" for RPUSH (restore).
// Returns 1 when restored, 0 when the entry is gone (someone else
// restored or acked it), -1 when it changed (read again and retry).
var restoreScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
if ARGV[2] ~= '*' and cur ~= ARGV[2] then return -1 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
for i = 3, #KEYS do
  if ARGV[4] == 'L' then
    redis.call('LPUSH', KEYS[i], ARGV[3])
  else
    redis.call('RPUSH', KEYS[i], ARGV[3])
  end
end
return 1
`)

// unlockScript releases the sweep mutex only when it still holds our
// token (what redis-py's Lock.release does).
var unlockScript = redis.NewScript(`
local token = redis.call('GET', KEYS[1])
if not token or token ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
return 1
`)
