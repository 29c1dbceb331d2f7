-- release: give a job back to the head of its queue without counting the attempt
-- (a request withdrawn after the job reached it, a host shutting down before it started the job).
-- KEYS[1] leases  KEYS[2] waiting  KEYS[3] requests
-- ARGV[1] token "id|attempt|max"  ARGV[2] wake channel
-- Returns 0 for a stale token, 1 when given back.
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
local id, attempt, max = string.match(ARGV[1], '^([^|]+)|(%d+)|(%d+)$')
redis.call('LPUSH', KEYS[2], id .. '|' .. (tonumber(attempt) - 1) .. '|' .. max)
if redis.call('LLEN', KEYS[3]) > 0 then redis.call('SPUBLISH', ARGV[2], 'released') end
return 1
