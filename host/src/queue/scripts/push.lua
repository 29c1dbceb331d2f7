-- push: append jobs to the tail of the waiting list (FIFO: the head leaves first), then serve
-- requests that were waiting for work, in this same call, as a manager would serve them next.
-- KEYS[1] waiting  KEYS[2] jobs  KEYS[3] meta  KEYS[4] stats  KEYS[5] requests
-- KEYS[6] leases  KEYS[7] workers (both optional: without them, push only wakes a manager)
-- ARGV[1] wake channel, then pairs (data JSON, max_attempts or "") for each job.
-- Returns the first new id; the others follow it in order.
local count = (#ARGV - 1) / 2
local last = redis.call('HINCRBY', KEYS[3], 'seq', count)
local first = last - count + 1
local items = {}
for i = 0, count - 1 do
  local id = first + i
  redis.call('HSET', KEYS[2], id, ARGV[2 + 2 * i])
  local max = ARGV[3 + 2 * i]
  if max == '' then items[#items + 1] = id .. '|0' else items[#items + 1] = id .. '|0|' .. max end
  -- RPUSH takes many values at once; flush in chunks to stay within Lua's stack.
  if #items == 1000 then redis.call('RPUSH', KEYS[1], unpack(items)); items = {} end
end
if #items > 0 then redis.call('RPUSH', KEYS[1], unpack(items)) end
redis.call('HINCRBY', KEYS[4], 'pushed', count)
-- Bulk pushes into a queue nobody waits on stay quiet and cheap.
if redis.call('LLEN', KEYS[5]) == 0 then return first end
-- Workers wait: serve them now with the settings the dispatching managers left in meta (the
-- lease, the inbox's lifetime, the default attempts), saving the wake-up and the dispatch
-- call on the way to a worker. Until a dispatching manager has run, a manager is woken.
local settings = redis.call('HMGET', KEYS[3], 'lease', 'inbox_ttl', 'max_attempts')
if KEYS[7] and settings[1] and settings[2] and settings[3] then
  local now = now_ms()
  local base = string.sub(KEYS[1], 1, -string.len('waiting') - 1)
  local q = {jobs = KEYS[2], leases = KEYS[6], base = base, deadline = now + tonumber(settings[1]),
             default_max = settings[3], inbox_ttl = settings[2]}
  dispatch_stored(q, {waiting = KEYS[1], requests = KEYS[5], workers = KEYS[7], stats = KEYS[4]},
                  count, now)
end
if redis.call('LLEN', KEYS[5]) > 0 and redis.call('LLEN', KEYS[1]) > 0 then
  redis.call('SPUBLISH', ARGV[1], 'pushed')
end
return first
