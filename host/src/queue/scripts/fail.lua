-- fail: the holder of a lease reports a failure. Retry after backoff, or the dead list.
-- KEYS[1] leases  KEYS[2] delayed  KEYS[3] dead  KEYS[4] errors  KEYS[5] stats
-- ARGV[1] token "id|attempt|max"  ARGV[2] error text  ARGV[3] "1" for no retry
-- ARGV[4] backoff base ms  ARGV[5] backoff cap ms
-- Returns -1 for a stale token, 0 when the job went to the dead list, else the retry delay in ms.
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return -1 end
local id, attempt, max = string.match(ARGV[1], '^([^|]+)|(%d+)|(%d+)$')
attempt = tonumber(attempt)
redis.call('HSET', KEYS[4], id, ARGV[2])
if ARGV[3] == '1' or attempt >= tonumber(max) then
  redis.call('LPUSH', KEYS[3], ARGV[1])
  redis.call('HINCRBY', KEYS[5], 'dead', 1)
  return 0
end
local now, usec = now_ms()
-- Exponential backoff with "equal jitter": half fixed, half drawn from the clock's microseconds.
local delay = math.min(tonumber(ARGV[4]) * 2 ^ (attempt - 1), tonumber(ARGV[5]))
local half = math.floor(delay / 2)
delay = half + (usec % (half + 1))
redis.call('ZADD', KEYS[2], now + delay, ARGV[1])
redis.call('HINCRBY', KEYS[5], 'retried', 1)
return math.max(delay, 1)
