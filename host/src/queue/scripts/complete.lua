-- complete: the holder of a lease says the job is done. Refused (0) when the token is stale.
-- KEYS[1] leases  KEYS[2] jobs  KEYS[3] errors  KEYS[4] stats  KEYS[5] results  KEYS[6] results_at
-- ARGV[1] token "id|attempt|max"  ARGV[2] "1" when a result follows  ARGV[3] result JSON
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
local id = string.match(ARGV[1], '^([^|]+)|')
redis.call('HDEL', KEYS[2], id)
redis.call('HDEL', KEYS[3], id)
redis.call('HINCRBY', KEYS[4], 'completed', 1)
if ARGV[2] == '1' then
  redis.call('HSET', KEYS[5], id, ARGV[3])
  redis.call('ZADD', KEYS[6], (now_ms()), id)
end
return 1
