-- reap: the queue's housekeeping, run by every manager on a short timer.
--  1. leases past their deadline: the job goes back to the head of the queue (the attempt
--     counts), or to the dead list when it has used up its attempts;
--  2. delayed retries that are due join the tail of the queue;
--  3. results older than the retention time, or beyond the retention count, are dropped;
--  4. workers whose heartbeat ran out are forgotten.
-- KEYS[1] leases  KEYS[2] waiting  KEYS[3] delayed  KEYS[4] dead  KEYS[5] errors  KEYS[6] stats
-- KEYS[7] results  KEYS[8] results_at  KEYS[9] workers  KEYS[10] requests
-- ARGV[1] batch limit  ARGV[2] result ttl ms  ARGV[3] result max count  ARGV[4] wake channel
-- Returns {expired, promoted, dropped results}; a full batch means "call again".
local now = now_ms()
local limit = tonumber(ARGV[1])

local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, limit)
-- Walk backwards so that, pushed one by one to the head, they keep their order.
for i = #expired, 1, -1 do
  local token = expired[i]
  redis.call('ZREM', KEYS[1], token)
  local id, attempt, max = string.match(token, '^([^|]+)|(%d+)|(%d+)$')
  redis.call('HSET', KEYS[5], id, 'lease expired on attempt ' .. attempt .. ' (the worker died, froze or lost Redis)')
  if tonumber(attempt) >= tonumber(max) then
    redis.call('LPUSH', KEYS[4], token)
    redis.call('HINCRBY', KEYS[6], 'dead', 1)
  else
    redis.call('LPUSH', KEYS[2], token)
  end
end
if #expired > 0 then redis.call('HINCRBY', KEYS[6], 'expired', #expired) end

local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, limit)
for _, token in ipairs(due) do
  redis.call('ZREM', KEYS[3], token)
  redis.call('RPUSH', KEYS[2], token)
end

local dropped = redis.call('ZRANGEBYSCORE', KEYS[8], '-inf', now - tonumber(ARGV[2]), 'LIMIT', 0, limit)
local over = redis.call('ZCARD', KEYS[8]) - #dropped - tonumber(ARGV[3])
if over > 0 then
  local oldest = redis.call('ZRANGE', KEYS[8], #dropped, #dropped + math.min(over, limit) - 1)
  for _, id in ipairs(oldest) do dropped[#dropped + 1] = id end
end
for _, id in ipairs(dropped) do
  redis.call('HDEL', KEYS[7], id)
  redis.call('ZREM', KEYS[8], id)
end

redis.call('ZREMRANGEBYSCORE', KEYS[9], '-inf', now)

if #expired + #due > 0 and redis.call('LLEN', KEYS[10]) > 0 then
  redis.call('SPUBLISH', ARGV[4], 'requeued')
end
return {#expired, #due, #dropped}
