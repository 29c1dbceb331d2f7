-- push: append jobs to the tail of the waiting list (FIFO: the head leaves first).
-- KEYS[1] waiting  KEYS[2] jobs  KEYS[3] meta  KEYS[4] stats  KEYS[5] requests
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
-- Wake a manager only when a worker is waiting for work: bulk pushes stay quiet.
if redis.call('LLEN', KEYS[5]) > 0 then redis.call('SPUBLISH', ARGV[1], 'pushed') end
return first
