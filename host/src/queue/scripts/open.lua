-- open: create the queue or join it, and tell which protocol it speaks.
-- KEYS[1] meta
-- ARGV[1] protocol version of this library
-- Returns the protocol version the queue was created with.
if redis.call('HSETNX', KEYS[1], 'protocol', ARGV[1]) == 1 then
  local t = redis.call('TIME')
  redis.call('HSET', KEYS[1], 'created_at', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
end
return redis.call('HGET', KEYS[1], 'protocol')
