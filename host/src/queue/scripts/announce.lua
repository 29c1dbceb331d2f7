-- announce: a worker says "I am free" (one entry per request), and renews its heartbeat.
-- KEYS[1] requests  KEYS[2] waiting  KEYS[3] workers
-- ARGV[1] wake channel  ARGV[2] worker id  ARGV[3] heartbeat ttl ms, then request entries "worker:seq".
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[2])
for i = 4, #ARGV do redis.call('RPUSH', KEYS[1], ARGV[i]) end
-- Wake a manager only when there is something to hand out.
if redis.call('LLEN', KEYS[2]) > 0 then redis.call('PUBLISH', ARGV[1], 'free') end
return redis.call('LLEN', KEYS[1])
