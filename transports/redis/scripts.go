package redistransport

import "github.com/redis/go-redis/v9"

// luaRecord is shared by the pop and record scripts. record(v, queue)
// writes what kombu's QoS.append writes, in the same script that popped
// the message: ZADD unacked_index <now> <tag> and
// HSET unacked <tag> json.dumps([envelope, exchange, routing_key]).
// It returns 0 (and records nothing) for a payload that is not a kombu
// envelope with a delivery tag; the Go side then drops it.
// Envelopes laid out as kombu writes them (properties last, delivery_tag
// its last member, delivery_info starting with exchange and routing_key,
// no escapes in those values) take a fast path that copies the fields'
// JSON text verbatim, which is byte-identical to kombu's output. The fast
// path looks for those fields in the last 512 bytes first (plain finds; a
// pattern scan of the whole ~1 KB payload cost ~12 µs of Redis CPU per
// message) and scans everything only when they are not there. Anything
// else goes through cjson, which escapes "/" as "\/"; that is turned back so values match Python's
// json.dumps for ASCII names (non-ASCII stays raw UTF-8, which Python
// reads identically).
const luaRecord = `
local function jstr(s)
  return (string.gsub(cjson.encode(s), '\\/', '/'))
end
local function lastplain(v, needle, from)
  local last
  while true do
    local _, e = string.find(v, needle, from, true)
    if not e then return last end
    last, from = e, e + 1
  end
end
local function fastfields(v)
  local tail = #v - 512
  if tail < 1 then tail = 1 end
  local tag
  local from = tail
  while true do
    local _, e = string.find(v, '"delivery_tag": "', from, true)
    if not e then break end
    tag = string.match(v, '^([^"\\]+)"}}%s*$', e + 1)
    if tag then break end
    from = e + 1
  end
  if not tag and tail > 1 then
    tag = string.match(v, '"delivery_tag": "([^"\\]+)"}}%s*$')
  end
  if not tag then return nil end
  local needle = '"delivery_info": {"exchange": "'
  local last = lastplain(v, needle, tail)
  if not last and tail > 1 then last = lastplain(v, needle, 1) end
  if not last then return nil end
  local ex, rk = string.match(v, '^([^"\\]*)", "routing_key": "([^"\\]*)"', last + 1)
  if not ex then return nil end
  return tag, ex, rk
end
local function record(v, queue, now)
  local tag, ex, rk = fastfields(v)
  if tag then
    redis.call('ZADD', KEYS[2], now, tag)
    redis.call('HSET', KEYS[1], tag, '[' .. v .. ', "' .. ex .. '", "' .. rk .. '"]')
    return 1
  end
  local ok, env = pcall(cjson.decode, v)
  if not ok or type(env) ~= 'table' then return 0 end
  local p = env['properties']
  if type(p) ~= 'table' then return 0 end
  local tag = p['delivery_tag']
  if type(tag) ~= 'string' or tag == '' then return 0 end
  local ex, rk = '', queue
  local di = p['delivery_info']
  if type(di) == 'table' then
    if type(di['exchange']) == 'string' then ex = di['exchange'] end
    if type(di['routing_key']) == 'string' then rk = di['routing_key'] end
  end
  redis.call('ZADD', KEYS[2], now, tag)
  redis.call('HSET', KEYS[1], tag, '[' .. v .. ', ' .. jstr(ex) .. ', ' .. jstr(rk) .. ']')
  return 1
end
`

// popScript first acknowledges the delivery tags it is given (kombu's
// basic_ack: ZREM unacked_index, HDEL unacked), then pops up to ARGV[1]
// messages without blocking, in the order kombu's BRPOP would deliver
// them one by one (priority step major, queue minor, the queue rotated to
// the end after each delivery), and records each in the unacked
// structures atomically with the pop. Carrying the acks of the previous
// batch saves a round trip per batch.
//
// KEYS[1] unacked, KEYS[2] unacked_index, KEYS[3..] list keys laid out
// step by step, each step listing the queues in ARGV order.
// ARGV[1] max, ARGV[2] now (float seconds), ARGV[3] number of queues m,
// ARGV[3+i] queue i's name (used when delivery_info lacks routing_key),
// ARGV[4+m..] delivery tags to acknowledge (at most maxCarriedAcks).
// Returns a flat array {queueIndex, payload, recorded, ...}.
var popScript = redis.NewScript(luaRecord + `
local max = tonumber(ARGV[1])
local now = ARGV[2]
local m = tonumber(ARGV[3])
if #ARGV > 3 + m then
  redis.call('ZREM', KEYS[2], unpack(ARGV, 4 + m))
  redis.call('HDEL', KEYS[1], unpack(ARGV, 4 + m))
end
local steps = (#KEYS - 2) / m
local order = {}
for i = 1, m do order[i] = i end
local empty = {}
local out = {}
local n = 0
while n < max do
  local got = false
  for s = 0, steps - 1 do
    for j = 1, m do
      local qi = order[j]
      local k = 3 + s * m + (qi - 1)
      if not empty[k] then
        local v = redis.call('RPOP', KEYS[k])
        if v then
          local rec = record(v, ARGV[3 + qi], now)
          out[#out + 1] = qi
          out[#out + 1] = v
          out[#out + 1] = rec
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
return out
`)

// recordScript records one message popped by BRPOP.
// KEYS[1] unacked, KEYS[2] unacked_index; ARGV[1] payload, ARGV[2] queue,
// ARGV[3] now. Returns 1 when recorded, 0 for a payload that is not a
// kombu envelope.
var recordScript = redis.NewScript(luaRecord + `
return record(ARGV[1], ARGV[2], ARGV[3])
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
