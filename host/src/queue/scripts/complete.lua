-- complete: holders of leases say their jobs are done, many at once (one entry each).
-- Each entry is refused (0) when its token is stale, and then changes nothing.
-- KEYS[1] leases  KEYS[2] jobs  KEYS[3] errors  KEYS[4] stats  KEYS[5] results  KEYS[6] results_at
-- ARGV: triples of (token "id|attempt|max", "1" when a result follows or "0", result JSON or "").
-- Returns one 1 or 0 per entry, in order.
local out = {}
local done = 0
local now
for i = 1, #ARGV, 3 do
  local token = ARGV[i]
  if redis.call('ZREM', KEYS[1], token) == 0 then
    out[#out + 1] = 0
  else
    local id = string.match(token, '^([^|]+)|')
    redis.call('HDEL', KEYS[2], id)
    redis.call('HDEL', KEYS[3], id)
    if ARGV[i + 1] == '1' then
      now = now or now_ms()
      redis.call('HSET', KEYS[5], id, ARGV[i + 2])
      redis.call('ZADD', KEYS[6], now, id)
    end
    done = done + 1
    out[#out + 1] = 1
  end
end
if done > 0 then redis.call('HINCRBY', KEYS[4], 'completed', done) end
return out
