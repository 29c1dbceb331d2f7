-- reap: the queue's housekeeping, run by every manager on a short timer.
--  1. leases past their deadline: the job goes back to the head of the queue (the attempt
--     counts), or to the dead list when it has used up its attempts;
--  2. delayed retries that are due join the tail of the queue;
--  3. results older than the queue's result_ttl, or beyond its result_max, are dropped;
--  4. workers whose heartbeat ran out are forgotten.
-- KEYS[1] meta  KEYS[2] leases  KEYS[3] waiting  KEYS[4] delayed  KEYS[5] dead  KEYS[6] errors
-- KEYS[7] stats  KEYS[8] results  KEYS[9] results_at  KEYS[10] workers  KEYS[11] requests
-- ARGV[1] the caller's protocol version  ARGV[2] batch limit
-- Returns {expired, promoted, dropped results, the queue's lease ms}; a full batch means
-- "call again".
-- Errors: SQUE_NOQUEUE, SQUE_PROTOCOL.
local s = open_call(KEYS[1], ARGV[1], {'lease', 'result_ttl', 'result_max'})
local now = now_ms()
local limit = tonumber(ARGV[2])

local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)
-- Walk backwards so that, pushed one by one to the head, they keep their order.
for i = #expired, 1, -1 do
  local token = expired[i]
  redis.call('ZREM', KEYS[2], token)
  local id, attempt, max = string.match(token, '^([^|]+)|(%d+)|(%d+)$')
  redis.call('HSET', KEYS[6], id, 'lease expired on attempt ' .. attempt .. ' (the worker died, froze or lost Redis)')
  if tonumber(attempt) >= tonumber(max) then
    redis.call('LPUSH', KEYS[5], token)
    redis.call('HINCRBY', KEYS[7], 'dead', 1)
  else
    redis.call('LPUSH', KEYS[3], token)
  end
end
if #expired > 0 then redis.call('HINCRBY', KEYS[7], 'expired', #expired) end

local due = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, limit)
for _, token in ipairs(due) do
  redis.call('ZREM', KEYS[4], token)
  redis.call('RPUSH', KEYS[3], token)
end

local dropped = redis.call('ZRANGEBYSCORE', KEYS[9], '-inf', now - s.result_ttl, 'LIMIT', 0, limit)
local over = redis.call('ZCARD', KEYS[9]) - #dropped - s.result_max
if over > 0 then
  local oldest = redis.call('ZRANGE', KEYS[9], #dropped, #dropped + math.min(over, limit) - 1)
  for _, id in ipairs(oldest) do dropped[#dropped + 1] = id end
end
for _, id in ipairs(dropped) do
  redis.call('HDEL', KEYS[8], id)
  redis.call('ZREM', KEYS[9], id)
end

redis.call('ZREMRANGEBYSCORE', KEYS[10], '-inf', now)

if #expired + #due > 0 and redis.call('LLEN', KEYS[11]) > 0 then
  redis.call('SPUBLISH', key_base(KEYS[1]) .. 'wake', 'requeued')
end
return {#expired, #due, #dropped, s.lease}
