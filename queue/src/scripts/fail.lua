-- fail: the holder of a lease reports a failure. Retry after backoff, or the dead list.
-- KEYS[1] meta  KEYS[2] leases  KEYS[3] delayed  KEYS[4] dead  KEYS[5] errors  KEYS[6] stats
-- ARGV[1] the caller's protocol version  ARGV[2] token "id|attempt|max"  ARGV[3] error text
-- ARGV[4] "1" for no retry
-- Returns -1 for a stale token, 0 when the job went to the dead list, else the retry delay in ms.
-- Errors: SQUE_NOQUEUE, SQUE_PROTOCOL.
local s = open_call(KEYS[1], ARGV[1], {'backoff', 'backoff_max'})
if redis.call('ZREM', KEYS[2], ARGV[2]) == 0 then return -1 end
local id, attempt, max = string.match(ARGV[2], '^([^|]+)|(%d+)|(%d+)$')
attempt = tonumber(attempt)
redis.call('HSET', KEYS[5], id, ARGV[3])
if ARGV[4] == '1' or attempt >= tonumber(max) then
  redis.call('LPUSH', KEYS[4], ARGV[2])
  redis.call('HINCRBY', KEYS[6], 'dead', 1)
  return 0
end
local now, usec = now_ms()
-- Exponential backoff with "equal jitter": half fixed, half drawn from the clock's microseconds.
local delay = math.min(s.backoff * 2 ^ (attempt - 1), s.backoff_max)
local half = math.floor(delay / 2)
delay = half + (usec % (half + 1))
redis.call('ZADD', KEYS[3], now + delay, ARGV[2])
redis.call('HINCRBY', KEYS[6], 'retried', 1)
return math.max(delay, 1)
